"""Generated protobuf modules for the transports (regenerate with ``scripts/gen-protos.sh``).

``noise_pb2``: the libp2p Noise handshake payload (``NoiseHandshakePayload``). Use
``p2pnode.transports.noise`` rather than this module directly.
"""
