"""MAP rules, port sets and CE addresses against RFC 7599 Appendix A (which RFC 7597's examples
repeat), with hypothesis round trips between a CE's view and a BR's view."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pnode.transition import mapping as m

BMR = m.MapRule(IPv6Network("2001:db8::/40"), IPv4Network("192.0.2.0/24"), ea_len=16)
DMR = IPv6Network("2001:db8:ffff::/64")


def test_rfc7599_example_1_bmr():
    ce = m.derive_ce(BMR, "2001:db8:0012:3400::/56")
    assert ce.address == IPv4Address("192.0.2.18")
    assert (ce.psid, BMR.psid_len, BMR.psid_offset) == (0x34, 8, 6)
    assert ce.ipv6 == IPv6Address("2001:db8:0012:3400:0000:c000:0212:0034")
    ranges = ce.port_set.ranges()
    assert len(ranges) == 63
    assert ranges[:2] == [(1232, 1235), (2256, 2259)]
    assert ranges[-2:] == [(63696, 63699), (64720, 64723)]
    assert len(ce.port_set) == 63 * 4 == len(list(ce.port_set.ports()))
    assert 1232 in ce.port_set and 1236 not in ce.port_set and 208 not in ce.port_set  # A = 0 excluded


def test_rfc7599_example_2_br():
    # 10.2.3.4:80 -> 192.0.2.18:1232 at the BR
    assert m.dmr_address(DMR, "10.2.3.4") == IPv6Address("2001:db8:ffff:0:000a:0203:0400::")
    assert m.ce_address(BMR, "192.0.2.18", 1232) == IPv6Address("2001:db8:0012:3400:0000:c000:0212:0034")
    assert m.parse_ce_address(BMR, "2001:db8:0012:3400:0000:c000:0212:0034") == (IPv4Address("192.0.2.18"), 0x34)


def test_rfc7599_example_3_dmr_at_the_ce():
    ce = m.derive_ce(BMR, "2001:db8:0012:3400::/56")
    assert ce.ipv6 == IPv6Address("2001:db8:0012:3400:0000:c000:0212:0034")
    assert m.dmr_address(DMR, "10.2.3.4") == IPv6Address("2001:db8:ffff:0:000a:0203:0400::")


def test_rfc7599_example_4_no_ea_bits_no_sharing():
    # the example's text says 192.0.2.18 but its rule (192.0.2.1/32) and CE address say 192.0.2.1
    rule = m.MapRule(IPv6Network("2001:db8:0012:3400::/56"), IPv4Network("192.0.2.1/32"), ea_len=0)
    ce = m.derive_ce(rule, "2001:db8:0012:3400::/56")
    assert ce.address == IPv4Address("192.0.2.1") and ce.psid == 0
    assert ce.ipv6 == IPv6Address("2001:db8:0012:3400:0000:c000:0201:0000")
    assert len(ce.port_set) == 65536


def test_rfc7599_example_5_provisioned_psid():
    # the example provisions "PSID 0x20" but derives, lists the ports of, and addresses PSID 0x34:
    # we follow the derived values, which agree with each other
    rule = m.MapRule(IPv6Network("2001:db8:0012:3400::/56"), IPv4Network("192.0.2.18/32"), ea_len=0,
                     psid_len_override=8)
    ce = m.derive_ce(rule, "2001:db8:0012:3400::/56", psid=0x34)
    assert ce.ipv6 == IPv6Address("2001:db8:0012:3400:0000:c000:0212:0034")
    assert ce.port_set.ranges()[0] == (1232, 1235) and ce.port_set.ranges()[-1] == (64720, 64723)


def test_ipv4_prefix_delegation():
    # fewer EA bits than IPv4 suffix bits: the CE gets a prefix (RFC 7597 §5.2, o + r < 32)
    rule = m.MapRule(IPv6Network("2001:db8::/40"), IPv4Network("198.51.100.0/24"), ea_len=4)
    ce = m.derive_ce(rule, "2001:db8:00a0::/44")
    assert ce.ipv4 == IPv4Network("198.51.100.160/28")
    assert m.ce_address(rule, "198.51.100.165", None) == ce.ipv6


def test_longest_match():
    wide = m.MapRule(IPv6Network("2001:db8::/32"), IPv4Network("192.0.2.0/24"), ea_len=16)
    assert m.match_ipv4([wide, BMR], IPv4Address("192.0.2.9")) is wide  # equal length: first wins
    narrow = m.MapRule(IPv6Network("2001:db8:1::/48"), IPv4Network("192.0.2.128/25"), ea_len=7)
    assert m.match_ipv4([wide, narrow], IPv4Address("192.0.2.200")) is narrow
    assert m.match_ipv6([wide, narrow], IPv6Address("2001:db8:1::1")) is narrow
    assert m.match_ipv4([narrow], IPv4Address("10.0.0.1")) is None


def test_bad_rules():
    with pytest.raises(ValueError, match="PSID of more than 16"):
        m.MapRule(IPv6Network("2001:db8::/32"), IPv4Network("192.0.2.0/24"), ea_len=30)
    with pytest.raises(ValueError, match="shorter than"):
        BMR.ea_bits(IPv6Network("2001:db8::/48"))
    with pytest.raises(ValueError, match="does not fit"):
        m.PortSet(psid=300, psid_len=8)


@given(st.integers(0, 10), st.integers(0, 16), st.data())
def test_port_set_partition(k, a, data):
    """The 2^k port sets of one offset are disjoint and, with A = 0 excluded, cover ports 2^(16-a)..65535."""
    if a + k > 16:
        return
    port = data.draw(st.integers(0, 65535))
    owners = [psid for psid in range(1 << k) if port in m.PortSet(psid, k, a)]
    excluded = a > 0 and port < 1 << (16 - a)
    assert owners == ([] if excluded else [m.psid_of(port, k, a)])
    ps = m.PortSet(data.draw(st.integers(0, (1 << k) - 1)), k, a)
    index = data.draw(st.integers(0, len(ps) - 1))
    assert ps.port(index) in ps


@given(st.integers(0, 255), st.integers(1024, 65535))
def test_ce_and_br_agree(suffix, port):
    """What a BR computes from (IPv4, port) is the address of the CE that owns the port."""
    v4 = IPv4Address(int(BMR.ipv4_prefix.network_address) | suffix)
    addr = m.ce_address(BMR, v4, port)
    v4_back, psid = m.parse_ce_address(BMR, addr)
    assert v4_back == v4 and psid == m.psid_of(port, 8, 6)
    end_user = IPv6Network((int(addr) >> 72 << 72, 56))
    ce = m.derive_ce(BMR, end_user)
    assert ce.ipv6 == addr and ce.address == v4 and port in ce.port_set
