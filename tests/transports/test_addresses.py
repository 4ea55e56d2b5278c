"""The binary reading and building of IP multiaddrs agrees with py-multiaddr on every address it accepts,
and leaves everything else to the library."""

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pnode.identity import Keypair, PeerId
from p2pnode.transports.addresses import ip_endpoint, ip_multiaddr, peer_id_of, without_peer_id

PEERS = [Keypair.from_seed(bytes([i]) * 32).peer_id for i in range(4)]
# a sha2-256 peer ID (the form of RSA keys): hashes are 34 bytes where Ed25519 identity IDs are 38
SHA_PEER = PeerId.from_base58("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")

ips = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
ports = st.integers(0, 65535)
peers = st.one_of(st.none(), st.sampled_from([*PEERS, SHA_PEER]))
shapes = st.sampled_from([("tcp", ()), ("udp", ("quic-v1",))])


def text(host: str, transport: str, port: int, tail: tuple[str, ...], peer: PeerId | None) -> str:
    family = "ip6" if ":" in host else "ip4"
    return f"/{family}/{host}/{transport}/{port}" + "".join(f"/{t}" for t in tail) + (f"/p2p/{peer}" if peer else "")


@given(ips, ports, shapes, peers)
def test_reads_what_the_library_reads(host, port, shape, peer):
    transport, tail = shape
    addr = Multiaddr(text(host, transport, port, tail, peer))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    canonical = socket.inet_ntop(family, socket.inet_pton(family, host))
    assert ip_endpoint(addr, transport, *tail) == (canonical, port, peer)
    assert peer_id_of(addr) == peer
    bare = without_peer_id(addr)
    assert bare == Multiaddr(text(host, transport, port, tail, None))
    assert bare.to_bytes() == ip_multiaddr(host, port, transport, *tail).to_bytes()


@given(ips, ports, shapes)
def test_other_shapes_are_refused(host, port, shape):
    transport, tail = shape
    other = "udp" if transport == "tcp" else "tcp"
    addr = Multiaddr(text(host, transport, port, tail, None))
    with pytest.raises(ValueError):
        ip_endpoint(addr, other, *tail)
    with pytest.raises(ValueError):
        ip_endpoint(addr, transport, *tail, "webtransport")
    if tail:
        with pytest.raises(ValueError):
            ip_endpoint(addr, transport)


@pytest.mark.parametrize("text", [
    "/dns4/example.com/tcp/4001",
    "/ip4/1.2.3.4/udp/1/quic",  # draft QUIC, not quic-v1
    "/ip4/1.2.3.4/tcp/1/ws",
    "/ip6zone/eth0/ip6/fe80::1/udp/1/quic-v1",
    f"/ip4/1.2.3.4/tcp/1/p2p/{PEERS[0]}/p2p-circuit/p2p/{PEERS[1]}",
])
def test_addresses_outside_the_fast_path(text):
    addr = Multiaddr(text)
    for transport, tail in (("tcp", ()), ("udp", ("quic-v1",))):
        with pytest.raises(ValueError):
            ip_endpoint(addr, transport, *tail)
    # the library's reading of /p2p still applies
    assert without_peer_id(addr) == (Multiaddr(text[: text.rindex("/p2p/")]) if "/p2p/" in text else addr)
    assert peer_id_of(addr) == (PEERS[1] if "/p2p/" in text else None)
