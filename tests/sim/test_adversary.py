"""Malicious nodes in the simulator (sim/adversary.py): real nodes whose DHT answers are bent as the scenario's
adversary section says, and lookups judged against the honest nodes."""

from __future__ import annotations

import csv
import textwrap

import pytest

from experiment.scenario import parse_scenario
from p2pnode.eventlog import EventWriter
from p2pnode.identity import kad_key
from p2pnode.kad.messages import FindNode, GetValue, Ping, PutValue
from p2pnode.kad.records import make_record, record_is_valid
from sim.simulation import Simulation

SCENARIO = """
name: adv
seed: 5
warmup: 20
duration: {duration}
nodes: {{count: 40, bootstrap: 2, join_over: 10}}
dht: {{k: 8, alpha: 4, disjoint_paths: 2}}
workload: {{lookup: 4.0, put: 1.0, get: 2.0, value_size: 32, updates: 0.5}}
adversary: {{share: 0.3, behaviours: {behaviours}}}
"""


def simulation(tmp_path, behaviours: str, duration: float = 1.0) -> tuple[Simulation, list[dict]]:
    scenario = parse_scenario(textwrap.dedent(SCENARIO.format(behaviours=behaviours, duration=duration)))
    events = EventWriter(tmp_path / "events.csv")
    sim = Simulation(scenario, events)
    sim.run()
    events.close()
    with open(tmp_path / "events.csv") as f:
        return sim, list(csv.DictReader(f))


def split(sim: Simulation) -> tuple[list[int], list[int]]:
    bad = [i for i, m in enumerate(sim.plan.malicious) if m]
    return bad, [i for i in range(sim.n) if i not in bad]


def test_colluders_refer_only_to_each_other(tmp_path):
    sim, _ = simulation(tmp_path, "[collude]")
    bad, good = split(sim)
    assert len(bad) == 12
    bad_ids = {sim.infos[i].peer_id.kad_id for i in bad}
    key = b"some key"
    for i in bad:
        answer = sim.nodes[i].handle_request(sim.infos[good[-1]], FindNode(key))
        referred = [p.peer_id.kad_id for p in answer.closer_peers]
        closest = sorted(bad_ids - {sim.infos[i].peer_id.kad_id}, key=kad_key(key).__xor__)[:8]
        assert referred == closest
    # an honest node answers from its own table, honest peers included
    answer = sim.nodes[good[-1]].handle_request(sim.infos[good[0]], FindNode(key))
    assert {p.peer_id.kad_id for p in answer.closer_peers} - bad_ids


def test_stale_and_forged_records(tmp_path):
    sim, _ = simulation(tmp_path, "[stale]")
    bad, good = split(sim)
    publisher = sim.keypairs[good[-1]]
    first, newer = (make_record(publisher, b"/p2pnode/k", value, 600.0, version)
                    for value, version in ((b"one", 1), (b"two", 2)))
    node, sender = sim.nodes[bad[0]], sim.infos[good[-1]]
    for record in (first, newer):
        assert node.handle_request(sender, PutValue(record)).stored
    assert node.dht.records.get(b"/p2pnode/k", sim.env.now) == newer  # it stores like anyone ...
    assert node.handle_request(sender, GetValue(b"/p2pnode/k")).record == first  # ... and hands out the old one

    sim, _ = simulation(tmp_path, "[forge]")
    bad, good = split(sim)
    node = sim.nodes[bad[0]]
    assert node.handle_request(sender, PutValue(newer)).stored
    forged = node.handle_request(sender, GetValue(b"/p2pnode/k")).record
    assert forged.publisher == newer.publisher and forged.version > newer.version
    assert not record_is_valid(forged)


def test_droppers_lose_dht_requests_but_answer_ping(tmp_path):
    sim, _ = simulation(tmp_path, "[drop]")
    bad, good = split(sim)
    assert sim.network.drop is not None
    assert all(sim.network.drop(good[0], i, FindNode(b"k")) for i in bad)
    assert not any(sim.network.drop(good[0], i, Ping()) for i in bad)
    assert not any(sim.network.drop(bad[0], i, FindNode(b"k")) for i in good)


def test_only_honest_nodes_act_and_are_the_truth(tmp_path):
    sim, rows = simulation(tmp_path, "[collude, stale]", duration=60.0)
    bad, _ = split(sim)
    lookups = [r for r in rows if r["kind"] == "lookup"]
    gets = [r for r in rows if r["kind"] == "get"]
    assert lookups and gets
    assert not {int(r["node"]) for r in rows if r["kind"] in ("lookup", "put", "get")} & set(bad)
    # colluders cannot hide a closer honest node from a lookup that waits for its k closest to answer ...
    assert sum(r["ok"] == "1" for r in lookups) / len(lookups) > 0.95
    # ... but a stale copy that answers first ends a get (quorum 1) with an old version
    assert sum(r["ok"] == "1" for r in gets) < len(gets)


def test_a_write_flood_fills_honest_stores(tmp_path):
    scenario = parse_scenario(textwrap.dedent(SCENARIO.format(behaviours="[collude]", duration=10.0))
                              .replace("workload: {lookup: 4.0, put: 1.0, get: 2.0, value_size: 32, updates: 0.5}",
                                       "workload: {lookup: 0, put: 0, get: 0, value_size: 32}")
                              .replace("behaviours: [collude]}", "behaviours: [collude], writes: 10}"))
    events = EventWriter(tmp_path / "events.csv")
    sim = Simulation(scenario, events)
    sim.run()
    events.close()
    with open(tmp_path / "events.csv") as f:
        held = [r for r in csv.DictReader(f) if r["kind"] == "records"]
    bad, good = split(sim)
    stored = sum(len(sim.nodes[i].dht.records) for i in good)
    everywhere = stored + sum(len(sim.nodes[i].dht.records) for i in bad)
    # 12 flooders x 10 a second over the 10 measured seconds, each record stored by the peer it was sent to
    # (a flooder's table holds flooders too)
    assert 0.95 * 12 * 10 * 10 <= everywhere <= 12 * 10 * 10 + 12 and stored > 0.5 * everywhere
    assert float(held[-1]["value"]) == pytest.approx(stored / len(good), abs=1e-3)
    assert float(held[0]["value"]) == 0  # nothing before the flood


def test_proof_of_work_slows_a_write_flood_to_its_minting_rate(tmp_path):
    scenario = parse_scenario(textwrap.dedent(SCENARIO.format(behaviours="[collude]", duration=10.0))
                              .replace("workload: {lookup: 4.0, put: 1.0, get: 2.0, value_size: 32, updates: 0.5}",
                                       "workload: {lookup: 0, put: 0, get: 0, value_size: 32}\n"
                                       "security: {pow_difficulty: 8, pow_hash_seconds: 0.001}")
                              .replace("behaviours: [collude]}", "behaviours: [collude], writes: 10}"))
    events = EventWriter(tmp_path / "events.csv")
    sim = Simulation(scenario, events)
    sim.run()
    events.close()
    stored = sum(len(node.dht.records) for node in sim.nodes if node is not None)
    # a stamp takes 2^8 hashes of 1 ms on average: about 4 writes a second instead of 10, each one accepted
    assert 12 * 10 * 2 < stored < 12 * 10 * 6
    assert all(record.stamp for node in sim.nodes for record in node.dht.records.records())
