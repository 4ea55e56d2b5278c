"""mDNS discovery's pure parts: the TXT record's dnsaddr strings and the spec's peer names."""

from __future__ import annotations

import random
import string

from hypothesis import given
from hypothesis import strategies as st

from p2pnode.identity import Keypair
from p2pnode.runtime.mdns import TXT_KEY, decode_txt, encode_txt, peer_addrs, peer_name

A = Keypair.from_seed(bytes(31) + b"\x01").peer_id
B = Keypair.from_seed(bytes(31) + b"\x02").peer_id


def test_peer_names_are_the_specs_random_lower_case_strings():
    names = {peer_name(random.Random(seed)) for seed in range(200)}
    assert len(names) == 200
    assert all(32 <= len(n) <= 63 and set(n) <= set(string.ascii_lowercase + string.digits) for n in names)


@given(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=300), max_size=20))
def test_txt_round_trip_keeps_every_address_that_fits_a_string(addrs):
    fits = [a for a in addrs if len((TXT_KEY + a).encode()) <= 255]
    assert decode_txt(encode_txt(addrs)) == fits


@given(st.binary(max_size=600))
def test_any_bytes_decode_without_error(raw):
    assert isinstance(decode_txt(raw), list)


def test_other_strings_are_ignored_and_the_key_is_case_insensitive():
    raw = bytes([11]) + b"v=spf1 -all" + bytes([12]) + b"DNSADDR=/x/y" + bytes([40]) + b"short"
    assert decode_txt(raw) == ["/x/y"]  # the last string runs past the record: dropped


def test_addresses_of_one_peer_are_taken_the_rest_named():
    values = [f"/ip4/10.0.0.1/tcp/4001/p2p/{A}", f"/ip4/10.0.0.1/udp/4001/quic-v1/p2p/{A}",
              f"/ip4/10.0.0.2/tcp/4001/p2p/{B}", "/ip4/10.0.0.1/tcp/4001", "not a multiaddr", ""]
    peer, addrs, problems = peer_addrs(values)
    assert peer == A and [str(a) for a in addrs] == values[:2]
    assert len(problems) == 4
    assert "another peer's" in problems[0] and "does not end in /p2p/" in problems[1]
    assert "is not a multiaddr" in problems[2] and "does not end in /p2p/" in problems[3]  # "" is the empty one


def test_no_usable_address_means_no_peer():
    assert peer_addrs(["garbage", "/ip4/1.2.3.4/tcp/1"])[:2] == (None, [])
