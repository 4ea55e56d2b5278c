"""NATs in the simulator: real nodes' AutoNAT verdicts, relay reservations and DCUtR hole punches through the
RFC 4787 boxes, on small networks (one NAT type pair at a time, so each outcome is the pair's)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from experiment.scenario import parse_scenario
from p2pnode.eventlog import EventWriter
from sim.simulation import Simulation

SCENARIO = """
name: nat-pair
seed: 3
warmup: 20
duration: 60
nodes:
  count: 24
  bootstrap: 4
  join_over: 5
  nat: {nat}
nat:
  relays: {{share: 0.5}}
  quic_share: 0.5
workload: {{lookup: 0.5, put: 0.0, get: 0.0}}
pubsub: {{topics: 1, rate: 1.0, peers: 6, max_peers: 23, discovery: random}}
"""


def run(tmp_path: Path, nat: str) -> tuple[Simulation, list[dict], list[str]]:
    scenario = parse_scenario(SCENARIO.format(nat=nat))
    writer = EventWriter(tmp_path / "events.csv")
    sim = Simulation(scenario, writer)
    sim.run()
    writer.close()
    rows = list(csv.DictReader(open(tmp_path / "events.csv")))
    return sim, rows, sim.nat.labels


def punches(rows: list[dict]) -> Counter:
    return Counter((r["hops"], r["ok"]) for r in rows if r["kind"] == "hole_punch")


@pytest.mark.parametrize("nat, punchable", [
    ("{none: 0.5, port-restricted: 0.5}", True),
    ("{none: 0.5, symmetric: 0.5}", False),
])
def test_hole_punch_follows_the_pair_of_behaviours(tmp_path, nat, punchable):
    sim, rows, labels = run(tmp_path, nat)
    outcomes = punches(rows)
    assert outcomes, "no hole punch was attempted"
    if punchable:
        # cone NATs on both sides: every attempt over both transports connects, nearly all at once
        assert set(outcomes) == {("0", "1"), ("1", "1")}
        first = [r for r in rows if r["kind"] == "hole_punch" and r["count"] == "1"]
        assert len(first) / sum(outcomes.values()) > 0.9
    else:
        assert all(ok == "0" for _, ok in outcomes)  # symmetric on both sides: never
        relayed = [r for r in rows if r["kind"] == "connection" and r["ok"] == "0"]
        assert relayed  # they stay relayed ...
        delivered = [r for r in rows if r["kind"] == "delivery"]
        assert delivered and sum(float(r["value"]) for r in delivered) / len(delivered) > 0.9  # ... and work
    json.dumps(sim.nat.summary())


def test_reachability_verdicts_and_reservations(tmp_path):
    sim, rows, labels = run(tmp_path, "{none: 0.3, full-cone: 0.2, port-restricted: 0.3, symmetric: 0.2}")
    last = {}
    for r in rows:
        if r["kind"] == "reachability":
            last[int(r["node"])] = r["value"]
    by_label = Counter((labels[i], v) for i, v in last.items())
    assert by_label[("none", "0")] == 0 and by_label[("none", "1")] > 0
    assert by_label[("full-cone", "0")] == 0  # a full cone lets the dial-back in: reachable
    for private in ("port-restricted", "symmetric"):
        assert by_label[(private, "1")] == 0 and by_label[(private, "0")] > 0
    reserved = {int(r["node"]) for r in rows if r["kind"] == "reservation" and r["ok"] == "1"}
    assert reserved and all(labels[i] in ("port-restricted", "symmetric") for i in reserved)


def test_a_dead_relay_makes_the_private_node_reserve_elsewhere(tmp_path):
    scenario = parse_scenario(SCENARIO.format(nat="{none: 0.5, port-restricted: 0.5}"))
    writer = EventWriter(tmp_path / "events.csv")
    sim = Simulation(scenario, writer)
    env = sim.env
    killed = {}

    def kill_a_relay() -> None:
        private = next(i for i, t in enumerate(sim.nat.traversals) if t is not None and t.client.slots)
        relay_id = next(iter(sim.nat.traversals[private].client.slots))
        relay = sim.network.index[relay_id.raw]
        killed.update(private=private, relay=relay, before=set(sim.nat.traversals[private].client.slots))
        sim.stop_node(relay, graceful=False)

    sim.network.call_later(40.0, kill_a_relay)
    sim.run()
    writer.close()
    after = set(sim.nat.traversals[killed["private"]].client.slots)
    dead = sim.network.infos[killed["relay"]].peer_id
    assert dead in killed["before"] and dead not in after
    assert len(after) == scenario.nat.reservations
    assert env.now > 40.0
