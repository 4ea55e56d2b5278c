"""Signed envelopes (RFC 0002), signed peer records (RFC 0003) and Identify's ``signedPeerRecord``.

Other implementations' side of the same bytes is checked by the interop tests (py-libp2p and js-libp2p take our
records and we take theirs); here, the rules: what the signature covers, domain and payload-type separation,
tampering, records that name someone else, and which record wins.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pnode import envelope, identify, peer_record
from p2pnode.envelope import EnvelopeError
from p2pnode.identity import Keypair, encode_public_key
from p2pnode.pb import envelope_pb2
from p2pnode.peer_record import OwnRecord, PeerRecord, PeerRecordBook

ALICE, BOB = Keypair.from_seed(b"a" * 32), Keypair.from_seed(b"b" * 32)
ADDRS = (bytes.fromhex("047f000001060fa1"), bytes.fromhex("29" + "00" * 15 + "01" + "0601bb"))  # ip4/tcp, ip6/tcp


def test_the_signature_covers_length_prefixed_domain_payload_type_and_payload():
    assert envelope.signed_bytes("dom", b"\x03\x01", b"xyz") == b"\x03dom\x02\x03\x01\x03xyz"
    sealed = envelope_pb2.Envelope.FromString(envelope.seal(ALICE, "dom", b"\x03\x01", b"xyz"))
    assert sealed.public_key.SerializeToString() == encode_public_key(ALICE.public_key)
    assert (sealed.payload_type, sealed.payload) == (b"\x03\x01", b"xyz")
    opened = envelope.consume(sealed.SerializeToString(), "dom", b"\x03\x01")
    assert (opened.signer, opened.payload) == (ALICE.peer_id, b"xyz")


@pytest.mark.parametrize("domain, payload_type, match", [
    ("libp2p-relay-rsvp", b"\x03\x01", "does not verify"),  # a signature is worthless in another domain
    ("dom", b"\x03\x02", "payload type"),
])
def test_an_envelope_opens_only_in_its_domain_and_for_its_payload_type(domain, payload_type, match):
    sealed = envelope.seal(ALICE, "dom", b"\x03\x01", b"xyz")
    with pytest.raises(EnvelopeError, match=match):
        envelope.consume(sealed, domain, payload_type)


def test_a_tampered_or_foreign_key_envelope_is_refused():
    pb = envelope_pb2.Envelope.FromString(envelope.seal(ALICE, "dom", b"t", b"xyz"))
    pb.payload = b"xyZ"
    with pytest.raises(EnvelopeError, match="does not verify"):
        envelope.consume(pb.SerializeToString(), "dom", b"t")
    pb.payload = b"xyz"
    pb.public_key.Data = BOB.public_key  # someone else's key over Alice's signature
    with pytest.raises(EnvelopeError, match="does not verify"):
        envelope.consume(pb.SerializeToString(), "dom", b"t")
    pb.public_key.Type = envelope_pb2.Secp256k1
    with pytest.raises(EnvelopeError, match="Secp256k1 key, which this node cannot verify"):
        envelope.consume(pb.SerializeToString(), "dom", b"t")


@given(st.binary(max_size=300))
def test_any_bytes_give_an_envelope_or_an_envelope_error(data):
    try:
        envelope.consume(data, "dom", b"t")
    except EnvelopeError:
        pass


def test_peer_record_round_trip_and_a_record_naming_another_peer():
    record = peer_record.consume(peer_record.seal(ALICE, 7, ADDRS))
    assert record == PeerRecord(ALICE.peer_id, 7, ADDRS)
    forged = envelope.seal(ALICE, peer_record.DOMAIN, peer_record.PAYLOAD_TYPE,
                           peer_record.encode(PeerRecord(BOB.peer_id, 8, ADDRS)))
    with pytest.raises(EnvelopeError, match="signed by"):
        peer_record.consume(forged)


def test_a_newer_record_replaces_an_older_one_never_the_reverse():
    book = PeerRecordBook(max_peers=2)
    old, new = PeerRecord(ALICE.peer_id, 5, ADDRS[:1]), PeerRecord(ALICE.peer_id, 6, ADDRS)
    assert book.update(old) is old and book.update(new) is new
    assert book.update(old) is new and book.update(PeerRecord(ALICE.peer_id, 6, ())) is new
    assert book.addresses(ALICE.peer_id, old, ADDRS[1:]) == ADDRS  # the newest signed record's addresses
    assert book.addresses(ALICE.peer_id, None, ADDRS[1:]) == ADDRS
    assert book.addresses(BOB.peer_id, None, ADDRS[1:]) == ADDRS[1:]  # no record: the unsigned addresses
    book.update(PeerRecord(BOB.peer_id, 1, ()))
    book.update(PeerRecord(Keypair.from_seed(b"c" * 32).peer_id, 1, ()))
    assert len(book) == 2 and book.get(ALICE.peer_id) is None  # bounded: the least recently updated goes


def test_our_record_is_sealed_again_only_when_the_addresses_change_with_a_growing_seq():
    own = OwnRecord(ALICE)
    first = own.sealed(ADDRS, seq_hint=100)
    assert own.sealed(ADDRS, seq_hint=200) == first
    second = own.sealed(ADDRS[:1], seq_hint=50)  # a clock that went back still gives a higher seq
    assert peer_record.consume(second).seq == 101 > peer_record.consume(first).seq


def _identify(keypair: Keypair, record: bytes) -> bytes:
    return identify.encode(identify.IdentifyInfo(keypair.public_key, (b"\x04\x0a\x00\x00\x01\x06\x00\x01",),
                                                 ("/ipfs/id/1.0.0",), signed_peer_record=record))


def test_identify_carries_a_signed_peer_record_whose_addresses_are_preferred():
    info = identify.decode(_identify(ALICE, peer_record.seal(ALICE, 3, ADDRS)), ALICE.peer_id)
    assert info.peer_record == PeerRecord(ALICE.peer_id, 3, ADDRS)
    assert PeerRecordBook().addresses(ALICE.peer_id, info.peer_record, info.listen_addrs) == ADDRS
    plain = identify.decode(_identify(ALICE, b""), ALICE.peer_id)
    assert plain.peer_record is None and not plain.peer_record_error


@pytest.mark.parametrize("record, error", [
    (peer_record.seal(BOB, 3, ADDRS), "Bob's"),  # valid, but another peer's: a relayed or replayed record
    (b"\xff\xff", "not a signed envelope"),
])
def test_identify_with_a_record_that_is_not_the_peers_falls_back_to_listen_addrs(record, error):
    info = identify.decode(_identify(ALICE, record), ALICE.peer_id)
    assert info.peer_record is None and info.listen_addrs
    assert error in info.peer_record_error.replace(BOB.peer_id.short(), "Bob")


def test_identify_and_peer_records_leave_out_addresses_that_are_not_multiaddrs():
    # py-multiaddr takes any bytes and fails when they are printed: a cut-short address (an IP, then a tcp
    # code without its port) was kept; two peers reporting it as our observed address made it ours, and
    # printing it (/nat status) raised
    cut = b"\x04\x08\x08\x08\x08\x06"
    record = peer_record.seal(ALICE, 3, (cut, ADDRS[0], b"\x04"))
    assert peer_record.consume(record).addrs == ADDRS[:1]
    data = identify.encode(identify.IdentifyInfo(ALICE.public_key, (ADDRS[1], cut), ("/ipfs/id/1.0.0",),
                                                 observed_addr=cut, signed_peer_record=record))
    info = identify.decode(data, ALICE.peer_id)
    assert info.listen_addrs == ADDRS[1:] and info.observed_addr == b""
    assert info.peer_record.addrs == ADDRS[:1]
