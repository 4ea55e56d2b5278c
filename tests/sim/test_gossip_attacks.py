"""Pub-sub attackers in the simulator (sim/adversary.py): a Sybil flood's invalid messages, a covert flash's
turn, and the eclipse of a publisher, each on real routers over the simulated network."""

from __future__ import annotations

import textwrap

import pytest

from experiment.scenario import ScenarioError, parse_scenario
from p2pnode.eventlog import EventWriter
from sim.adversary import FlashGossipSub, FloodingGossipSub
from sim.simulation import Simulation

TINY = """
name: tiny-attack
seed: 3
warmup: 20
duration: 20
nodes: {{count: 40, bootstrap: 2, join_over: 10}}
workload: {{lookup: 0, put: 0, get: 0}}
pubsub: {{topics: 1, subscribers: 1.0, publishers: 0.1, rate: 2.0, message_size: 256, discovery: random,
         peers: 10, max_peers: {max_peers}, scoring: true, attackers: 0.25, attack: {attack}}}
measure: {{delivery_settle: 5, delivery_deadline: 10}}
"""


def run(tmp_path, attack: str, max_peers: int = 20) -> Simulation:
    scenario = parse_scenario(textwrap.dedent(TINY.format(attack=attack, max_peers=max_peers)))
    events = EventWriter(tmp_path / "events.csv")
    sim = Simulation(scenario, events)
    sim.run()
    events.close()
    return sim


def test_attack_section_errors():
    with pytest.raises(ScenarioError, match="pubsub.attack.kind: eclipse needs discovery: random"):
        parse_scenario("name: x\npubsub: {attackers: 0.1, attack: {kind: eclipse}}\n")
    with pytest.raises(ScenarioError, match=r"pubsub.attack.kind: flash needs attackers \(pubsub.attackers > 0\)"):
        parse_scenario("name: x\npubsub: {attack: {kind: flash}}\n")
    with pytest.raises(ScenarioError, match="pubsub.attack.spam: must be <= 1000, got 5000"):
        parse_scenario("name: x\npubsub: {attackers: 0.1, attack: {kind: flood, spam: 5000}}\n")


def test_a_flood_sends_invalid_messages_that_scoring_punishes(tmp_path):
    sim = run(tmp_path, "{kind: flood, spam: 5}")
    attackers = [i for i in range(sim.n) if sim.attacker[i]]
    honest = [i for i in range(sim.n) if not sim.attacker[i]]
    assert all(isinstance(sim.nodes[i].pubsub, FloodingGossipSub) for i in attackers)
    assert sum(sim.nodes[i].pubsub.invalid for i in honest) > 100
    # an honest node's score for a flooding peer falls below zero (P4, invalid deliveries)
    scores = [sim.nodes[i].pubsub._score(peer) for i in honest for peer in sim.nodes[i].pubsub.peers
              if sim.attacker[sim.network.index[peer.peer_id.raw]]]
    assert scores and min(scores) < 0


def test_a_flash_relays_until_its_moment(tmp_path):
    copies = {}
    for at in (0.0, 30.0, 1000.0):
        sim = run(tmp_path, f"{{kind: flash, at: {at}}}")
        assert all(isinstance(sim.nodes[i].pubsub, FlashGossipSub) for i in range(sim.n) if sim.attacker[i])
        copies[at] = sim.network.pubsub_copies
    assert copies[0.0] < copies[30.0] < copies[1000.0]


def test_an_eclipse_surrounds_the_one_publisher(tmp_path):
    sim = run(tmp_path, "{kind: eclipse}", max_peers=12)
    (victim,) = sim.plan.publishers
    attackers = {i for i in range(sim.n) if sim.attacker[i]}
    index = sim.network.index
    dialled = [index[p.peer_id.raw] for p, outbound in sim.nodes[victim].connections.items() if outbound]
    assert dialled and set(dialled) <= attackers  # its poisoned discovery named only attackers
    for i in attackers:
        outbound = [index[p.peer_id.raw] for p, out in sim.nodes[i].connections.items() if out]
        assert set(outbound) <= {victim}
    inbound = [index[p.peer_id.raw] for p, out in sim.nodes[victim].connections.items() if not out]
    assert len(set(inbound) & attackers) > 0
