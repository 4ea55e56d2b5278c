"""Kademlia on real hosts over the test network (``tests.net``), on each runtime: joining, lookups, records
(signatures, versions, expiry, republishing), providers, failure handling, liveness checks and determinism."""

from __future__ import annotations

import pytest

from p2pnode.config import KAD_PRESETS, KadConfig
from p2pnode.host import Host
from p2pnode.identity import kad_key
from p2pnode.kad.messages import (
    AddProvider,
    DHTRecord,
    FindNode,
    GetValue,
    Ping,
    PutValue,
    PutValueResponse,
)
from p2pnode.kad.records import StoredRecord
from tests.net import TestNet


def finds_every_other(net: TestNet, nodes: list[Host]) -> list[tuple[int, int]]:
    """Every node looks up every other node's peer ID; returns the (searcher, target) pairs that failed
    to come back with the target as the closest peer."""
    missed = []
    for a, searcher in enumerate(nodes):
        for b, target in enumerate(nodes):
            if a != b:
                found = net.complete(searcher.dht.find_node, target.peer_id.raw)
                if not found.peers or found.peers[0].peer_id != target.peer_id:
                    missed.append((a, b))
    return missed


# ---- joining and lookups -------------------------------------------------------------------------


@pytest.mark.parametrize("config", [KadConfig(), KadConfig(k=6, alpha=3), KadConfig(disjoint_paths=2)],
                         ids=["k20", "k6", "disjoint2"])
def test_every_node_finds_every_other(make_net, config):
    net = make_net(seed=1)
    nodes = net.populate(40, config)
    assert all(node.bootstrapped for node in nodes)
    assert all(len(node.dht.table) >= min(config.k, 39) for node in nodes)
    assert finds_every_other(net, nodes) == []


def test_find_peer_stops_at_the_first_answer_that_refers_to_the_target(make_net):
    net = make_net(seed=2)
    nodes = net.populate(40, KadConfig(k=8))
    searcher, target = nodes[5], nodes[31]
    found = net.complete(searcher.dht.find_peer, target.peer_id)
    assert found.peer is not None and found.peer.peer_id == target.peer_id and found.peer.addrs == target.dht.info.addrs
    converged = net.complete(searcher.dht.find_node, target.peer_id.raw)
    assert found.requests < converged.requests
    assert found.finished - found.started <= converged.finished - converged.started
    net.crash(target)
    net.advance(60)  # its peers notice
    gone = net.complete(nodes[6].dht.find_peer, target.peer_id)
    assert gone.peer is None or gone.peer.peer_id == target.peer_id  # a stale referral may still name it


def test_lookup_results_are_closest_first_and_exclude_the_searcher(make_net):
    net = make_net(seed=2)
    nodes = net.populate(30, KadConfig(k=8))
    searcher, target = nodes[3], kad_key(b"some key")
    found = net.complete(searcher.dht.find_node, b"some key")
    others = sorted((n for n in nodes if n is not searcher), key=lambda n: n.peer_id.kad_id ^ target)
    assert [p.peer_id for p in found.peers] == [n.peer_id for n in others[:8]]
    assert found.requests > 0 and found.hops >= 1 and found.finished > found.started


# ---- records -------------------------------------------------------------------------------------


@pytest.fixture
def small_net(make_net) -> tuple[TestNet, list[Host]]:
    net = make_net(seed=3)
    return net, net.populate(30, KadConfig(k=6, expiry_sweep_interval=1000.0))


def holders(nodes: list[Host], key: bytes, now: float) -> list[Host]:
    return [n for n in nodes if n.dht.records.get(key, now) is not None]


