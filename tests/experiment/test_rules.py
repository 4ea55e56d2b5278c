"""The measurement rules both drivers apply: the plan, which node acts, lookup precision, publish/deliver/judge,
and the formation check, exercised directly (the drivers' own tests run them end to end)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from experiment.churn import Churn, join_delays
from experiment.delivery import Delivery
from experiment.formation import Formation
from experiment.oracle import LiveSet, by_bucket
from experiment.plan import Plan, spread
from experiment.scenario import parse_scenario
from experiment.workload import DhtWorkload, Operations
from p2pnode.eventlog import EventWriter
from p2pnode.identity import kad_key

PUBSUB = """
name: rules
seed: 5
warmup: 20
duration: 60
nodes: {count: 40, bootstrap: 2, join_over: 10, regions: {eu-west: 0.5, na-east: 0.3, ap-northeast: 0.2}}
churn: {session: {distribution: exponential, mean: 100}, offline: {distribution: exponential, mean: 20}, graceful: 0.5}
pubsub: {topics: 2, subscribers: 0.5, publishers: 0.1, attackers: 0.1, discovery: random}
measure: {formation_sample: 10, delivery_settle: 5, delivery_deadline: 10}
criteria: {formation_time: {}}
"""


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def events(tmp_path):
    writer = EventWriter(tmp_path / "events.csv")
    yield writer
    writer.close()


def written(events: EventWriter, tmp_path: Path) -> list[dict[str, str]]:
    events.flush()
    return rows(tmp_path / "events.csv")


@pytest.mark.parametrize("n, shares", [(5, {"a": .25, "b": .25, "c": .25, "d": .25}), (7, {"a": .5, "b": .3, "c": .2}),
                                       (100, {"x": 1.0}), (3, {"a": .2, "b": .2, "c": .2, "d": .2, "e": .2})])
def test_regions_get_their_share_of_nodes(n, shares):
    regions = spread(shares, n, random.Random(1))
    assert len(regions) == n
    for name, share in shares.items():
        assert abs(regions.count(name) - share * n) < 1


def test_one_seed_one_plan():
    scenario = parse_scenario(PUBSUB)
    a, b = Plan(scenario), Plan(scenario)
    assert a.peer_ids == b.peer_ids and a.node_regions == b.node_regions and a.publishers == b.publishers
    assert a.subscribed == b.subscribed and a.formation_nodes == b.formation_nodes
    assert [a.rng_work.random() for _ in range(3)] == [b.rng_work.random() for _ in range(3)]
    other = Plan(parse_scenario(PUBSUB.replace("seed: 5", "seed: 6")))
    assert other.peer_ids != a.peer_ids


def test_attackers_are_neither_judged_subscribers_nor_publishers():
    plan = Plan(parse_scenario(PUBSUB))
    attackers = {i for i in range(plan.n) if plan.attacker[i]}
    assert len(attackers) == 4
    for topic in plan.topic_names:
        assert attackers.isdisjoint(plan.subscribers[topic])
        assert {i for i in range(plan.n) if topic in plan.subscribed[i]} >= set(plan.subscribers[topic])
    assert attackers.isdisjoint(plan.publishers)


def test_joins_and_churn_are_drawn_for_the_non_bootstrap_nodes_only():
    scenario = parse_scenario(PUBSUB)
    joins = join_delays(scenario, random.Random(1))
    assert [i for i, _ in joins] == list(range(2, 40)) and all(0 <= t <= 10 for _, t in joins)
    churn = Churn(scenario.churn, random.Random(2))
    first = churn.first_departures(scenario)
    assert [i for i, _ in first] == list(range(2, 40)) and all(t > scenario.warmup for _, t in first)
    graceful = [churn.departure()[0] for _ in range(400)]
    assert 150 < sum(graceful) < 250


class Member:
    def __init__(self, bootstrapped: bool):
        self.bootstrapped = bootstrapped


def test_only_nodes_that_are_up_and_bootstrapped_act():
    nodes = [None, Member(False), Member(True)]
    operations = Operations(60.0, 3, random.Random(4))
    picks = [operations.pick(nodes) for _ in range(300)]
    assert {p[1] for p in picks if p is not None} == {2}
    assert sum(p is not None for p in picks) > 60


def test_a_lookup_is_judged_against_the_live_peers_when_it_completes(events, tmp_path):
    scenario = parse_scenario("name: x\nnodes: {count: 30}\ndht: {k: 3}\n")
    live = LiveSet()
    ids = Plan(scenario).kad_ids
    for kad_id in ids:
        live.add(kad_id)
    dht = DhtWorkload(scenario, random.Random(1), live, events)
    key = dht.lookup_key()
    origin = ids[0]
    truth = live.closest(kad_key(key), 3, exclude=origin)
    live.remove(truth[0])  # the closest peer leaves while the lookup runs
    dht.lookup_done(1.0, 0, origin, key, truth[1:], 0.2, 2, 9)
    (row,) = written(events, tmp_path)
    assert (row["kind"], row["ok"], row["value"], row["latency"]) == ("lookup", "1", "0.666667", "0.200000")


def test_a_get_wants_the_version_put_or_newer(events, tmp_path):
    scenario = parse_scenario("name: x\nnodes: {count: 3, bootstrap: 1}\n")
    dht = DhtWorkload(scenario, random.Random(1), LiveSet(), events)
    assert dht.get_item() is None
    key, value = dht.put_item()
    assert key.startswith(b"/p2pnode/") and len(value) == scenario.workload.value_size
    dht.put_done(1.0, 0, key, 7, 0, 0.1, 3)  # reached no replica: nothing to get
    assert dht.get_item() is None
    dht.put_done(2.0, 0, key, 8, 5, 0.1, 3)
    assert dht.get_item() == (key, 8)
    for found in (None, 7, 8, 9):
        dht.get_done(3.0, 1, 8, found, 0.05, 1, 2)
    assert [r["ok"] for r in written(events, tmp_path) if r["kind"] == "get"] == ["0", "0", "1", "1"]


def test_find_peer_targets_a_live_other_node_and_find_providers_a_provided_key(events, tmp_path):
    scenario = parse_scenario("name: x\nnodes: {count: 5, bootstrap: 1}\n"
                              "workload: {find_peer: 1, provide: 0.1, find_providers: 1}\n")
    dht = DhtWorkload(scenario, random.Random(2), LiveSet(), events)
    assert set(dht.operations) == {"lookup", "put", "get", "find_peer", "provide", "find_providers"}
    nodes = [object(), None, object(), None, None]
    assert {dht.find_peer_target(nodes, 0) for _ in range(50)} == {2}
    assert dht.find_peer_target([object(), None], 0) is None  # nobody else is up
    assert dht.find_providers_key() is None
    key = dht.provide_key()
    dht.provide_done(1.0, 0, key, 0, 0.3, 20)  # told no peer: nothing to find
    assert dht.find_providers_key() is None
    dht.provide_done(2.0, 0, key, 4, 0.3, 20)
    assert dht.find_providers_key() == key
    dht.find_peer_done(3.0, 1, True, 0.1, 2, 6)
    dht.find_providers_done(4.0, 2, 0, 0.9, 3, 25)
    rows = [(r["kind"], r["ok"]) for r in written(events, tmp_path)]
    assert rows == [("provide", "0"), ("provide", "1"), ("find_peer", "1"), ("find_providers", "0")]


def test_eligible_subscribers_were_up_throughout_even_when_judged_late(events, tmp_path):
    scenario = parse_scenario(PUBSUB)
    plan = Plan(scenario)
    delivery = Delivery(scenario, plan, events)
    topic = plan.topic_names[0]
    subscribers = plan.subscribers[topic]
    publisher = next(i for i in plan.publishers)
    others = [j for j in subscribers if j != publisher]
    for j in range(plan.n):
        delivery.node_up(j, 0.0)
    nodes = [object()] * plan.n
    assert delivery.choose(random.Random(1), nodes) is not None
    assert delivery.published(b"early", 10.0, topic, publisher, 100) is None  # in the warm-up: not measured
    record = delivery.published(b"m", 30.0, topic, publisher, 100)
    late_joiner, leaver, after_deadline, missed = others[:4]
    delivery.node_down(late_joiner, 22.0)
    delivery.node_up(late_joiner, 27.0)  # rejoined within delivery_settle before the publish: not eligible
    delivery.delivered(publisher, b"m", 30.5)  # the publisher's own copy does not count
    for j in others:
        if j != missed:
            delivery.delivered(j, b"m", 31.0)
    delivery.node_down(leaver, 35.0)  # left before the deadline: not eligible
    delivery.node_down(after_deadline, 40.5)  # left after the deadline, before a late judge: eligible
    delivery.judge(record)  # a second after the deadline, as the emulator judges
    table = written(events, tmp_path)
    judged = [r for r in table if r["kind"] == "delivery"]
    assert len(judged) == 1 and judged[0]["count"] == str(len(others) - 2)
    assert judged[0]["value"] == str(len(others) - 3) and judged[0]["ok"] == "0"
    deliver = {int(r["node"]): r["ok"] for r in table if r["kind"] == "deliver"}
    assert publisher not in deliver and deliver[late_joiner] == "0" and deliver[leaver] == "1"


def test_formation_is_verified_once_everyone_checked_has_bootstrapped(events, tmp_path):
    scenario = parse_scenario(PUBSUB)
    plan = Plan(scenario)
    live = LiveSet()
    for kad_id in plan.kad_ids:
        live.add(kad_id)
    formation = Formation(scenario, plan, live, events)
    checked = [plan.kad_ids[i] for i in formation.nodes]

    def tables(bootstrapped):
        return [(me, bootstrapped, by_bucket(me, (p for p in plan.kad_ids if p != me))) for me in checked]

    assert not formation.sample(5.0, tables(True))  # before nodes.join_over: the network is not all there
    assert not formation.sample(11.0, tables(False))
    assert formation.sample(12.0, tables(True)) and formation.complete
    key = formation.start_round(random.Random(1))
    assert not formation.sample(13.0, tables(True))  # one round at a time
    truth = {me: set(live.closest(kad_key(key), scenario.dht.k, exclude=me)) for me in checked}
    formation.round_done(14.0, key, [(me, truth[me]) for me in checked[:-1]] + [(checked[-1], None)])
    assert not formation.formed
    formation.round_done(15.0, key, [(me, truth[me]) for me in checked])
    assert formation.formed and not formation.sample(16.0, tables(True))
    verdicts = [(r["time"], r["ok"], r["value"]) for r in written(events, tmp_path) if r["ok"]]
    assert verdicts == [("14.000000", "0", "0.900000"), ("15.000000", "1", "1.000000")]
