"""Connections and request/response in the SimPy runtime, with real hosts (DHT + GossipSub) on both ends."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import simpy

from experiment.latency import builtin_matrix
from p2pnode.config import GossipConfig, ScoreConfig
from p2pnode.host import Host
from p2pnode.identity import Keypair
from p2pnode.kad.messages import PeerInfo
from sim.cli import main as simulate
from sim.latency import LatencyModel
from sim.runtime import DIAL_TIMEOUT, SimNetwork, SimRuntime
from tests.sim.test_delivery import TINY

TOPIC = "t"


class World:
    """``n`` endpoints on one simulated network; hosts are started and stopped explicitly."""

    def __init__(self, n: int, seed: int = 1, jitter: float = 0.1, idle_timeout: float = 30.0, max_peers: int = 40):
        self.env = simpy.Environment()
        rng = random.Random(seed)
        names, rtt = builtin_matrix()
        latency = LatencyModel(rtt, [rng.randrange(len(names)) for _ in range(n)], [0.005] * n, jitter, rng)
        self.net = SimNetwork(self.env, latency, 0.0, rng, idle_timeout=idle_timeout)
        self.keys = [Keypair.from_seed(rng.randbytes(32)) for _ in range(n)]
        self.infos = [PeerInfo(k.peer_id) for k in self.keys]
        for info in self.infos:
            self.net.add_endpoint(info)
        self.rng = rng
        self.max_peers = max_peers
        self.hosts: list[Host | None] = [None] * n

    def start(self, i: int, peers: int = 1) -> Host:
        host = Host(self.keys[i], SimRuntime(self.net, i, self.rng), gossip=GossipConfig(),
                    score=ScoreConfig(enabled=False), peers=peers, max_peers=self.max_peers)
        self.hosts[i] = host
        self.net.handlers[i] = host
        host.start()
        return host

    def stop(self, i: int, graceful: bool) -> None:
        self.hosts[i].stop()
        self.hosts[i] = None
        self.net.handlers[i] = None
        self.net.refuses[i] = graceful
        self.net.node_down(i, graceful)

    def run(self, seconds: float) -> None:
        self.env.run(until=self.env.now + seconds)


@pytest.mark.parametrize("seed", range(20))
def test_the_dialer_learns_the_listeners_subscriptions_even_when_its_hello_overtakes_the_handshake(seed):
    # Heavy jitter makes the listener's first RPC arrive before the dialer's "opened" in many seeds.
    world = World(2, seed=seed, jitter=0.9)
    a, b = world.start(0), world.start(1)
    b.subscribe(TOPIC, lambda m: None)
    a.dial(world.infos[1])
    world.run(5.0)
    assert world.infos[1] in a.connections and a.connections[world.infos[1]] is True  # outbound
    assert world.infos[0] in b.connections and b.connections[world.infos[0]] is False
    assert world.infos[1] in a.pubsub.topics[TOPIC]


@pytest.mark.parametrize(("graceful", "noticed_after"), [(True, "one way"), (False, "idle timeout")])
def test_a_departed_peer_is_noticed_after_one_way_or_the_idle_timeout(graceful, noticed_after):
    world = World(2, idle_timeout=30.0)
    a, _ = world.start(0), world.start(1)
    a.dial(world.infos[1])
    world.run(5.0)
    world.stop(1, graceful)
    world.run(1.0)  # any one-way delay of the built-in model is well under a second
    assert (world.infos[1] in a.connections) is (noticed_after == "idle timeout")
    world.run(30.0)
    assert world.infos[1] not in a.connections


def test_dials_to_a_crashed_peer_fail_after_the_dial_timeout_and_to_a_departed_one_at_once():
    world = World(3)
    a = world.start(0, peers=5)
    world.start(1)
    world.start(2)
    world.stop(1, graceful=False)
    world.stop(2, graceful=True)
    a.dial(world.infos[1])
    a.dial(world.infos[2])
    world.run(1.0)
    assert a.dialing == {world.infos[1]}  # the refused one failed within a round trip
    world.run(DIAL_TIMEOUT)
    assert not a.dialing and not a.connections


def test_inbound_connections_beyond_max_peers_are_refused():
    world = World(5, max_peers=2)
    hub = world.start(0)
    dialers = [world.start(i) for i in range(1, 5)]
    for d in dialers:
        d.dial(world.infos[0])
    world.run(5.0)
    assert len(hub.connections) == 2
    assert sum(world.infos[0] in d.connections for d in dialers) == 2
    assert all(not d.dialing for d in dialers)


def test_a_restarted_peer_gets_a_fresh_connection_and_the_stale_close_is_ignored():
    world = World(2, idle_timeout=30.0)
    a, b = world.start(0), world.start(1)
    a.subscribe(TOPIC, lambda m: None)
    b.subscribe(TOPIC, lambda m: None)
    b.dial(world.infos[0])
    world.run(5.0)
    world.stop(1, graceful=False)
    world.run(2.0)
    b2 = world.start(1)  # back before a noticed the crash; it dials a again
    b2.subscribe(TOPIC, lambda m: None)
    b2.dial(world.infos[0])
    world.run(40.0)  # past the idle timeout of the dead connection
    assert world.infos[1] in a.connections and world.infos[0] in b2.connections
    assert world.infos[1] in a.pubsub.topics[TOPIC] and world.infos[0] in b2.pubsub.topics[TOPIC]


def test_request_response_between_hosts():
    world = World(3)
    a, b = world.start(0), world.start(1)
    world.start(2)
    b.set_handler("/echo/1", lambda sender, data: sender.peer_id.raw[-4:] + data[::-1])
    answers: list[object] = []
    a.request(world.infos[1], "/echo/1", b"abc", answers.append, lambda why: answers.append(("failed", why)))
    a.request(world.infos[1], "/other/1", b"x", answers.append, lambda why: answers.append(("failed", why)))
    world.stop(2, graceful=False)
    a.request(world.infos[2], "/echo/1", b"x", answers.append, lambda why: answers.append(("failed", why)),
              timeout=3.0)
    world.run(5.0)
    assert answers == [world.infos[0].peer_id.raw[-4:] + b"cba", ("failed", "unsupported"), ("failed", "timeout")]


def test_wire_exact_pubsub_run_matches_objects(tmp_path: Path):
    """Every pub-sub RPC and request/response message round-trips through its codec unchanged: a run
    with ``dht.wire: exact`` writes the same events as one that passes objects."""
    outputs = []
    for wire in ("objects", "exact"):
        path = tmp_path / f"{wire}.yaml"
        path.write_text(TINY.format(discovery="dht", attackers=0.0) + f"dht: {{wire: {wire}}}\n")
        out = tmp_path / wire
        assert simulate([str(path), "--out", str(out)]) == 0
        (run_dir,) = list(out.iterdir())
        outputs.append((run_dir / "events.csv").read_bytes())
    assert outputs[0] == outputs[1]
