"""Fixed identities and addresses for the seed encodings (deterministic, so ``--write-seeds`` is too)."""

from __future__ import annotations

from multiaddr import Multiaddr

from p2pnode.identity import Keypair

ALICE = Keypair.from_seed(bytes(range(32)))
BOB = Keypair.from_seed(bytes(range(1, 33)))
ADDRS = tuple(Multiaddr(text).to_bytes() for text in (
    "/ip4/192.0.2.1/tcp/4001",
    "/ip6/2001:db8::1/udp/4001/quic-v1",
    f"/ip4/198.51.100.7/tcp/4001/p2p/{BOB.peer_id}",
    "/dns4/example.org/tcp/443",
))


def first_byte_picks(data: bytes, count: int) -> tuple[int, bytes]:
    """``(which of count decoders, the rest)``: how a target with several decoders shares one input."""
    return (data[0] % count, data[1:]) if data else (0, b"")
