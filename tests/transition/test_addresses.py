"""Address math against the RFCs' own examples, with round trips over every input (hypothesis).

Where a vector is not from the RFC it checks, the test says where it is from."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.utils6 import teredoAddrExtractInfo

from p2pnode.transition import addresses as a

ipv4s = st.integers(0, 2**32 - 1).map(IPv4Address)
public_ipv4s = ipv4s.filter(a.is_globally_unique)


# ---- RFC 6052 §2.4: 192.0.2.33 under each prefix length ---------------------------------------------

RFC6052_EXAMPLES = [
    ("2001:db8::/32", "2001:db8:c000:221::"),
    ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
    ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
    ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
]


@pytest.mark.parametrize("prefix,expected", RFC6052_EXAMPLES)
def test_rfc6052_section_2_4(prefix, expected):
    assert a.synthesize(prefix, "192.0.2.33") == IPv6Address(expected)
    assert a.extract(prefix, expected) == IPv4Address("192.0.2.33")


@given(st.sampled_from(a.RFC6052_LENGTHS), st.integers(0, 2**128 - 1), ipv4s)
def test_rfc6052_round_trip(length, bits, v4):
    prefix_value = bits >> (128 - length) << (128 - length)
    if length < 96:
        prefix_value &= ~(0xFF << 56)  # a prefix covering the u octet is not valid there
    prefix = IPv6Network((prefix_value, length))
    if prefix == a.WELL_KNOWN_PREFIX and not a.is_globally_unique(v4):
        return
    addr = a.synthesize(prefix, v4)
    assert (int(addr) >> 56) & 0xFF == 0 or length == 96  # the u octet stays zero
    assert addr in prefix
    assert a.extract(prefix, addr) == v4
    assert a.extract(length, addr) == v4


def test_rfc6052_refuses():
    with pytest.raises(ValueError, match="/33"):
        a.synthesize("2001:db8::/33", "192.0.2.1")
    with pytest.raises(ValueError, match="non-global"):
        a.synthesize(a.WELL_KNOWN_PREFIX, "10.1.2.3")
    with pytest.raises(ValueError, match="bits 64-71"):
        a.extract(64, "2001:db8:122:344:ff00:2:2100:0")


# ---- 6to4 and 6rd ---------------------------------------------------------------------------------

def test_6to4_prefix():
    # RFC 3056 §2 gives the layout; the value is worked by hand: 192.0.2.1 = c000:0201
    assert a.sixtofour_prefix("192.0.2.1") == IPv6Network("2002:c000:201::/48")
    assert a.sixtofour_ipv4("2002:c000:201::1") == IPv4Address("192.0.2.1")
    with pytest.raises(ValueError, match="globally unique"):
        a.sixtofour_prefix("10.0.0.1")


@given(public_ipv4s)
def test_6to4_round_trip_agrees_with_ipaddress(v4):
    prefix = a.sixtofour_prefix(v4)
    assert prefix.network_address.sixtofour == v4 == a.sixtofour_ipv4(prefix.network_address + 1)


def test_6rd_delegated_prefix():
    # RFC 5969 §4 gives the layout but no worked example: this one (2001:db8::/32, IPv4MaskLen 8,
    # CE 10.100.100.1) is worked by hand from it
    domain = a.SixRdDomain(IPv6Network("2001:db8::/32"), 8, (IPv4Address("10.0.0.1"),))
    assert domain.delegated_prefix("10.100.100.1") == IPv6Network("2001:db8:6464:100::/56")
    assert domain.ipv4_of("2001:db8:6464:100::1", "10.0.0.1") == IPv4Address("10.100.100.1")
    whole = a.SixRdDomain(IPv6Network("2001:db8::/32"), 0)
    assert whole.delegated_prefix("192.0.2.1") == IPv6Network("2001:db8:c000:201::/64")
    with pytest.raises(ValueError, match="/136"):
        a.SixRdDomain(IPv6Network("2001:db8::/104"), 0)


@given(st.integers(16, 64), st.integers(0, 32), ipv4s, ipv4s)
def test_6rd_round_trip(prefix_len, mask_len, ce, domain_v4):
    if prefix_len + 32 - mask_len > 128:
        return
    value = (0x20010DB8 << 96) >> (128 - prefix_len) << (128 - prefix_len)
    domain = a.SixRdDomain(IPv6Network((value, prefix_len)), mask_len)
    # the CE shares the domain's high bits
    shared = int(domain_v4) & ~((1 << (32 - mask_len)) - 1) & 0xFFFFFFFF
    ce = IPv4Address(shared | (int(ce) & ((1 << (32 - mask_len)) - 1)))
    delegated = domain.delegated_prefix(ce)
    assert delegated.prefixlen == prefix_len + 32 - mask_len
    assert domain.ipv4_of(delegated.network_address, domain_v4) == ce


# ---- ISATAP and 6over4 ----------------------------------------------------------------------------

def test_isatap_interface_ids():
    # RFC 5214 §6.1: [00-00-5E-FE] for a private IPv4 address, the u bit set ([02-00-5E-FE]) when the
    # address is globally unique; the two values are worked by hand from that text
    assert a.isatap_address("fe80::/64", "192.0.2.143") == IPv6Address("fe80::200:5efe:c000:28f")
    assert a.isatap_address("fe80::/64", "10.0.0.5") == IPv6Address("fe80::5efe:a00:5")
    assert a.isatap_ipv4("2001:db8::200:5efe:c000:28f") == IPv4Address("192.0.2.143")
    with pytest.raises(ValueError, match="ISATAP"):
        a.isatap_ipv4("2001:db8::1")


@given(ipv4s)
def test_isatap_round_trip(v4):
    addr = a.isatap_address("2001:db8:1:2::/64", v4)
    assert a.isatap_ipv4(addr) == v4


def test_6over4():
    # RFC 2529 §4-6 layouts; values worked by hand
    assert a.sixover4_address("fe80::/64", "192.0.2.1") == IPv6Address("fe80::c000:201")
    assert a.sixover4_ipv4("fe80::c000:201") == IPv4Address("192.0.2.1")
    # all-nodes ff02::1 and a solicited-node group ff02::1:ff00:201
    assert a.sixover4_multicast("ff02::1") == IPv4Address("239.192.0.1")
    assert a.sixover4_multicast("ff02::1:ff00:201") == IPv4Address("239.192.2.1")


# ---- Teredo ---------------------------------------------------------------------------------------

def test_teredo_widely_used_example():
    # not from RFC 4380 (which gives the layout in §4 but no worked address): the example of the
    # Teredo literature, whose decoding Python's ipaddress and scapy both agree with
    addr = IPv6Address("2001:0000:4136:e378:8000:63bf:3fff:fdd2")
    parts = a.TeredoAddress.parse(addr)
    assert parts == a.TeredoAddress(IPv4Address("65.54.227.120"), 0x8000, 40000, IPv4Address("192.0.2.45"))
    assert parts.address() == addr
    assert addr.teredo == (parts.server, parts.client)
    assert teredoAddrExtractInfo(str(addr)) == ("65.54.227.120", 0x8000, "192.0.2.45", 40000)


@given(ipv4s, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), ipv4s)
def test_teredo_round_trip(server, flags, port, client):
    parts = a.TeredoAddress(server, flags, port, client)
    addr = parts.address()
    assert a.TeredoAddress.parse(addr) == parts
    assert addr.teredo == (server, client)
    assert a.teredo_deobfuscate(a.teredo_obfuscate(port, client)) == (port, client)


def test_teredo_flags_follow_rfc5991():
    rng = random.Random(1)
    seen = {a.teredo_flags(rng) for _ in range(200)}
    assert all(f & 0x8000 == 0 and f & 0x4000 == 0 and f & 0x0300 == 0 for f in seen)  # C, R, U, G zero
    assert len(seen) > 150  # 12 random bits
