"""Fuzz target: multiaddrs from peers (DHT answers, Identify, relay and AutoNAT messages carry them binary).

Contract: ``to_multiaddr`` gives None or an address that can be read — its text form, its binary form equal
to the input, the text read back to the same address — and the fast readers of ``transports.addresses``
raise at most ``ValueError`` on it. The first byte picks the binary form or text (decoded as UTF-8).
"""

from __future__ import annotations

from multiaddr import Multiaddr

from fuzz._keys import ADDRS, first_byte_picks
from fuzz._runner import target
from p2pnode.runtime.swarm import to_multiaddr
from p2pnode.transports.addresses import ip_endpoint, peer_id_of, without_peer_id


def _seeds() -> list[bytes]:
    return [bytes([0]) + a for a in ADDRS] + [bytes([1]) + str(Multiaddr(a)).encode() for a in ADDRS]


@target("multiaddr", seeds=_seeds)
def check(data: bytes) -> None:
    which, rest = first_byte_picks(data, 2)
    if which == 0:
        addr = to_multiaddr(rest)
    else:
        try:
            text = rest.decode()
        except UnicodeDecodeError:
            return
        addr = to_multiaddr(text)
    if addr is None:
        return
    text = str(addr)
    binary = addr.to_bytes()
    if which == 0:
        assert binary == rest, (rest, text)
    assert Multiaddr(text).to_bytes() == binary, text
    without_peer_id(addr)
    peer_id_of(addr)
    for transport, tail in (("tcp", ()), ("udp", ("quic-v1",))):
        try:
            ip_endpoint(addr, transport, *tail)
        except ValueError:
            pass