def test_put_then_get_from_another_node(small_net):
    net, nodes = small_net
    publisher = nodes[0]
    put = net.complete(publisher.dht.put_value, b"greeting", b"hello")
    assert put.replicas == 6 and put.version >= 1
    assert len(holders(nodes, b"greeting", net.time)) >= 6
    getter = next(n for n in nodes if n not in holders(nodes, b"greeting", net.time))
    got = net.complete(getter.dht.get_value, b"greeting")
    assert got.record is not None and got.record.value == b"hello"
    assert got.record.publisher == publisher.peer_id
    assert net.complete(getter.dht.get_value, b"no such key").record is None


def test_a_newer_version_replaces_the_older(small_net):
    net, nodes = small_net
    publisher = nodes[4]
    first = net.complete(publisher.dht.put_value, b"k", b"one")
    second = net.complete(publisher.dht.put_value, b"k", b"two")
    assert second.version == first.version + 1
    for getter in (nodes[10], nodes[20]):
        got = net.complete(getter.dht.get_value, b"k")
        assert (got.record.value, got.record.version) == (b"two", second.version)
    for holder in holders(nodes, b"k", net.time):
        assert holder.dht.records.get(b"k", net.time).value == b"two"


def test_an_older_version_is_refused(small_net):
    net, nodes = small_net
    publisher = nodes[4]
    v1 = publisher.dht.put_value(b"k", b"one")
    net.run()
    net.complete(publisher.dht.put_value, b"k", b"two")
    holder = holders(nodes[1:], b"k", net.time)[0]
    response = holder.handle_request(publisher.info, PutValue(v1))
    assert isinstance(response, PutValueResponse) and not response.stored
    assert holder.dht.records.get(b"k", net.time).value == b"two"


def test_a_record_with_a_bad_signature_is_refused_and_never_returned(small_net):
    net, nodes = small_net
    publisher, attacker, getter = nodes[0], nodes[1], nodes[2]
    good = net.complete(publisher.dht.put_value, b"k", b"genuine")
    record = publisher.dht.records.get(b"k", net.time)
    assert good.version == record.version
    # the value changed under the publisher's signature (and a higher version, to win if accepted)
    forged = DHTRecord(record.key, b"forged", record.publisher, record.signature, record.ttl,
                       record.version + 1)
    for holder in holders(nodes, b"k", net.time):
        response = holder.handle_request(attacker.info, PutValue(forged))
        assert response.stored is False
        assert holder.dht.records.get(b"k", net.time).value == b"genuine"
    # a forged record for a fresh key, sent over the network to the nodes closest to it
    fresh = DHTRecord(b"fresh", b"forged", record.publisher, record.signature, record.ttl, 1)
    answers = []
    for target in net.complete(attacker.dht.find_node, b"fresh").peers:
        attacker.runtime.request(target, PutValue(fresh), 2.0, answers.append, answers.append)
    net.run()
    assert answers and all(a.stored is False for a in answers)
    assert holders(nodes, b"fresh", net.time) == []
    assert net.complete(getter.dht.get_value, b"fresh").record is None


def test_get_ignores_a_forged_record_held_by_a_replica(small_net):
    # a replica that stores (or makes up) a bad record cannot get it past the reader's check
    net, nodes = small_net
    publisher, getter = nodes[0], nodes[5]
    record = publisher.dht.put_value(b"k", b"genuine")
    forged = DHTRecord(b"k2", b"forged", record.publisher, record.signature, record.ttl, 1)
    for node in nodes:
        if node is not getter:
            node.dht.records._records[b"k2"] = StoredRecord(forged, net.time + 100)
    net.run()
    assert net.complete(getter.dht.get_value, b"k2").record is None


def test_records_expire_and_reads_drop_them(small_net):
    net, nodes = small_net
    publisher = nodes[7]
    net.complete(publisher.dht.put_value, b"short", b"lived", ttl=5)
    assert net.complete(nodes[8].dht.get_value, b"short").record is not None
    replicas = [n for n in nodes if len(n.dht.records)]
    net.advance(6)
    assert all(len(n.dht.records) == 1 for n in replicas)  # the sweep interval is long: nothing dropped yet
    assert net.complete(publisher.dht.get_value, b"short").record is None
    assert sum(len(n.dht.records) for n in nodes) == 0  # the reads of the lookup dropped every copy


