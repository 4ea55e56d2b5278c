"""Records under the namespaces libp2p defines travel in those namespaces' own form.

``/pk/``: stored and sent bare (``Record{key, value}`` with the protobuf ``PublicKey`` as the value, as
go-libp2p-record's validator reads it), valid only when the key is ``/pk/`` + the value's peer-ID multihash;
our signed envelope is never used for them, nor accepted under ``/pk/``. ``/ipns/``: refused by name.
"""

from __future__ import annotations

import pytest

from p2pnode.config import KadConfig
from p2pnode.framing import CodecError
from p2pnode.identity import Keypair, encode_public_key
from p2pnode.kad.codec import decode, encode, signing_payload
from p2pnode.kad.messages import DHTRecord, GetValueResponse, PutValue
from p2pnode.kad.namespaces import NamespaceError
from p2pnode.kad.pb import dht_pb2, record_pb2
from p2pnode.kad.records import RecordStore, make_record, record_is_valid

ALICE, BOB = Keypair.from_seed(b"a" * 32), Keypair.from_seed(b"b" * 32)


def pk_key(keypair: Keypair) -> bytes:
    return b"/pk/" + keypair.peer_id.raw


def wire_record(message) -> dht_pb2.Record:
    """The ``Record`` field as another implementation parses it from our bytes."""
    return dht_pb2.Message.FromString(encode(message)).record


def test_put_of_a_public_key_goes_out_bare_and_every_replica_serves_it_bare(make_net):
    net = make_net(seed=5)
    nodes = net.populate(12, KadConfig(k=4))
    publisher, owner = nodes[0], nodes[5]
    key, value = pk_key(owner.keypair), encode_public_key(owner.keypair.public_key)
    put = net.complete(publisher.dht.put_value, key, value)
    assert put.replicas == 4
    sent = [m for (_, src, _, m) in net.sent if isinstance(m, PutValue) and src is publisher]
    assert sent and all(wire_record(m).value == value for m in sent)  # the PublicKey itself, no envelope
    holders = [n for n in nodes if n.dht.records.get(key, net.time) is not None]
    assert len(holders) >= 4
    for node in holders:
        stored = node.dht.records.get(key, net.time)
        assert (stored.value, stored.signature, stored.publisher) == (value, b"", owner.peer_id)
        assert wire_record(GetValueResponse(stored, ())).value == value
    getter = next(n for n in nodes if n not in holders)
    assert net.complete(getter.dht.get_value, key).record.value == value


@pytest.mark.parametrize("key, value, match", [
    (pk_key(BOB), encode_public_key(ALICE.public_key), "multihash"),  # names another peer
    (pk_key(ALICE), b"not a key", "multihash"),
    (b"/ipns/" + ALICE.peer_id.raw, b"\x0a\x00", "/ipns/ records are not supported"),
], ids=["another peer's key", "not a key", "ipns"])
def test_a_record_that_its_namespace_does_not_allow_is_refused_when_made(key, value, match):
    with pytest.raises(NamespaceError, match=match):
        make_record(ALICE, key, value, 3600, 1)


def test_our_envelope_under_pk_is_refused_on_the_wire_and_in_the_store():
    """What earlier versions put: the public key inside our signed envelope. It is not a /pk/ record to any
    libp2p node, so we neither accept nor keep serving it."""
    key, value = pk_key(ALICE), encode_public_key(ALICE.public_key)
    signature = ALICE.sign(signing_payload(key, value, ALICE.peer_id, 3600, 1))
    wrapped = DHTRecord(key, value, ALICE.peer_id, signature, 3600, 1)
    assert not record_is_valid(wrapped)
    assert not RecordStore().put(wrapped, now=0.0)
    with pytest.raises(CodecError, match="bare"):
        encode(PutValue(wrapped))
    pb = dht_pb2.Message(type=dht_pb2.Message.PUT_VALUE, key=key)
    pb.record.key = key
    pb.record.value = record_pb2.SignedRecord(value=value, publisher=ALICE.peer_id.raw, signature=signature,
                                              ttl_ms=3_600_000, version=1).SerializeToString()
    with pytest.raises(CodecError, match="multihash"):
        decode(pb.SerializeToString(), response=False)


def test_ipns_records_are_refused_on_the_wire():
    pb = dht_pb2.Message(type=dht_pb2.Message.PUT_VALUE, key=b"/ipns/x")
    pb.record.key, pb.record.value = b"/ipns/x", b"\x0a\x01x"
    with pytest.raises(CodecError, match="/ipns/ records are not supported"):
        decode(pb.SerializeToString(), response=False)


def test_any_valid_pk_record_is_as_good_as_another():
    """libp2p's /pk/ selector keeps the first: all valid values of one key are the same key."""
    key, value = pk_key(ALICE), encode_public_key(ALICE.public_key)
    store = RecordStore()
    assert store.put(make_record(BOB, key, value, 3600, 1), now=0.0)
    assert store.put(make_record(ALICE, key, value, 3600, 7), now=1.0)  # a re-put refreshes it
    assert store.get(key, 2.0).value == value and len(store) == 1


def test_a_pk_record_of_a_key_type_we_cannot_sign_with_is_still_valid():
    """An RSA-keyed peer's ID is the sha2-256 multihash of its protobuf key, so /pk/ is how others learn the
    key: the validator needs only the hash, not the key type."""
    import hashlib

    from p2pnode.pb import envelope_pb2

    value = envelope_pb2.PublicKey(Type=envelope_pb2.RSA, Data=bytes(range(256)) * 2).SerializeToString()
    key = b"/pk/" + b"\x12\x20" + hashlib.sha256(value).digest()
    record = make_record(ALICE, key, value, 3600, 1)
    assert record_is_valid(record) and record.publisher.raw == key[4:]
    assert decode(encode(PutValue(record)), response=False).record == record
    with pytest.raises(NamespaceError):
        make_record(ALICE, key[:-1] + b"\x00", value, 3600, 1)
