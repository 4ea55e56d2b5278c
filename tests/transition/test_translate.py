"""RFC 7915 translation, with packets built and checked by scapy (an independent implementation of
the header layouts and checksums)."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import ICMP, IP, TCP, UDP, IPerror, IPv6, Raw, raw
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPerror6,
    IPv6ExtHdrFragment,
    defragment6,
    in6_chksum,
)
from scapy.utils import checksum as scapy_checksum

from p2pnode.transition import addresses
from p2pnode.transition.translate import Translator

PREF64 = addresses.WELL_KNOWN_PREFIX
CLAT4, CLAT6 = IPv4Address("192.0.0.1"), IPv6Address("2001:db8:c1a7::1")
REMOTE4 = IPv4Address("198.51.100.7")
REMOTE6 = addresses.synthesize(PREF64, REMOTE4)


def _v4to6(addr: bytes, port):
    v4 = IPv4Address(addr)
    if v4 == CLAT4:
        return CLAT6.packed, port
    if not addresses.is_globally_unique(v4):
        return None
    return addresses.synthesize(PREF64, v4).packed, port


def _v6to4(addr: bytes, port):
    v6 = IPv6Address(addr)
    if v6 == CLAT6:
        return CLAT4.packed, port
    if v6 in PREF64:
        return addresses.extract(PREF64, v6).packed, port
    return None


def clat(**kw) -> Translator:
    """A CLAT-like stateless translator: 192.0.0.1 <-> its own IPv6 address, the rest via 64:ff9b::/96."""
    return Translator(src4to6=_v4to6, dst4to6=_v4to6, src6to4=_v6to4, dst6to4=_v6to4,
                      own_ipv4=IPv4Address("192.0.0.2").packed, own_ipv6=IPv6Address("2001:db8:c1a7::2").packed, **kw)


def valid6(p6) -> bool:
    """The upper-layer checksum of a scapy IPv6 packet is right (it sums to zero with the pseudo-header)."""
    layer = p6.payload
    while isinstance(layer, IPv6ExtHdrFragment):
        layer = layer.payload
    return in6_chksum(p6.nh if not p6.haslayer(IPv6ExtHdrFragment) else p6[IPv6ExtHdrFragment].nh, p6,
                      raw(layer)) == 0


def valid4(p4) -> bool:
    l4 = raw(p4.payload)
    if p4.proto == 1:
        return scapy_checksum(l4) == 0
    pseudo = IPv4Address(p4.src).packed + IPv4Address(p4.dst).packed + struct.pack("!BBH", 0, p4.proto, len(l4))
    return scapy_checksum(pseudo + l4) == 0


def one(result) -> bytes:
    assert not result.dropped and result.reply is None and len(result.packets) == 1, result
    return result.packets[0]


def test_udp_ipv4_to_ipv6():
    pkt = IP(src=str(CLAT4), dst=str(REMOTE4), ttl=64, tos=0xB8) / UDP(sport=5000, dport=53) / b"query"
    p6 = IPv6(one(clat().to_ipv6(raw(pkt))))
    assert (p6.src, p6.dst, p6.hlim, p6.tc, p6.fl, p6.nh) == (str(CLAT6), str(REMOTE6), 63, 0xB8, 0, 17)
    assert p6[UDP].sport == 5000 and p6[UDP].dport == 53 and bytes(p6[UDP].payload) == b"query"
    assert valid6(p6)


def test_tcp_round_trip():
    pkt = IP(src=str(REMOTE4), dst=str(CLAT4), ttl=50) / TCP(sport=443, dport=40000, flags="PA") / (b"x" * 999)
    back = IP(one(clat().to_ipv4(one(clat().to_ipv6(raw(pkt))))))
    assert back.ttl == 48 and back.src == str(REMOTE4) and back.dst == str(CLAT4)
    assert raw(back[TCP]) == raw(pkt[TCP]) and valid4(back)  # addresses back: checksum back unchanged
    assert not back.flags.DF  # 1039 bytes <= 1260: DF clear, an identification set
    big = IP(src=str(REMOTE4), dst=str(CLAT4)) / TCP() / (b"y" * 1300)
    t = clat(ipv6_mtu=1500)
    assert IP(one(t.to_ipv4(one(t.to_ipv6(raw(big)))))).flags.DF  # > 1260 bytes: DF set


def test_icmp_echo_both_ways():
    req = IP(src=str(CLAT4), dst=str(REMOTE4)) / ICMP(type=8, id=77, seq=3) / b"ping"
    p6 = IPv6(one(clat().to_ipv6(raw(req))))
    assert p6.haslayer(ICMPv6EchoRequest) and p6[ICMPv6EchoRequest].id == 77 and valid6(p6)
    rep = IPv6(src=str(REMOTE6), dst=str(CLAT6)) / ICMPv6EchoReply(id=77, seq=3, data=b"ping")
    p4 = IP(one(clat().to_ipv4(raw(rep))))
    assert p4[ICMP].type == 0 and p4[ICMP].id == 77 and valid4(p4) and p4.proto == 1


def test_df_packet_too_big_for_ipv6_gets_fragmentation_needed():
    pkt = IP(src=str(CLAT4), dst=str(REMOTE4), flags="DF") / UDP(sport=1, dport=2) / (b"z" * 1300)
    result = clat().to_ipv6(raw(pkt))
    assert not result.packets
    err = IP(result.reply)
    assert err.dst == str(CLAT4) and err[ICMP].type == 3 and err[ICMP].code == 4
    assert err[ICMP].nexthopmtu == 1260 and valid4(err) and err[IPerror].dst == str(REMOTE4)


def test_non_df_packet_too_big_is_fragmented_to_1280():
    payload = bytes(range(256)) * 8
    pkt = IP(src=str(CLAT4), dst=str(REMOTE4)) / UDP(sport=1, dport=2) / payload
    result = clat().to_ipv6(raw(pkt))
    assert len(result.packets) == 2 and all(len(p) <= 1280 for p in result.packets)
    whole = defragment6([IPv6(p) for p in result.packets])
    assert bytes(whole[UDP].payload) == payload and valid6(IPv6(raw(whole)))


def test_ipv4_fragments_get_a_fragment_header_and_come_back():
    pkt = IP(src=str(CLAT4), dst=str(REMOTE4), id=0x1234) / UDP(sport=1, dport=2) / (b"q" * 600)
    frags = [raw(f) for f in __import__("scapy.all", fromlist=["fragment"]).fragment(pkt, fragsize=304)]
    t = clat()
    out6 = [one(t.to_ipv6(f)) for f in frags]
    assert all(IPv6(p).haslayer(IPv6ExtHdrFragment) and IPv6(p)[IPv6ExtHdrFragment].id == 0x1234 for p in out6)
    whole = defragment6([IPv6(p) for p in out6])
    assert bytes(whole[UDP].payload) == b"q" * 600 and valid6(IPv6(raw(whole)))
    back = [IP(one(t.to_ipv4(p))) for p in out6]
    assert [(b.frag, b.flags.MF, b.id) for b in back] == [(f.frag, f.flags.MF, 0x1234) for f in map(IP, frags)]


def test_ipv6_too_big_for_ipv4_gets_packet_too_big():
    pkt = IPv6(src=str(REMOTE6), dst=str(CLAT6)) / UDP(sport=9, dport=9) / (b"w" * 1400)
    result = clat(ipv4_mtu=1400).to_ipv4(raw(pkt))
    err = IPv6(result.reply)
    assert err.haslayer(ICMPv6PacketTooBig) and err[ICMPv6PacketTooBig].mtu == 1420 and valid6(err)


def test_ttl_and_hop_limit_expiry():
    err = IP(clat().to_ipv6(raw(IP(src=str(CLAT4), dst=str(REMOTE4), ttl=1) / UDP())).reply)
    assert err[ICMP].type == 11 and err[ICMP].code == 0
    err6 = IPv6(clat().to_ipv4(raw(IPv6(src=str(REMOTE6), dst=str(CLAT6), hlim=1) / UDP())).reply)
    assert err6.haslayer(ICMPv6TimeExceeded) and valid6(err6)


def test_icmp_errors_translate_with_their_quoted_packet():
    # the remote answers our UDP datagram with port unreachable
    sent = IP(src=str(CLAT4), dst=str(REMOTE4)) / UDP(sport=5000, dport=9) / b"hi"
    v6_sent = IPv6(one(clat().to_ipv6(raw(sent))))
    err6 = IPv6(src=str(REMOTE6), dst=str(CLAT6)) / ICMPv6DestUnreach(code=4) / raw(v6_sent)
    err4 = IP(one(clat().to_ipv4(raw(err6))))
    assert err4[ICMP].type == 3 and err4[ICMP].code == 3 and valid4(err4)
    quoted = err4[IPerror]
    assert quoted.src == str(CLAT4) and quoted.dst == str(REMOTE4) and IP(raw(quoted))[UDP].sport == 5000
    # and the quoted datagram's checksum is the original's again
    assert raw(IP(raw(quoted))[UDP]) == raw(sent[UDP])
    # ICMPv4 the other way: a host unreachable about a packet we forwarded to the CLAT host
    fwd = IP(src=str(REMOTE4), dst=str(CLAT4)) / UDP(sport=7, dport=8)
    e4 = IP(src=str(CLAT4), dst=str(REMOTE4)) / ICMP(type=3, code=1) / raw(fwd)
    e6 = IPv6(one(clat().to_ipv6(raw(e4))))
    assert e6[ICMPv6DestUnreach].code == 0 and e6[IPerror6].src == str(REMOTE6) and valid6(e6)


@pytest.mark.parametrize("kind,rest,expect", [
    ((3, 4), 1400, ("ptb", 1420)),
    ((3, 2), 0, ("param", 6)),
    ((12, 0), 9 << 24, ("param", 6)),  # pointer 9 (protocol) -> 6 (next header)
    ((12, 0), 16 << 24, ("param", 24)),
])
def test_icmp4_to_icmp6_tables(kind, rest, expect):
    quoted = raw(IP(src=str(REMOTE4), dst=str(CLAT4)) / UDP())
    body = bytes([kind[0], kind[1], 0, 0]) + rest.to_bytes(4, "big") + quoted
    body = body[:2] + scapy_checksum(body).to_bytes(2, "big") + body[4:]
    pkt = IP(src=str(CLAT4), dst=str(REMOTE4), proto=1) / Raw(body)
    e6 = IPv6(one(clat(ipv6_mtu=1500).to_ipv6(raw(pkt))))
    if expect[0] == "ptb":
        assert e6[ICMPv6PacketTooBig].mtu == expect[1]
    else:
        assert e6[ICMPv6ParamProblem].ptr == expect[1]
    assert valid6(e6)


def test_icmp6_packet_too_big_to_ipv4():
    quoted = raw(IPv6(src=str(CLAT6), dst=str(REMOTE6)) / UDP(sport=1, dport=2))
    pkt = IPv6(src=str(REMOTE6), dst=str(CLAT6)) / ICMPv6PacketTooBig(mtu=1300) / quoted
    e4 = IP(one(clat().to_ipv4(raw(pkt))))
    assert (e4[ICMP].type, e4[ICMP].code, e4[ICMP].nexthopmtu) == (3, 4, 1260)


def test_untranslatable_and_corrupt_input_is_dropped():
    t = clat()
    bad = bytearray(raw(IP(src=str(CLAT4), dst=str(REMOTE4)) / UDP()))
    bad[10] ^= 0xFF
    assert "checksum" in t.to_ipv6(bytes(bad)).dropped
    icmp = bytearray(raw(IP(src=str(CLAT4), dst=str(REMOTE4)) / ICMP() / b"x"))
    icmp[-1] ^= 1
    assert "ICMPv4 checksum" in t.to_ipv6(bytes(icmp)).dropped
    icmp6 = bytearray(raw(IPv6(src=str(REMOTE6), dst=str(CLAT6)) / ICMPv6EchoRequest(data=b"x")))
    icmp6[-1] ^= 1
    assert "ICMPv6 checksum" in t.to_ipv4(bytes(icmp6)).dropped
    assert "mapping" in t.to_ipv6(raw(IP(src=str(CLAT4), dst="10.0.0.1") / UDP())).dropped
    assert "type 13" in t.to_ipv6(raw(IP(src=str(CLAT4), dst=str(REMOTE4)) / ICMP(type=13))).dropped
    assert "payload length" in t.to_ipv4(raw(IPv6(src=str(REMOTE6), dst=str(CLAT6), plen=500) / UDP())).dropped


def test_udp_without_checksum():
    pkt = raw(IP(src=str(CLAT4), dst=str(REMOTE4)) / UDP(sport=1, dport=2, chksum=0) / b"data")
    assert valid6(IPv6(one(clat().to_ipv6(pkt))))
    frag = IP(src=str(CLAT4), dst=str(REMOTE4), flags="MF") / UDP(sport=1, dport=2, chksum=0) / (b"d" * 16)
    assert "without checksum" in clat().to_ipv6(raw(frag)).dropped


def test_no_icmp_error_about_an_icmp_error():
    inner = raw(IP(src=str(REMOTE4), dst=str(CLAT4)) / UDP())
    err = IP(src=str(CLAT4), dst=str(REMOTE4), ttl=1) / ICMP(type=3, code=3) / inner
    result = clat().to_ipv6(raw(err))
    assert result.reply is None and not result.packets and "not sent" in result.dropped


@given(st.sampled_from(["udp", "tcp"]), st.integers(1, 65535), st.integers(1, 65535), st.binary(max_size=1200),
       st.integers(2, 255))
def test_round_trip_keeps_the_transport_segment(kind, sport, dport, payload, ttl):
    l4 = UDP(sport=sport, dport=dport) if kind == "udp" else TCP(sport=sport, dport=dport, seq=ttl)
    pkt = IP(src=str(CLAT4), dst=str(REMOTE4), ttl=ttl) / l4 / Raw(payload)
    t = clat(ipv6_mtu=1500)
    p6 = one(t.to_ipv6(raw(pkt)))
    assert valid6(IPv6(p6))
    if ttl > 2:
        back = IP(one(t.to_ipv4(p6)))
        assert raw(back.payload) == raw(pkt.payload) and back.ttl == ttl - 2


@given(st.binary(max_size=200))
def test_garbage_never_raises(data):
    t = clat()
    for packet in (data, b"\x45" + data, b"\x60" + data):
        for result in (t.to_ipv6(packet), t.to_ipv4(packet)):
            assert result.packets or result.reply or result.dropped