def test_the_sweep_drops_expired_records_without_a_read(make_net):
    net = make_net(seed=4)
    nodes = net.populate(20, KadConfig(k=5, expiry_sweep_interval=1.0))
    net.complete(nodes[0].dht.put_value, b"short", b"lived", ttl=5)
    assert sum(len(n.dht.records) for n in nodes) >= 5
    net.advance(4)
    assert sum(len(n.dht.records) for n in nodes) >= 5
    net.advance(2.5)
    assert sum(len(n.dht.records) for n in nodes) == 0


def test_republishing_keeps_a_record_past_its_ttl_until_the_publisher_goes(make_net):
    net = make_net(seed=5)
    config = KadConfig(k=5, record_ttl=10.0, republish_interval=4.0, expiry_sweep_interval=1.0)
    nodes = net.populate(20, config)
    publisher, getter = nodes[0], nodes[11]
    net.complete(publisher.dht.put_value, b"k", b"v")
    for _ in range(6):  # 30 s: three times the ttl
        net.advance(5)
        got = net.complete(getter.dht.get_value, b"k")
        assert got.record is not None and got.record.value == b"v"
    assert publisher.dht.records.get(b"k", net.time) is not None  # the publisher's own copy is kept too
    net.crash(publisher)
    net.advance(config.record_ttl + 1)
    assert net.complete(getter.dht.get_value, b"k").record is None
    assert sum(len(n.dht.records) for n in nodes if n.running) == 0


# ---- providers -----------------------------------------------------------------------------------


def test_provide_then_find_providers(small_net):
    net, nodes = small_net
    first, second, seeker = nodes[1], nodes[2], nodes[25]
    announced = net.complete(first.dht.provide, b"content")
    assert announced.replicas == 6
    net.complete(second.dht.provide, b"content")
    net.run()  # the announcements are one-way messages: let them land
    found = net.complete(seeker.dht.find_providers, b"content")
    assert {p.peer_id for p in found.providers} == {first.peer_id, second.peer_id}
    assert net.complete(seeker.dht.find_providers, b"other").providers == ()


def test_add_provider_for_someone_else_is_ignored(small_net):
    net, nodes = small_net
    liar, victim, node = nodes[1], nodes[2], nodes[3]
    assert node.handle_request(liar.info, AddProvider(b"content", victim.info)) is None
    assert node.dht.providers.get(b"content", net.time) == []
    node.handle_request(liar.info, AddProvider(b"content", liar.info))
    assert node.dht.providers.get(b"content", net.time) == [liar.info]


# ---- failures --------------------------------------------------------------------------------------


def test_a_crashed_peer_leaves_the_routing_table_after_a_lookup_times_out(make_net):
    net = make_net(seed=6)
    nodes = net.populate(30, KadConfig(k=8))
    victim = nodes[9]
    searcher = next(n for n in nodes if victim.peer_id.kad_id in n.dht.table and n is not victim)
    net.crash(victim)
    started = net.time
    found = net.complete(searcher.dht.find_node, victim.peer_id.raw)
    assert victim.peer_id not in {p.peer_id for p in found.peers}
    # the lookup stopped waiting once the request was slow, not at the timeout ...
    assert searcher.dht.config.slow_after <= net.time - started < searcher.dht.config.request_timeout
    # ... and the peer leaves the table when the request does time out
    net.advance(searcher.dht.config.request_timeout)
    assert victim.peer_id.kad_id not in searcher.dht.table
    # the lookup still came back with k live peers, led by the live peer closest to the crashed one (not
    # necessarily the exact k closest: every answer spends a slot on the crashed peer)
    live = sorted((n for n in nodes if n.running and n is not searcher),
                  key=lambda n: n.peer_id.kad_id ^ victim.peer_id.kad_id)
    assert len(found.peers) == 8 and found.peers[0].peer_id == live[0].peer_id
    assert all(net.host_of(p).running for p in found.peers)


