"""The DNS64 and RFC 7050 discovery: messages checked with dnspython, and one real exchange over
loopback UDP."""

from __future__ import annotations

import random
import threading
from ipaddress import IPv4Address, IPv6Network

import dns.message
import dns.rcode

from p2pnode.transition.dns64 import Dns64, pref64_from_response, pref64_query
from p2pnode.tunnels.dns64 import discover_pref64, serve


def test_ipv4only_arpa_answers():
    server = Dns64(IPv6Network("2001:db8:64::/96"), {"far.example": IPv4Address("198.51.100.80")})
    a = dns.message.from_wire(server.answer(dns.message.make_query("ipv4only.arpa", "A").to_wire()))
    assert sorted(r.address for r in a.answer[0]) == ["192.0.0.170", "192.0.0.171"]
    wire = server.answer(pref64_query(7))
    assert pref64_from_response(wire, 7) == [IPv6Network("2001:db8:64::/96")]
    assert pref64_from_response(wire, 8) == []  # not our query
    far = dns.message.from_wire(server.answer(dns.message.make_query("FAR.example.", "AAAA").to_wire()))
    assert [r.address for r in far.answer[0]] == ["2001:db8:64::c633:6450"]
    nx = dns.message.from_wire(server.answer(dns.message.make_query("other.example", "AAAA").to_wire()))
    assert nx.rcode() == dns.rcode.NXDOMAIN
    assert server.answer(b"\x00\x01garbage") is None and server.answer(wire) is None  # a response is no query


def test_pref64_lengths_other_than_96():
    server = Dns64(IPv6Network("2001:db8:122:300::/56"))
    assert pref64_from_response(server.answer(pref64_query(1)), 1) == [IPv6Network("2001:db8:122:300::/56")]


def test_discovery_over_udp():
    ready = threading.Event()
    where = {}

    def started(addr):
        where["port"] = addr[1]
        ready.set()

    threading.Thread(target=serve, args=(Dns64(IPv6Network("64:ff9b::/96")), ("::1", 0), started),
                     daemon=True).start()
    assert ready.wait(5)
    assert discover_pref64(("::1", where["port"]), rng=random.Random(1)) == [IPv6Network("64:ff9b::/96")]
