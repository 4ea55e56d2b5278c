"""Every mechanism's host side and infrastructure side, wired back to back in memory: a packet from
one side's stack comes out of the other's, and malformed, spoofed, oversized or unsolicited packets
are dropped or answered with the right ICMP error. (The same endpoints run over TUN devices and raw
sockets in tests/tunnels.)"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from scapy.all import ICMP, IP, UDP, IPv6, raw
from scapy.layers.inet import IPerror, UDPerror
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6PacketTooBig

from p2pnode.transition import addresses, encap, mapping, teredo, xlat
from p2pnode.transition import packets as pk
from p2pnode.transition.endpoint import IP4, IP6, TUN
from p2pnode.transition.endpoint import UDP as VIA_UDP

NATIVE6 = IPv6Address("2001:db8:ffff::99")


def wire4(out, sender4: IPv4Address) -> bytes:
    """What a raw protocol-41 socket at the far end receives for an IP4 output."""
    return pk.build_ipv4(sender4.packed, out.dest, pk.PROTO_IPV6, out.data)


def only(outs, via):
    assert len(outs) == 1 and outs[0].via == via, outs
    return outs[0]


# ---- protocol 41 ----------------------------------------------------------------------------------

def test_6to4_host_and_relay():
    host4, relay4 = IPv4Address("192.0.2.10"), IPv4Address("192.88.99.1")
    host, relay = encap.sixtofour(host4, relay=relay4), encap.sixtofour(relay4, role="relay")
    src = host.own6
    pkt = raw(IPv6(src=str(src), dst=str(NATIVE6)) / UDP(sport=1, dport=2) / b"hi")
    out = only(host.from_tun(pkt), IP4)
    assert IPv4Address(out.dest) == relay4
    assert only(relay.from_net(wire4(out, host4), None), TUN).data == pkt
    back = raw(IPv6(src=str(NATIVE6), dst=str(src)) / UDP(sport=2, dport=1))
    out = only(relay.from_tun(back), IP4)
    assert IPv4Address(out.dest) == host4
    assert only(host.from_net(wire4(out, relay4), None), TUN).data == back
    # a 2002:: source from the wrong IPv4 address, and a native one not from the relay: spoofed
    spoof = raw(IPv6(src="2002:c000:263::1", dst=str(src)) / UDP())
    assert not relay.from_net(pk.build_ipv4(host4.packed, relay4.packed, 41, spoof), None)
    assert not host.from_net(pk.build_ipv4(IPv4Address("198.51.100.1").packed, host4.packed, 41, back), None)
    assert sum(relay.drops.values()) == 1 and sum(host.drops.values()) == 1


def test_6rd_ce_and_br():
    domain = addresses.SixRdDomain(IPv6Network("2001:db8::/32"), 8, (IPv4Address("10.0.0.1"),))
    ce4 = IPv4Address("10.100.100.1")
    ce, br = encap.sixrd(domain, ce4), encap.sixrd(domain, IPv4Address("10.0.0.1"), role="br")
    assert ce.own6 == IPv6Address("2001:db8:6464:100::1")
    pkt = raw(IPv6(src=str(ce.own6), dst=str(NATIVE6)) / UDP())
    out = only(ce.from_tun(pkt), IP4)
    assert only(br.from_net(wire4(out, ce4), None), TUN).data == pkt
    reply = raw(IPv6(src=str(NATIVE6), dst=str(ce.own6)) / UDP())
    out = only(br.from_tun(reply), IP4)
    assert IPv4Address(out.dest) == ce4
    # another CE's prefix from this CE's IPv4 address is refused at the BR
    spoof = raw(IPv6(src="2001:db8:6464:200::1", dst=str(NATIVE6)) / UDP())
    assert not br.from_net(pk.build_ipv4(ce4.packed, b"\x0a\0\0\x01", 41, spoof), None)


def test_isatap_host_router_and_on_link_peer():
    prefix = IPv6Network("2001:db8:5::/64")
    router4, a4, b4 = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.5"), IPv4Address("10.0.0.6")
    a, b = encap.isatap(a4, prefix, router=router4), encap.isatap(b4, prefix, router=router4)
    router = encap.isatap(router4, prefix, role="router")
    on_link = raw(IPv6(src=str(a.own6), dst=str(b.own6)) / UDP())
    out = only(a.from_tun(on_link), IP4)
    assert IPv4Address(out.dest) == b4  # straight to the IPv4 address in the identifier
    assert only(b.from_net(wire4(out, a4), None), TUN).data == on_link
    off = raw(IPv6(src=str(a.own6), dst=str(NATIVE6)) / UDP())
    out = only(a.from_tun(off), IP4)
    assert IPv4Address(out.dest) == router4 and only(router.from_net(wire4(out, a4), None), TUN)
    # b's ISATAP address from a's IPv4 address: refused
    assert not router.from_net(pk.build_ipv4(a4.packed, router4.packed, 41, raw(IPv6(src=str(b.own6)) / UDP())),
                               None)


def test_6over4_unicast_and_multicast():
    a4, b4 = IPv4Address("10.1.0.1"), IPv4Address("10.1.0.2")
    a, b = encap.sixover4(a4), encap.sixover4(b4)
    ns = raw(IPv6(src=str(a.own6), dst="ff02::1:ff01:2") / UDP())
    out = only(a.from_tun(ns), IP4)
    assert IPv4Address(out.dest) == IPv4Address("239.192.0.2")
    assert IPv4Address("239.192.0.2").packed in b.socket.groups  # b listens on its solicited-node group
    assert only(b.from_net(wire4(out, a4), None), TUN).data == ns
    uni = raw(IPv6(src=str(a.own6), dst=str(b.own6)) / UDP())
    assert IPv4Address(only(a.from_tun(uni), IP4).dest) == b4


def test_6over4_host_with_a_router_for_what_is_off_its_prefix():
    prefix, r4 = IPv6Network("2001:db8:64::/64"), IPv4Address("10.1.0.254")
    host, router = encap.sixover4(IPv4Address("10.1.0.1"), prefix, router=r4), encap.sixover4(r4, prefix)
    away = raw(IPv6(src=str(host.own6), dst="3fff:ffff::2:1") / UDP())
    out = only(host.from_tun(away), IP4)
    assert IPv4Address(out.dest) == r4 and only(router.from_net(wire4(out, IPv4Address("10.1.0.1")), None), TUN)
    back = raw(IPv6(src="3fff:ffff::2:1", dst=str(host.own6)) / UDP())
    assert only(host.from_net(wire4(only(router.from_tun(back), IP4), r4), None), TUN).data == back
    assert not host.from_net(wire4(only(router.from_tun(back), IP4), IPv4Address("10.1.0.9")), None)  # not the router
    on_link = raw(IPv6(src=str(host.own6), dst="2001:db8:64::a01:2") / UDP())
    assert IPv4Address(only(host.from_tun(on_link), IP4).dest) == IPv4Address("10.1.0.2")


def test_protocol_41_bad_input():
    host = encap.sixtofour(IPv4Address("192.0.2.10"))
    big = raw(IPv6(src=str(host.own6), dst=str(NATIVE6)) / UDP() / (b"x" * 1500))
    err = IPv6(only(host.from_tun(big), TUN).data)
    assert err[ICMPv6PacketTooBig].mtu == 1480
    relay4 = addresses.SIXTOFOUR_RELAY_ANYCAST.packed
    good = raw(IPv6(src=str(NATIVE6), dst=str(host.own6)) / UDP())
    for bad in (pk.build_ipv4(relay4, b"\xc0\0\2\x0a", 41, good[:30]),  # truncated inner header
                pk.build_ipv4(relay4, b"\xc0\0\2\x0a", 41, b"\x45" + good[1:]),  # inner not IPv6
                pk.build_ipv4(relay4, b"\xc0\0\2\x0a", 17, good),  # not protocol 41
                pk.build_ipv4(relay4, b"\xc0\0\2\x0a", 41, good)[:-5],  # outer shorter than it says
                b"\x00" * 3):
        assert host.from_net(bad, None) == []
    assert only(host.from_net(pk.build_ipv4(relay4, b"\xc0\0\2\x0a", 41, good), None), TUN)
    assert sum(host.drops.values()) == 6


# ---- Teredo ---------------------------------------------------------------------------------------

def test_teredo_qualification_and_data_through_a_nat():
    server4, relay4 = IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")
    public, public_port = IPv4Address("198.51.100.20"), 40000  # what the NAT shows
    client = teredo.TeredoClient(server4, (relay4, 3544), random.Random(5))
    server, relay = teredo.TeredoServer(server4), teredo.TeredoRelay(own6=NATIVE6)
    rs = only(client.tick(0.0), VIA_UDP)
    assert rs.dest == (server4.packed, 3544)
    ra = only(server.from_net(rs.data, (public.packed, public_port)), VIA_UDP)
    assert client.from_net(ra.data, (server4.packed, 3544)) == []
    addr = client.address.address()
    assert addr in IPv6Network("2001:0:c000:201::/64") and client.address.client == public
    assert client.address.port == public_port and not client.tick(1.0)  # qualified: no more solicitations
    pkt = raw(IPv6(src=str(addr), dst=str(NATIVE6)) / ICMPv6EchoRequest())
    out = only(client.from_tun(pkt), VIA_UDP)
    assert out.dest == (relay4.packed, 3544)
    assert only(relay.from_net(out.data, (public.packed, public_port)), TUN).data == pkt
    assert not relay.from_net(out.data, (public.packed, public_port + 1))  # not from the embedded mapping
    back = raw(IPv6(src=str(NATIVE6), dst=str(addr)) / UDP())
    out = only(relay.from_tun(back), VIA_UDP)
    assert out.dest == (public.packed, public_port)
    assert only(client.from_net(out.data, (relay4.packed, 3544)), TUN).data == back
    bubble = pk.build_ipv6(NATIVE6.packed, addr.packed, pk.PROTO_NONE, b"")
    assert client.from_net(bubble, (relay4.packed, 3544)) == [] and client.drops["bubble"] == 1
    err = IPv6(only(client.from_tun(raw(IPv6(src=str(addr), dst=str(NATIVE6)) / (b"x" * 1300))), TUN).data)
    assert err[ICMPv6PacketTooBig].mtu == 1280
    assert not server.from_net(b"\x00\x01\x00", (public.packed, 1))  # authentication header: refused


# ---- IPv4 in IPv6 ---------------------------------------------------------------------------------

AFTR6, B4_6 = IPv6Address("2001:db8:a::1"), IPv6Address("2001:db8:b::2")
POOL = IPv4Address("203.0.113.9")
SERVER = IPv4Address("198.51.100.80")


def test_dslite_b4_and_aftr_with_nat44():
    b4, aftr = encap.DsLiteB4(AFTR6), encap.DsLiteAftr([POOL], random.Random(2))
    pkt = raw(IP(src="192.0.0.2", dst=str(SERVER)) / UDP(sport=5000, dport=53) / b"q")
    out = only(b4.from_tun(pkt), IP6)
    assert out.dest == AFTR6.packed
    natted = IP(only(aftr.from_net(out.data, B4_6.packed), TUN).data)
    assert natted.src == str(POOL) and natted[UDP].dport == 53
    port = natted[UDP].sport
    reply = raw(IP(src=str(SERVER), dst=str(POOL)) / UDP(sport=53, dport=port) / b"a")
    out = only(aftr.from_tun(reply), IP6)
    assert out.dest == B4_6.packed
    back = IP(only(b4.from_net(out.data, AFTR6.packed), TUN).data)
    assert back.dst == "192.0.0.2" and back[UDP].dport == 5000
    del back[UDP].chksum, back[IP].chksum
    assert IP(raw(back))[UDP].chksum == IP(out.data)[UDP].chksum  # checksums carried over correctly
    # an ICMP error from the far side about our datagram reaches the B4 too
    err = raw(IP(src=str(SERVER), dst=str(POOL)) / ICMP(type=3, code=3) / raw(natted)[:28])
    e = IP(only(b4.from_net(only(aftr.from_tun(err), IP6).data, AFTR6.packed), TUN).data)
    assert e[ICMP].type == 3 and e.dst == "192.0.0.2"
    # unsolicited inbound, packets not from the AFTR, oversized with DF
    assert not aftr.from_tun(raw(IP(src=str(SERVER), dst=str(POOL)) / UDP(sport=1, dport=port + 1)))
    assert not b4.from_net(pkt, B4_6.packed)
    big = raw(IP(src="192.0.0.2", dst=str(SERVER), flags="DF") / UDP() / (b"x" * 1460))
    assert IP(only(b4.from_tun(big), TUN).data)[ICMP].nexthopmtu == 1460
    frags = b4.from_tun(raw(IP(src="192.0.0.2", dst=str(SERVER)) / UDP() / (b"x" * 1460)))
    assert len(frags) == 2 and all(len(f.data) <= 1460 for f in frags)


RULE = mapping.MapRule(IPv6Network("2001:db8::/40"), IPv4Network("192.0.2.0/24"), ea_len=16)
CE = mapping.derive_ce(RULE, "2001:db8:0012:3400::/56")
BR6 = IPv6Address("2001:db8:ffff::1")
LAN = IPv4Address("192.168.1.10")


def test_map_e_ce_and_br():
    ce, br = encap.MapECe(CE, BR6, random.Random(4)), encap.MapEBr((RULE,), BR6, IPv4Address("192.0.2.254"))
    pkt = raw(IP(src=str(LAN), dst=str(SERVER)) / UDP(sport=5000, dport=80))
    out = only(ce.from_tun(pkt), IP6)
    assert out.dest == BR6.packed
    inner = IP(only(br.from_net(out.data, CE.ipv6.packed), TUN).data)
    assert inner.src == "192.0.2.18" and inner[UDP].sport in CE.port_set
    reply = raw(IP(src=str(SERVER), dst="192.0.2.18") / UDP(sport=80, dport=inner[UDP].sport))
    out = only(br.from_tun(reply), IP6)
    assert out.dest == CE.ipv6.packed  # found by address and port
    back = IP(only(ce.from_net(out.data, BR6.packed), TUN).data)
    assert back.dst == str(LAN) and back[UDP].dport == 5000
    # the BR refuses a port outside the CE's set, the CE one outside its set and an unknown sender
    bad_port = raw(IP(src="192.0.2.18", dst=str(SERVER)) / UDP(sport=1236, dport=80))
    assert not br.from_net(bad_port, CE.ipv6.packed) and "spoofed" in " ".join(br.drops)
    assert not ce.from_net(raw(IP(src=str(SERVER), dst="192.0.2.18") / UDP(sport=80, dport=1236)), BR6.packed)
    assert not ce.from_net(reply, IPv6Address("2001:db8:dead::1").packed)


# ---- translators ----------------------------------------------------------------------------------

def test_464xlat_clat_and_plat():
    pref64 = IPv6Network("64:ff9b::/96")
    clat6 = IPv6Address("2001:db8:c::64")
    clat = xlat.Clat(clat6, pref64)
    plat = xlat.Plat(pref64, [POOL], IPv6Address("2001:db8:f::1"), random.Random(3))
    pkt = raw(IP(src="192.0.0.1", dst=str(SERVER)) / UDP(sport=7000, dport=9) / b"x")
    v6 = IPv6(only(clat.from_tun(pkt), TUN).data)
    assert v6.src == str(clat6) and v6.dst == "64:ff9b::c633:6450"
    v4 = IP(only(plat.from_tun(raw(v6)), TUN).data)
    assert v4.src == str(POOL) and v4.dst == str(SERVER)
    reply = raw(IP(src=str(SERVER), dst=str(POOL)) / UDP(sport=9, dport=v4[UDP].sport) / b"y")
    v6back = only(plat.from_tun(reply), TUN).data
    back = IP(only(clat.from_tun(v6back), TUN).data)
    assert back.dst == "192.0.0.1" and back[UDP].dport == 7000 and bytes(back[UDP].payload) == b"y"
    unsolicited = raw(IP(src=str(SERVER), dst=str(POOL)) / UDP(sport=9, dport=1))
    assert not plat.from_tun(unsolicited) and not clat.from_tun(b"\x20")


def test_map_t_ce_and_br():
    dmr = IPv6Network("2001:db8:ffff::/64")
    ce = xlat.MapTCe(CE, dmr, random.Random(6))
    br = xlat.MapTBr((RULE,), dmr, IPv4Address("192.0.2.254"), BR6)
    pkt = raw(IP(src=str(LAN), dst="10.2.3.4") / UDP(sport=5000, dport=80))
    v6 = IPv6(only(ce.from_tun(pkt), TUN).data)
    assert v6.src == str(CE.ipv6) and v6.dst == "2001:db8:ffff:0:a:203:400:0"
    v4 = IP(only(br.from_tun(raw(v6)), TUN).data)
    assert v4.src == "192.0.2.18" and v4.dst == "10.2.3.4" and v4[UDP].sport in CE.port_set
    reply = raw(IP(src="10.2.3.4", dst="192.0.2.18") / UDP(sport=80, dport=v4[UDP].sport))
    v6r = IPv6(only(br.from_tun(reply), TUN).data)
    assert v6r.dst == str(CE.ipv6) and v6r.src == "2001:db8:ffff:0:a:203:400:0"  # RFC 7599 example 2
    back = IP(only(ce.from_tun(raw(v6r)), TUN).data)
    assert back.dst == str(LAN) and back[UDP].dport == 5000
    spoof = raw(IPv6(src=str(CE.ipv6), dst="2001:db8:ffff:0:a:203:400:0") / UDP(sport=1236, dport=80))
    assert not br.from_tun(spoof)


def test_a_map_ce_tells_the_host_itself_that_a_packet_is_too_big():
    """The CE's NAPT rewrites the source before the packet is sized for the softwire or translated: the
    Fragmentation Needed must still go to the host's own address, quoting the packet as it sent it (found
    emulating MAP-E and MAP-T, where the error went to the CE's external address and the host never heard)."""
    big = raw(IP(src=str(LAN), dst=str(SERVER), flags="DF") / UDP(sport=5000, dport=80) / (b"x" * 1472))
    for ce, mtu in ((encap.MapECe(CE, BR6, random.Random(4)), 1460),
                    (xlat.MapTCe(CE, IPv6Network("2001:db8:ffff::/64"), random.Random(6), mtu6=1500), 1480)):
        error = IP(only(ce.from_tun(big), TUN).data)
        assert error.dst == str(LAN) and error[ICMP].type == 3 and error[ICMP].code == 4
        assert error[ICMP].nexthopmtu == mtu
        assert error[IPerror].src == str(LAN) and error[UDPerror].sport == 5000


def test_a_map_ce_forwards_a_port_of_its_set_to_a_listener_behind_it():
    ce = encap.MapECe(CE, BR6, random.Random(4), forwards=((LAN, 1232),))
    syn = raw(IP(src=str(SERVER), dst="192.0.2.18") / UDP(sport=80, dport=1232))
    inside = IP(only(ce.from_net(syn, BR6.packed), TUN).data)
    assert inside.dst == str(LAN) and inside[UDP].dport == 1232
    answer = raw(IP(src=str(LAN), dst=str(SERVER)) / UDP(sport=1232, dport=80))
    assert IP(only(ce.from_tun(answer), IP6).data)[UDP].sport == 1232  # leaves from the forwarded port
    ce.tick(1e9)  # a forward never expires
    assert only(ce.from_net(syn, BR6.packed), TUN)
    with pytest.raises(ValueError, match="port set"):
        xlat.MapTCe(CE, IPv6Network("2001:db8:ffff::/64"), random.Random(6), forwards=((LAN, 4002),))
