"""End-to-end pub-sub runs of the simulator: determinism, the delivery verdict, attackers.

``scenarios/delivery.yaml`` at 200 nodes takes 35-45 s on the development machine (under the one-minute
mark for ``slow``); a trimmed copy of the same file (fewer nodes, shorter periods, everything else as
shipped) checks the same verdict in a few seconds, and keeps doing so if the full run is ever deselected.
"""

from __future__ import annotations

import csv
import json
import operator
from pathlib import Path

import yaml

from experiment.scenario import load_scenario
from p2pnode.eventlog import EventWriter
from p2pnode.pubsub.router import GossipSub
from sim.adversary import DroppingGossipSub
from sim.cli import main as simulate
from sim.simulation import Simulation

ROOT = Path(__file__).resolve().parents[2]
DELIVERY = ROOT / "scenarios" / "delivery.yaml"

TINY = """
name: tiny-delivery
seed: 5
warmup: 20
duration: 20
nodes: {{count: 40, bootstrap: 2, join_over: 10}}
churn: {{session: {{distribution: exponential, mean: 40}}, offline: {{distribution: exponential, mean: 10}},
        graceful: 0.5}}
workload: {{lookup: 0, put: 0, get: 0}}
pubsub: {{topics: 1, subscribers: 1.0, publishers: 0.1, rate: 2.0, message_size: 256, discovery: {discovery},
         peers: 10, max_peers: 20, scoring: true, attackers: {attackers}}}
measure: {{delivery_settle: 5, delivery_deadline: 10}}
criteria: {{delivery_rate: {{}}, delivery_p99: {{}}}}
"""


def tiny(tmp_path: Path, discovery: str = "dht", attackers: float = 0.0) -> Path:
    path = tmp_path / f"tiny-{discovery}-{attackers}.yaml"
    path.write_text(TINY.format(discovery=discovery, attackers=attackers))
    return path


def run(argv: list[str], out: Path) -> Path:
    assert simulate([*argv, "--out", str(out)]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


OPS = {">=": operator.ge, "<": operator.lt}


def assert_delivery_verdict(run_dir: Path) -> dict[str, dict]:
    """summary.json judges delivery_rate and delivery_p99 with numbers and a pass/fail that matches them."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    summary = json.loads((run_dir / "summary.json").read_text())
    judged = {c["name"]: c for c in summary["criteria"]}
    assert set(judged) == {"delivery_rate", "delivery_p99"}
    for criterion in judged.values():
        assert isinstance(criterion["value"], float), criterion
        assert isinstance(criterion["pass"], bool), criterion
        assert criterion["pass"] == OPS[criterion["op"]](criterion["value"], criterion["target"])
    assert 0.0 <= judged["delivery_rate"]["value"] <= 1.0
    assert judged["delivery_p99"]["value"] > 0.0
    kinds = {r["kind"] for r in rows(run_dir / "events.csv")}
    assert {"publish", "deliver", "delivery"} <= kinds
    return judged


def test_same_seed_same_bytes(tmp_path):
    """A pub-sub run with churn is a pure function of its scenario and seed."""
    scenario = tiny(tmp_path)
    a = run([str(scenario)], tmp_path / "a")
    b = run([str(scenario)], tmp_path / "b")
    assert (a / "events.csv").read_bytes() == (b / "events.csv").read_bytes()
    assert (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
    kinds = [r["kind"] for r in rows(a / "events.csv")]
    assert kinds.count("down") > 5 and kinds.count("delivery") > 20  # churn and traffic both happened


def test_trimmed_delivery_scenario_computes_the_verdict(tmp_path):
    """scenarios/delivery.yaml as shipped, but smaller and shorter."""
    data = yaml.safe_load(DELIVERY.read_text())
    data.update(warmup=40, duration=30)
    data["nodes"].update(count=60, join_over=20)
    trimmed = tmp_path / "delivery-trimmed.yaml"
    trimmed.write_text(yaml.safe_dump(data))
    assert_delivery_verdict(run([str(trimmed)], tmp_path / "out"))


def test_delivery_scenario_with_200_nodes(tmp_path):
    run_dir = run([str(DELIVERY), "--nodes", "200"], tmp_path)
    assert json.loads((run_dir / "manifest.json").read_text())["nodes"] == 200
    assert_delivery_verdict(run_dir)


class _Recording(Simulation):
    """Remembers the router class of every node it builds (nodes are rebuilt when they rejoin)."""

    def __init__(self, *args, **kwargs):
        self.built: list[tuple[int, type]] = []
        super().__init__(*args, **kwargs)

    def _host(self, i: int):
        host = super()._host(i)
        self.built.append((i, type(host.pubsub)))
        return host


def test_attackers_drop_and_are_not_measured(tmp_path):
    scenario = load_scenario(tiny(tmp_path, discovery="random", attackers=0.2))
    events = EventWriter(tmp_path / "events.csv")
    sim = _Recording(scenario, events)
    sim.run()
    events.close()

    attackers = {i for i in range(sim.n) if sim.attacker[i]}
    assert len(attackers) == round(0.2 * sim.n)
    assert sim.built and {i for i, _ in sim.built} == set(range(sim.n))
    for i, router in sim.built:
        assert router is (DroppingGossipSub if i in attackers else GossipSub)
    # Attackers subscribe (they sit in meshes) but are not among the subscribers deliveries are judged at,
    # and never publish.
    (topic,) = sim.plan.topic_names
    assert all(sim.subscribed[i] == [topic] for i in attackers)
    assert attackers.isdisjoint(sim.plan.subscribers[topic]) and attackers.isdisjoint(sim.plan.publishers)
    honest = len(sim.plan.subscribers[topic])

    table = rows(tmp_path / "events.csv")
    delivered = [r for r in table if r["kind"] == "deliver"]
    judged = [r for r in table if r["kind"] == "delivery"]
    assert delivered and judged
    assert all(int(r["node"]) not in attackers for r in delivered)
    for r in judged:
        assert int(r["node"]) not in attackers  # the publisher
        assert int(r["value"]) <= int(r["count"]) <= honest - 1
    # The attackers did get the messages (they are in the meshes); they just relay none of them.
    assert any(sim.nodes[i] is not None and sim.nodes[i].pubsub.first_received > 0 for i in attackers)
    # Scoring and gossip route around them: honest subscribers still get (nearly) everything.
    rate = sum(int(r["value"]) for r in judged) / sum(int(r["count"]) for r in judged)
    assert rate > 0.95