@pytest.mark.parametrize("adaptive", [True, False], ids=["adaptive", "fixed"])
def test_a_lookup_stops_waiting_after_the_rto_once_it_has_measured_rtts(make_net, adaptive):
    net = make_net(seed=6)
    config = KadConfig(k=8, adaptive=adaptive)
    nodes = net.populate(30, config)
    victim = nodes[9]
    searcher = next(n for n in nodes if victim.peer_id.kad_id in n.dht.table and n is not victim)
    net.complete(searcher.dht.find_node, b"warm up")  # RTT samples: 20 ms round trips
    assert searcher.dht.rtt.srtt == pytest.approx(2 * net.latency, rel=0.01)
    net.crash(victim)
    started = net.time
    found = net.complete(searcher.dht.find_node, victim.peer_id.raw)
    assert victim.peer_id not in {p.peer_id for p in found.peers}
    if adaptive:  # given up on after the RTO (here its floor, min_wait), not after slow_after
        assert config.min_wait <= net.time - started < config.slow_after
    else:
        assert config.slow_after <= net.time - started < config.request_timeout
    # once the request to it failed, a lookup drops referrals to it: no wait at all
    net.advance(config.request_timeout)
    assert victim.peer_id.kad_id in searcher.dht.failed
    started = net.time
    net.complete(searcher.dht.find_node, victim.peer_id.raw)
    assert net.time - started < config.min_wait


def test_the_go_libp2p_preset_waits_its_fixed_timeout_for_a_crashed_peer(make_net):
    net = make_net(seed=6)
    config = KadConfig(k=8, **KAD_PRESETS["go-libp2p-kad-dht"])
    nodes = net.populate(30, config)
    victim = nodes[9]
    searcher = next(n for n in nodes if victim.peer_id.kad_id in n.dht.table and n is not victim)
    net.complete(searcher.dht.find_node, b"warm up")
    net.crash(victim)
    started = net.time
    found = net.complete(searcher.dht.find_node, victim.peer_id.raw)
    assert net.time - started == pytest.approx(config.request_timeout, abs=0.1)  # no RTO, no stop-waiting
    assert victim.peer_id not in {p.peer_id for p in found.peers} and len(found.peers) == 8


def test_a_node_whose_bootstrap_peer_did_not_answer_joins_later(make_net):
    """An overloaded or briefly unreachable bootstrap peer must not leave a node alone for good."""
    net = make_net(seed=8)
    nodes = net.populate(10, KadConfig(k=6))
    late = net.add_host(KadConfig(k=6), start=False)
    cut_off = net.drop(lambda src, dst, message: late in (src, dst))
    net.start(late, [nodes[0].info])
    net.run()
    assert not late.bootstrapped and len(late.dht.table) == 0  # the bootstrap peer failed and was dropped
    net.undrop(cut_off)
    net.advance(1.5)  # the first retry comes after 1 s
    assert late.bootstrapped and len(late.dht.table) >= 6
    assert net.complete(late.dht.find_node, nodes[5].peer_id.raw).peers[0].peer_id == nodes[5].peer_id


def test_lost_messages_and_slow_peers_count_as_failures(make_net):
    net = make_net(seed=7)
    nodes = net.populate(25, KadConfig(k=6))
    searcher = nodes[0]
    unreachable = next(n for n in nodes[1:] if n.peer_id.kad_id in searcher.dht.table)
    lost = net.drop(lambda src, dst, message: dst is unreachable)
    net.complete(searcher.dht.find_node, unreachable.peer_id.raw)
    net.advance(searcher.dht.config.request_timeout)  # the lookup stops waiting early; the timeout comes later
    assert unreachable.peer_id.kad_id not in searcher.dht.table
    net.undrop(lost)
    # a round trip longer than the request timeout is a timeout too; a slow but timely peer is fine
    slow, sluggish = [n for n in nodes[1:] if n is not unreachable and n.peer_id.kad_id in searcher.dht.table][:2]
    net.set_latency(slow, 1.5)
    net.set_latency(sluggish, 0.5)
    net.complete(searcher.dht.find_node, slow.peer_id.raw)
    net.advance(searcher.dht.config.request_timeout)
    assert slow.peer_id.kad_id not in searcher.dht.table
    found = net.complete(searcher.dht.find_node, sluggish.peer_id.raw)
    assert found.peers[0].peer_id == sluggish.peer_id
    assert found.finished - found.started >= 1.0


