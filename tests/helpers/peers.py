"""Peers with chosen Kademlia IDs, for tests of the routing table and the lookup.

A real peer ID's Kademlia key is SHA-256 of its bytes, so it cannot be steered next to a given ID. The
routing table and the lookup only read ``peer_id.kad_id``, so these peers set it directly; their raw bytes
(a sha2-256 multihash of the ID) keep them distinct and hashable like real ones.
"""

from __future__ import annotations

from p2pnode.identity import PeerId
from p2pnode.kad.messages import PeerInfo

KEY_BITS = 256
MASK = (1 << KEY_BITS) - 1


def peer_with_id(kad_id: int) -> PeerInfo:
    peer_id = PeerId.__new__(PeerId)
    peer_id.raw = b"\x12\x20" + kad_id.to_bytes(32, "big")
    peer_id.kad_id = kad_id
    peer_id._hash = hash(peer_id.raw)
    return PeerInfo(peer_id)


def ids_of(peers) -> list[int]:
    return [p.peer_id.kad_id for p in peers]


def closest_by_brute_force(target: int, ids, n: int) -> list[int]:
    return sorted(ids, key=lambda i: i ^ target)[:n]
