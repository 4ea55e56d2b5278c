"""The binary reading and building of IP multiaddrs agrees with py-multiaddr on every address it accepts,
and leaves everything else to the library."""

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pnode.identity import Keypair, PeerId
from p2pnode.runtime.swarm import to_multiaddr
from p2pnode.transports.addresses import ip_endpoint, ip_multiaddr, parse, peer_id_of, without_peer_id

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


@pytest.mark.parametrize("data", [
    b"",
    b"\x04",  # ip4 without its address: py-multiaddr reads it as /ip4/0.0.0.0
    b"\x04\x7f\x00",
    b"\x04\x7f\x00\x00\x01\x06",  # a tcp port cut short
    b"\x99\x99\x01",  # an unknown protocol
    b"/ip4/1.2.3.4",  # text where bytes are expected
    b"\x04\x7f\x00\x00\x01\x06\x00\x50\x00",  # a trailing byte
    b"\x35\x05abc",  # /dns4 with a 5-byte name cut short
])
def test_invalid_binary_multiaddrs_are_refused_at_parse_time(data):
    # Multiaddr(bytes) takes anything and fails when read (str() raises): parse reads the whole address
    with pytest.raises(ValueError):
        parse(data)
    assert to_multiaddr(data) is None


@given(ips, ports, shapes, peers)
def test_parse_takes_every_valid_binary_multiaddr(host, port, shape, peer):
    transport, tail = shape
    addr = Multiaddr(text(host, transport, port, tail, peer))
    assert parse(addr.to_bytes()) == addr == to_multiaddr(addr.to_bytes())
    assert parse(str(addr)) == addr


@pytest.mark.parametrize("text", ["/dns4/example.com/tcp/4001", "/ip4/1.2.3.4/tcp/1/ws",
                                  f"/ip4/1.2.3.4/tcp/1/p2p/{PEERS[0]}/p2p-circuit/p2p/{PEERS[1]}"])
def test_parse_takes_addresses_outside_the_fast_path(text):
    assert str(parse(Multiaddr(text).to_bytes())) == text


@pytest.mark.parametrize("text", [
    # base58 that is not a multihash: the library takes the text and then cannot print it (found by fuzzing)
    "/ip4/198.51.1.0/p2p/2W1oKDo3J1TsijH7H5F74hfAD5XishQz3sxrmArVY37GtNd9CqYf",
    "/ip4/1.2.3.4/tcp/1/p2p/1111",
])
def test_text_whose_binary_form_is_not_an_address_is_refused(text):
    with pytest.raises(ValueError):
        parse(text)
    assert to_multiaddr(text) is None
