"""Provisioning options: round trips, byte layouts checked against scapy where it has the layer, and
refusal of malformed input with a clear message."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6NDOptPREF64

from p2pnode.transition import addresses, options
from p2pnode.transition.mapping import MapRule


def test_6rd_option_round_trip():
    domain = addresses.SixRdDomain(IPv6Network("2001:db8::/32"), 8,
                                   (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")))
    data = options.encode_6rd(domain)
    assert len(data) == 18 + 8 and data[:2] == bytes([8, 32])
    assert options.decode_6rd(data) == domain


@pytest.mark.parametrize("data,match", [(b"\x08\x20" + bytes(16), "18 bytes"),
                                        (b"\x21\x20" + bytes(20), "out of range"),
                                        (b"\x08\x10" + b"\xff" * 20, "6RD")])
def test_6rd_option_refused(data, match):
    with pytest.raises(options.OptionError, match=match):
        options.decode_6rd(data)


def test_aftr_name():
    data = options.encode_dns_name("aftr.example.net")
    assert data == b"\x04aftr\x07example\x03net\x00"
    assert options.decode_dns_name(data) == "aftr.example.net"
    for bad in (b"\x04aftr", b"\xc0\x0c", b"\x00", b"\x01a\x00x"):
        with pytest.raises(options.OptionError):
            options.decode_dns_name(bad)


RULE = MapRule(IPv6Network("2001:db8::/40"), IPv4Network("192.0.2.0/24"), ea_len=16, forwarding=True)


def test_map_e_container():
    config = options.S46Config(translation=False, rules=(RULE,), border_relays=(IPv6Address("2001:db8:ffff::1"),))
    data = options.encode_s46(config)
    # S46_RULE: flags F=1, EA-len 16, prefix4-len 24, 192.0.2.0, prefix6-len 40, 5 bytes of prefix, PORTPARAMS
    assert data[:4] == b"\x00\x59" + (len(data) - 4 - 20).to_bytes(2, "big")
    assert data[4:16] == bytes([1, 16, 24, 192, 0, 2, 0, 40, 0x20, 0x01, 0x0d, 0xb8])
    back = options.decode_s46(options.OPTION_S46_CONT_MAPE, data)
    assert back == config


def test_map_t_container_with_provisioned_psid():
    rule = MapRule(IPv6Network("2001:db8:12:3400::/56"), IPv4Network("192.0.2.18/32"), ea_len=0, psid_len_override=8)
    config = options.S46Config(translation=True, rules=(rule,), dmr=IPv6Network("2001:db8:ffff::/64"), psid=0x34)
    data = options.encode_s46(config)
    assert b"\x00\x5d\x00\x04\x06\x08\x34\x00" in data  # PORTPARAMS: offset 6, k 8, PSID in the high bits
    assert options.decode_s46(options.OPTION_S46_CONT_MAPT, data) == config


@pytest.mark.parametrize("code,data,match", [
    (94, b"", "no S46_RULE"),
    (95, b"\x00\x59\x00\x02\x00\x00", "S46_RULE of 2"),
    (94, b"\x00\x59\x00\x40", "runs past"),
    (94, b"\x00\x59\x00\x08\x00\x10\x18\xc0\x00\x02\x00\x00", "MAP-E needs an S46_BR"),
    (95, b"\x00\x59\x00\x08\x00\x10\x18\xc0\x00\x02\x00\x00", "MAP-T needs an S46_DMR"),
    (94, b"\x00\x59\x00\x08\x00\x10\x18\xc0\x00\x02\x01\x00", "bits after /24"),
    (96, b"", "not a MAP container"),
])
def test_map_container_refused(code, data, match):
    with pytest.raises(options.OptionError, match=match):
        options.decode_s46(code, data)


@pytest.mark.parametrize("prefix", ["64:ff9b::/96", "2001:db8:1::/64", "2001:db8:1:ff00::/56", "2001:db8:1::/48",
                                    "2001:db8:100::/40", "2001:db8::/32"])
def test_pref64_against_scapy(prefix):
    prefix = IPv6Network(prefix)
    data = options.encode_pref64(prefix, 1800)
    plc = (96, 64, 56, 48, 40, 32).index(prefix.prefixlen)
    theirs = ICMPv6NDOptPREF64(scaledlifetime=225, plc=plc, prefix=str(prefix.network_address))
    assert data == bytes(theirs)
    assert options.decode_pref64(bytes(theirs)) == (prefix, 1800)


def test_pref64_refused():
    with pytest.raises(options.OptionError, match="code 6"):
        options.decode_pref64(bytes([38, 2, 0, 6]) + bytes(12))
    with pytest.raises(options.OptionError, match="type 38"):
        options.decode_pref64(bytes([38, 3]) + bytes(14))


@given(st.sampled_from(addresses.RFC6052_LENGTHS), st.integers(0, 2**32 - 1))
def test_rfc7050_finds_the_prefix(length, high):
    prefix = IPv6Network(((0x20010DB8 << 96 | high << 64) >> (128 - length) << (128 - length), length))
    if length < 96 and (int(prefix.network_address) >> 56) & 0xFF:
        return
    answers = [addresses.synthesize(prefix, wka) for wka in options.IPV4ONLY_ADDRESSES]
    assert options.pref64_from_ipv4only(answers) == [prefix]


def test_rfc7050_ignores_unrelated_answers():
    assert options.pref64_from_ipv4only([IPv6Address("2001:db8::1")]) == []
