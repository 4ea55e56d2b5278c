"""NAPT state and the stateful NAT64 built from it and the RFC 7915 translator."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from scapy.all import ICMP, IP, UDP, IPv6, raw
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest

from p2pnode.transition import addresses
from p2pnode.transition.mapping import PortSet
from p2pnode.transition.nat import Napt, Nat64
from p2pnode.transition.translate import Translator

POOL = IPv4Address("203.0.113.1")
PREF64 = IPv6Network("64:ff9b::/96")
CLIENT = IPv6Address("2001:db8:1::5")
SERVER4 = IPv4Address("198.51.100.9")


def plat():
    nat = Nat64(PREF64, [POOL.packed], random.Random(3))
    return nat, Translator(**nat.mappers(), own_ipv4=POOL.packed, own_ipv6=IPv6Address("2001:db8:ff::1").packed)


def test_nat64_round_trip_and_no_unsolicited_inbound():
    nat, t = plat()
    out = IPv6(src=str(CLIENT), dst=str(addresses.synthesize(PREF64, SERVER4))) / UDP(sport=4000, dport=53) / b"q"
    p4 = IP(t.to_ipv4(raw(out)).packets[0])
    assert p4.src == str(POOL) and p4.dst == str(SERVER4) and p4[UDP].dport == 53
    port = p4[UDP].sport
    back = IP(src=str(SERVER4), dst=str(POOL)) / UDP(sport=53, dport=port) / b"a"
    p6 = IPv6(t.to_ipv6(raw(back)).packets[0])
    assert p6.dst == str(CLIENT) and p6[UDP].dport == 4000 and p6.src == "64:ff9b::c633:6409"
    stranger = IP(src=str(SERVER4), dst=str(POOL)) / UDP(sport=53, dport=port + 1)
    assert "mapping" in t.to_ipv6(raw(stranger)).dropped
    # the same client port keeps its mapping whoever it talks to (endpoint-independent)
    other = IPv6(src=str(CLIENT), dst=str(addresses.synthesize(PREF64, "192.0.2.200"))) / UDP(sport=4000, dport=9)
    assert IP(t.to_ipv4(raw(other)).packets[0])[UDP].sport == port
    nat.napt.tick(1000.0)
    assert "mapping" in t.to_ipv6(raw(back)).dropped  # expired


def test_nat64_echo_identifier_is_translated():
    _, t = plat()
    req = IPv6(src=str(CLIENT), dst=str(addresses.synthesize(PREF64, SERVER4))) / ICMPv6EchoRequest(id=5, seq=1)
    p4 = IP(t.to_ipv4(raw(req)).packets[0])
    assert p4[ICMP].type == 8
    rep = IP(src=str(SERVER4), dst=str(POOL)) / ICMP(type=0, id=p4[ICMP].id, seq=1)
    p6 = IPv6(t.to_ipv6(raw(rep)).packets[0])
    assert p6[ICMPv6EchoReply].id == 5 and p6.dst == str(CLIENT)


def test_napt_stays_in_its_port_set_and_runs_out():
    ports = PortSet(psid=0x34, psid_len=8, offset=6)
    napt = Napt([POOL.packed], ports, random.Random(1))
    got = {napt.outbound(b"", b"\x0a\0\0\x02", p)[1] for p in range(1, len(ports) + 1)}
    assert got == set(ports.ports())
    assert napt.outbound(b"", b"\x0a\0\0\x02", 60000) is None


def test_napt_softwire_context_separates_clients():
    napt = Napt([POOL.packed], range(2000, 2010), random.Random(1))
    a = napt.outbound(b"b4-one", b"\xc0\0\0\x02", 1000)
    b = napt.outbound(b"b4-two", b"\xc0\0\0\x02", 1000)  # both B4s use 192.0.0.2:1000
    assert a != b
    assert napt.inbound(*a).context == b"b4-one" and napt.inbound(*b).context == b"b4-two"