@pytest.fixture
def full_bucket(make_net):
    """Node A with k = 2, whose farthest bucket holds B1 (seen first) and B2; B3 also falls in it."""
    net = make_net(seed=8)
    config = KadConfig(k=2)
    a = net.add_host(config)
    others = []
    while len(others) < 3:
        node = net.add_host(config)
        if a.dht.table.bucket_index(node.peer_id.kad_id) == 256:
            others.append(node)
    net.run()
    b1, b2, b3 = others
    a.handle_request(b1.info, Ping())
    net.advance(1)
    a.handle_request(b2.info, Ping())
    assert list(a.dht.table.buckets[256].entries) == [b1.peer_id.kad_id, b2.peer_id.kad_id]
    return net, a, b1, b2, b3


def test_a_crashed_stale_entry_is_replaced_by_the_newcomer(full_bucket):
    net, a, b1, b2, b3 = full_bucket
    net.advance(a.dht.table.stale_after + 1)
    net.crash(b1)
    before = net.requests
    a.handle_request(b3.info, FindNode(b"hello"))
    assert net.requests == before + 1  # A pings its oldest entry
    net.run()
    assert b1.peer_id.kad_id not in a.dht.table
    assert b2.peer_id.kad_id in a.dht.table and b3.peer_id.kad_id in a.dht.table


def test_a_live_stale_entry_keeps_its_place(full_bucket):
    net, a, b1, b2, b3 = full_bucket
    net.advance(a.dht.table.stale_after + 1)
    a.handle_request(b3.info, GetValue(b"hello"))
    net.run()
    assert list(a.dht.table.buckets[256].entries) == [b2.peer_id.kad_id, b1.peer_id.kad_id]  # b1 moved back
    assert b3.peer_id.kad_id not in a.dht.table
    assert b3.peer_id.kad_id in a.dht.table.buckets[256].replacements


def test_a_fresh_entry_is_not_checked(full_bucket):
    net, a, b1, b2, b3 = full_bucket
    net.crash(b1)  # but A has heard from it a moment ago
    before = net.requests
    a.handle_request(b3.info, Ping())
    net.run()
    assert net.requests == before
    assert b1.peer_id.kad_id in a.dht.table and b3.peer_id.kad_id not in a.dht.table


# ---- determinism -----------------------------------------------------------------------------------


def scenario(make_net: type[TestNet], seed: int) -> tuple:
    net = make_net(seed=seed)
    nodes = net.populate(20, KadConfig(k=5))
    net.crash(nodes[3])
    finds = [net.complete(nodes[i].dht.find_node, nodes[j].peer_id.raw) for i, j in ((0, 5), (7, 3), (12, 19))]
    put = net.complete(nodes[2].dht.put_value, b"key", b"value")
    got = net.complete(nodes[15].dht.get_value, b"key")
    trace = [(t, src.peer_id.raw, dst.peer_id.raw, type(message).__name__) for t, src, dst, message in net.sent]
    return ([[p.peer_id.raw for p in f.peers] for f in finds], [f.requests for f in finds],
            put.replicas, got.record.value, net.requests, net.time, trace)


def test_same_seed_same_run(make_net):
    first, second = scenario(make_net, 11), scenario(make_net, 11)
    assert first == second
    assert scenario(make_net, 12)[0] != first[0]

