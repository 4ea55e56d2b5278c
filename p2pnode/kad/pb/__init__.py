"""Generated protobuf modules for the Kademlia wire format (regenerate with ``scripts/gen-protos.sh``).

``dht_pb2``: libp2p's ``Message`` / ``Record`` (kad-dht spec). ``record_pb2``: our ``SignedRecord``, which
travels in ``Record.value``. Use ``p2pnode.kad.codec`` rather than these modules directly.
"""
