"""Records: each namespace's validator and selector on every store and every value a lookup returns (a
forged or stale copy is never returned when a valid newer one answered, and stale holders are corrected),
MCP service descriptors' namespace, and the proof of work a store asks for, charged to the publisher's time."""

from __future__ import annotations

import dataclasses
import json

from p2pnode.config import KadConfig
from p2pnode.identity import Keypair
from p2pnode.kad.codec import decode, encode
from p2pnode.kad.messages import GetValueResponse, PutValue
from p2pnode.kad.records import RecordStore, make_record, namespace_of, record_is_valid, stamp_is_valid, stamped
from p2pnode.security.pow import mint, stamp_bits, stamp_payload

ALICE, BOB = Keypair.from_seed(b"a" * 32), Keypair.from_seed(b"b" * 32)


def test_store_refuses_forged_stale_and_late_writers_and_says_why():
    store = RecordStore()
    v2 = make_record(ALICE, b"k", b"two", 3600, 2)
    assert store.put(v2, 0.0)
    forged = dataclasses.replace(make_record(ALICE, b"k", b"three", 3600, 3), value=b"evil")
    assert not store.put(forged, 1.0)
    assert not store.put(make_record(ALICE, b"k", b"one", 3600, 1), 1.0)
    assert not store.put(make_record(BOB, b"k", b"bob's two", 3600, 2), 1.0)  # a version's first writer wins
    assert store.put(make_record(ALICE, b"k", b"two", 3600, 2), 2.0)  # a republish refreshes
    assert store.put(make_record(BOB, b"k", b"bob's three", 3600, 3), 3.0)
    assert store.refused == {"invalid": 1, "stale": 2}
    assert not store.put(make_record(ALICE, b"big", bytes(70_000), 3600, 1), 0.0) and store.refused["size"] == 1


def descriptor(service: str, keypair: Keypair, **extra) -> bytes:
    return json.dumps({"v": 1, "service": service, "peer_id": keypair.peer_id.to_base58(), "ttl": 300,
                       "capabilities": ["inference"], **extra}).encode()


def test_mcp_service_descriptors_are_valid_only_from_the_peer_their_key_names():
    key = f"mcp:service:p2pnode:{ALICE.peer_id.to_base58()}".encode()
    assert namespace_of(key).name == "mcp"
    assert record_is_valid(make_record(ALICE, key, descriptor("p2pnode", ALICE), 300, 1))
    assert not record_is_valid(make_record(BOB, key, descriptor("p2pnode", BOB), 300, 1))  # describes another
    assert not record_is_valid(make_record(ALICE, key, b"not json", 300, 1))
    assert not record_is_valid(make_record(ALICE, key, descriptor("other", ALICE), 300, 1))
    assert not record_is_valid(make_record(ALICE, key, descriptor("p2pnode", ALICE, capabilities="x"), 300, 1))
    bare = b"mcp:service:p2pnode"  # the index key holds providers, not records
    assert not record_is_valid(make_record(ALICE, bare, descriptor("p2pnode", ALICE), 300, 1))
    assert namespace_of(b"app/key").name == "signed" and namespace_of(b"/pk/x").name == "pk"


def test_stamps_bind_key_value_publisher_and_version():
    record, hashes = stamped(make_record(ALICE, b"k", b"v", 3600, 5), 10)
    payload = stamp_payload(b"k", b"v", ALICE.peer_id, 5)
    assert stamp_bits(payload, record.stamp) >= 10 and hashes >= 1
    assert mint(payload, 10) == (record.stamp, hashes)  # deterministic
    assert stamp_is_valid(record, 10)
    for other in (dataclasses.replace(record, value=b"w"), dataclasses.replace(record, version=6),
                  dataclasses.replace(record, key=b"j"), dataclasses.replace(record, publisher=BOB.peer_id)):
        assert stamp_bits(stamp_payload(other.key, other.value, other.publisher, other.version), other.stamp) < 10 \
            or other.stamp == b""
    # the stamp travels with the record and is not covered by the signature
    wire = decode(encode(GetValueResponse(record, ())), response=True).record
    assert wire == record and record_is_valid(wire)
    # the mean work is about 2**difficulty
    mean = sum(stamped(make_record(ALICE, b"k%d" % i, b"v", 3600, 1), 8)[1] for i in range(64)) / 64
    assert 64 < mean < 1024


def test_store_asks_for_the_proof_of_work():
    store = RecordStore(pow_difficulty=12)
    plain = make_record(ALICE, b"k", b"v", 3600, 1)
    assert not store.put(plain, 0.0) and store.refused == {"pow": 1}
    weak, _ = stamped(plain, 4)
    assert stamp_bits(stamp_payload(b"k", b"v", ALICE.peer_id, 1), weak.stamp) < 12 or store.put(weak, 0.0)
    assert store.put(stamped(plain, 12)[0], 0.0)


def test_lookups_return_the_newest_valid_copy_and_correct_stale_holders(make_net):
    net = make_net(seed=8)
    config = KadConfig(k=5, alpha=3)
    nodes = net.populate(20, config)
    publisher, getter = nodes[0], nodes[11]
    net.complete(publisher.dht.put_value, b"k", b"old")
    holders = [n for n in nodes if n.dht.records.get(b"k", net.time) is not None and n is not publisher]
    newest = net.complete(publisher.dht.put_value, b"k", b"new").version
    # one holder missed the new version, another serves a forgery with a higher version
    stale, liar = holders[0], holders[1]
    old = make_record(publisher.keypair, b"k", b"old", 3600, newest - 1)
    stale.dht.records._records[b"k"].record = old
    forged = dataclasses.replace(make_record(publisher.keypair, b"k", b"x", 3600, newest + 5), value=b"forged")
    liar.dht.records._records[b"k"].record = forged
    got = net.complete(getter.dht.get_value, b"k", quorum=len(nodes))
    assert got.record.value == b"new" and got.record.version == newest
    assert getter.dht.refused_answers["invalid"] >= 1
    net.settle()
    assert stale.dht.records.get(b"k", net.time).value == b"new"  # corrected


def test_a_put_with_proof_of_work_is_stored_and_its_minting_time_charged(make_net):
    net = make_net(seed=9)
    config = KadConfig(k=4, alpha=3, pow_difficulty=8, pow_hash_seconds=0.01)
    nodes = net.populate(12, config)
    done = []
    record = nodes[0].dht.put_value(b"k", b"v", done.append)
    hashes = mint(stamp_payload(b"k", b"v", nodes[0].peer_id, record.version), 8)[1]
    start = net.time
    net.advance(hashes * 0.01 + 5)
    assert done and done[0].replicas == 4
    assert done[0].finished - done[0].started >= hashes * 0.01 and done[0].started == start
    assert all(n.dht.records.get(b"k", net.time).stamp == record.stamp
               for n in nodes if n.dht.records.get(b"k", net.time) is not None)
    # an unstamped write by an attacker is refused by every replica
    attacker = make_record(Keypair.from_seed(b"z" * 32), b"spam", b"v", 3600, 1)
    replies = []
    for node in nodes[1:]:
        replies.append(node.dht.handle_request(nodes[0].info, PutValue(attacker)).stored)
        assert node.dht.records.refused["pow"] >= 1
    assert not any(replies)
