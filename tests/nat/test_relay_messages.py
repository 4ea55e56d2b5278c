"""Circuit Relay v2 codec and vouchers: round trips of every message, malformed input refused by name,
vouchers that are forged, for someone else or expired refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pnode import envelope
from p2pnode.framing import CodecError
from p2pnode.identity import Keypair, PeerId
from p2pnode.pb import circuit_pb2
from p2pnode.relay import addrs, voucher
from p2pnode.relay.messages import (
    Connect,
    HopStatus,
    Limit,
    Reservation,
    Reserve,
    Status,
    StopConnect,
    StopStatus,
    decode_hop,
    decode_stop,
    encode_hop,
    encode_stop,
)
from p2pnode.transports.addresses import ip_multiaddr

KEYS = [Keypair.from_seed(bytes([i]) * 32) for i in range(4)]
peers = st.sampled_from([k.peer_id for k in KEYS])
# binary multiaddrs (the codec leaves out what is not one)
blobs = st.lists(st.builds(lambda ip, port: ip_multiaddr(str(ip), port, "tcp").to_bytes(), st.ip_addresses(),
                           st.integers(0, 65535)), max_size=4).map(tuple)
limits = st.none() | st.builds(Limit, st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1))
reservations = st.none() | st.builds(Reservation, st.integers(0, 2**64 - 1), blobs, st.binary(max_size=200))
hop_messages = st.one_of(st.just(Reserve()), st.builds(Connect, peers, blobs),
                         st.builds(HopStatus, st.sampled_from(list(Status)), reservations, limits))
stop_messages = st.one_of(st.builds(StopConnect, peers, limits), st.builds(StopStatus, st.sampled_from(list(Status))))


@given(hop_messages)
def test_hop_round_trip(message):
    assert decode_hop(encode_hop(message)) == message


def test_addresses_that_are_not_multiaddrs_are_left_out():
    good = ip_multiaddr("192.0.2.1", 4001, "tcp").to_bytes()
    bad = (b"\x04\x08\x08\x08\x08\x06", b"relay-addr")
    assert decode_hop(encode_hop(Connect(KEYS[0].peer_id, (*bad, good)))) == Connect(KEYS[0].peer_id, (good,))
    status = decode_hop(encode_hop(HopStatus(Status.OK, Reservation(1, (good, *bad)))))
    assert status.reservation.addrs == (good,)


@given(stop_messages)
def test_stop_round_trip(message):
    assert decode_stop(encode_stop(message)) == message


def test_reserve_is_sent_with_its_type():
    # RESERVE is 0: proto3 would drop it without explicit presence, and other implementations need the field
    assert encode_hop(Reserve()) == b"\x08\x00"


@pytest.mark.parametrize("data, error", [
    (b"", "without a type"),
    (b"\x08\x01", "CONNECT without a peer"),
    (circuit_pb2.HopMessage(type=1, peer=circuit_pb2.Peer(id=b"xx")).SerializeToString(), "bad peer ID"),
    (b"\x08\x02", "STATUS without a status"),
    (b"\x08\x02\x28\x07", "unknown status 7"),
    (b"\x08\x09", "unknown type 9"),
    (b"\xff\xff", "malformed"),
    (b"\x12" + b"\x7f" + b"a" * 127 + b"\x00" * 4000, "over the 4096-byte limit"),
])
def test_malformed_hop_refused_by_name(data, error):
    with pytest.raises(CodecError, match=error):
        decode_hop(data)


def test_malformed_stop_refused():
    with pytest.raises(CodecError, match="stop CONNECT without a peer"):
        decode_stop(b"\x08\x00")
    with pytest.raises(CodecError, match="stop STATUS without a status"):
        decode_stop(b"\x08\x01")


RELAY, PEER, OTHER = KEYS[0], KEYS[1], KEYS[2]


def test_voucher_round_trip():
    sealed = voucher.seal(RELAY, PEER.peer_id, 2000)
    opened = voucher.consume(sealed, relay=RELAY.peer_id, peer=PEER.peer_id, now=1000)
    assert opened == voucher.Voucher(RELAY.peer_id, PEER.peer_id, 2000)


def test_voucher_payload_is_canonical():
    payload = voucher.encode(voucher.Voucher(RELAY.peer_id, PEER.peer_id, 5))
    assert payload == b"\x0a\x26" + RELAY.peer_id.raw + b"\x12\x26" + PEER.peer_id.raw + b"\x18\x05"


@pytest.mark.parametrize("make, error", [
    # signed by someone else claiming to be the relay: forged
    (lambda: envelope.seal(OTHER, voucher.DOMAIN, voucher.PAYLOAD_TYPE,
                           voucher.encode(voucher.Voucher(RELAY.peer_id, PEER.peer_id, 2000))), "signed by"),
    (lambda: voucher.seal(OTHER, PEER.peer_id, 2000), "names relay"),
    (lambda: voucher.seal(RELAY, OTHER.peer_id, 2000), "names peer"),
    (lambda: voucher.seal(RELAY, PEER.peer_id, 999), "expired at 999"),
    # a peer record's envelope is not a voucher, however well signed
    (lambda: envelope.seal(RELAY, "libp2p-peer-record", b"\x03\x01", b""), "payload type"),
    (lambda: envelope.seal(RELAY, "other-domain", voucher.PAYLOAD_TYPE, b""), "does not verify"),
    (lambda: b"garbage", "voucher"),
])
def test_bad_vouchers_refused_by_name(make, error):
    with pytest.raises(voucher.VoucherError, match=error):
        voucher.consume(make(), relay=RELAY.peer_id, peer=PEER.peer_id, now=1000)


def test_tampered_voucher_refused():
    sealed = bytearray(voucher.seal(RELAY, PEER.peer_id, 2000))
    sealed[-1] ^= 1  # a bit of the signature
    with pytest.raises(voucher.VoucherError, match="does not verify"):
        voucher.consume(bytes(sealed), relay=RELAY.peer_id, peer=PEER.peer_id, now=1000)


def test_circuit_addresses():
    relay, target = RELAY.peer_id, PEER.peer_id
    advertised = addrs.advertised((f"/ip4/198.51.100.1/tcp/4001/p2p/{relay}".encode(),))
    assert advertised == ()  # text is not a binary multiaddr: skipped
    from multiaddr import Multiaddr
    relay_addr = Multiaddr(f"/ip4/198.51.100.1/tcp/4001/p2p/{relay}")
    (ours,) = addrs.advertised((relay_addr.to_bytes(),))
    assert str(Multiaddr(ours)) == f"{relay_addr}/p2p-circuit"
    parsed = addrs.parse(addrs.dial_addr(relay_addr, target))
    assert parsed == addrs.CircuitAddr(relay_addr, relay, target)
    assert addrs.parse(Multiaddr(ours)).target is None
    assert addrs.parse(Multiaddr(f"/p2p/{relay}/p2p-circuit/p2p/{target}")).relay == relay
    assert not addrs.is_circuit(relay_addr)
    assert not addrs.is_circuit(Multiaddr("/ip4/1.2.3.4/tcp/1/p2p-circuit"))  # no relay peer


def test_peer_ids_of_test_keys_are_distinct():
    assert len({k.peer_id for k in KEYS}) == len(KEYS)
    assert isinstance(KEYS[0].peer_id, PeerId)
