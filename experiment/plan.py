"""Who is who in a run, drawn from the scenario's seed the same way in both runtimes.

A simulated and an emulated run of one scenario and seed have the same nodes (keys), regions, subscribers,
publishers, attackers and formation sample, and draw churn and workload from the same random streams; what
differs between them is only what the runtime does to the nodes' messages.
"""

from __future__ import annotations

import random
from typing import Any

from experiment.latency import scenario_matrix
from p2pnode.identity import Keypair, kad_key
from p2pnode.security.puzzles import solve_dynamic, solve_static, static_bits

DRAIN = 10.0  # seconds after the measured period for running operations to finish


def drain_seconds(scenario: Any) -> float:
    """How long a run goes on after the measured period: operations started before its end may finish, and
    messages published then reach their delivery deadline."""
    if scenario.pubsub is None:
        return DRAIN
    return max(DRAIN, scenario.measure.delivery_deadline + 1.0)


def spread(shares: dict[str, float], count: int, rng: random.Random) -> list[str]:
    """Assign ``count`` items to names in proportion to ``shares`` (largest remainder), then shuffle."""
    names = sorted(shares)
    exact = [shares[n] * count for n in names]
    counts = [int(x) for x in exact]
    order = sorted(range(len(names)), key=lambda i: (counts[i] - exact[i], names[i]))
    for i in order[: count - sum(counts)]:
        counts[i] += 1
    out = [n for n, c in zip(names, counts, strict=True) for _ in range(c)]
    rng.shuffle(out)
    return out


class Plan:
    """The draws of a run: node keys, regions and access latencies, the formation sample, the pub-sub roles,
    the MCP providers, the access networks (``experiment.access``), the random streams the drivers go on drawing from, and when the run ends."""

    def __init__(self, scenario: Any):
        self.scenario = scenario
        n = self.n = scenario.nodes.count
        master = random.Random(scenario.seed)
        # Separate streams, so that changing the workload does not change who churns when.
        self.rng_net = random.Random(master.getrandbits(64))  # the simulator's network model
        self.rng_churn = random.Random(master.getrandbits(64))
        self.rng_work = random.Random(master.getrandbits(64))
        self.rng_nodes = random.Random(master.getrandbits(64))  # handed to simulated nodes
        build = random.Random(master.getrandbits(64))
        security = scenario.security
        # keys whose IDs meet the static puzzle (each seed is tried first, so with puzzles off these are the
        # keys of the seeds), and each ID's dynamic-puzzle solution
        self.keypairs = [solve_static(build.randbytes(32), security.puzzle_static)[0] for _ in range(n)]
        self.puzzles = [solve_dynamic(kp.peer_id.kad_id, security.puzzle_dynamic)[0] for kp in self.keypairs]
        self.peer_ids = [kp.peer_id for kp in self.keypairs]
        self.kad_ids = [p.kad_id for p in self.peer_ids]
        self.region_names, self.rtt_ms = scenario_matrix(scenario)
        index = {name: i for i, name in enumerate(self.region_names)}
        shares = scenario.nodes.region_shares(self.region_names)
        self.node_regions = [index[r] for r in spread(shares, n, build)]  # index into region_names
        lo, hi = scenario.network.latency.access
        self.access = [build.uniform(lo, hi) for _ in range(n)]  # one-way seconds (the simulator's model)
        self.formation_nodes = sorted(build.sample(range(n), min(scenario.measure.formation_sample, n)))
        self.end = scenario.warmup + scenario.duration
        self.stop_at = self.end + drain_seconds(scenario)
        self.attacker = [False] * n
        self.topic_names: list[str] = []
        self.subscribed: list[list[str]] = [[] for _ in range(n)]  # topics per node
        self.subscribers: dict[str, list[int]] = {}  # honest subscribers per topic
        self.publishers: list[int] = []
        if scenario.pubsub is not None:
            self._pubsub_roles(scenario.pubsub, build)
        self.malicious: list[bool] = [False] * n  # the adversary's nodes (sim/adversary.py)
        self.victim_keys: list[bytes] = []  # the keys an eclipse surrounds
        if scenario.adversary is not None:
            self._adversary(scenario.adversary, scenario.nodes.bootstrap)
        self.mcp_providers: set[int] = set()  # the nodes that offer run_inference
        self.rng_mcp: random.Random | None = None  # the modelled inference service's times
        if scenario.mcp is not None:
            self.mcp_providers = set(build.sample(range(n), max(1, round(scenario.mcp.providers * n))))
            self.rng_mcp = random.Random(build.getrandbits(64))
        from experiment.access import assign  # it spreads shares with this module's spread()

        # each node's access network and whether its element drops probes (None: all native)
        self.access_networks = assign(scenario)

    def _adversary(self, adversary: Any, bootstrap: int) -> None:
        """Which nodes are malicious: the first of the non-bootstrap nodes in an order drawn from the seed alone,
        so a smaller share's nodes are among a larger share's (a sweep over the share adds attackers to the
        same network). An eclipse gives them node IDs next to its victim keys: each draws a budget of
        2**prefix_bits keys and keeps, of those whose ID meets the static puzzle, the one sharing most leading
        bits with its victim key (puzzles off: every key does, so it gets about prefix_bits of them; at
        puzzle_static c1 only one draw in 2**c1 counts). Its own random stream: runs without an adversary draw
        exactly what they drew before."""
        rng = random.Random(f"adversary-{self.scenario.seed}")
        order = list(range(bootstrap, self.n))
        rng.shuffle(order)
        chosen = sorted(order[: round(adversary.share * self.n)])
        for i in chosen:
            self.malicious[i] = True
        eclipse = adversary.eclipse
        if eclipse is None:
            return
        security = self.scenario.security
        self.victim_keys = [b"/p2pnode/victim-" + rng.randbytes(8).hex().encode() for _ in range(eclipse.keys)]
        targets = [kad_key(key) for key in self.victim_keys]
        for j, i in enumerate(chosen):
            target = targets[j % len(targets)]
            best, best_distance = self.keypairs[i], self.kad_ids[i] ^ target  # its own valid key, if none better
            for _ in range(1 << eclipse.prefix_bits):
                keypair = Keypair.from_seed(rng.randbytes(32))
                kad_id = keypair.peer_id.kad_id
                if kad_id ^ target < best_distance and static_bits(kad_id) >= security.puzzle_static:
                    best, best_distance = keypair, kad_id ^ target
            self.keypairs[i] = best
            self.peer_ids[i] = best.peer_id
            self.kad_ids[i] = best.peer_id.kad_id
            self.puzzles[i] = solve_dynamic(self.kad_ids[i], security.puzzle_dynamic)[0]

    def _pubsub_roles(self, ps: Any, rng: random.Random) -> None:
        n = self.n
        for i in rng.sample(range(n), round(ps.attackers * n)):
            self.attacker[i] = True
        self.topic_names = ps.topic_names()
        for topic in self.topic_names:
            members = sorted(rng.sample(range(n), max(1, round(ps.subscribers * n))))
            for i in members:
                self.subscribed[i].append(topic)
            self.subscribers[topic] = [i for i in members if not self.attacker[i]]
        honest = [i for i in range(n) if not self.attacker[i]]
        self.publishers = sorted(rng.sample(honest, max(1, round(ps.publishers * len(honest)))))
        if ps.attack.kind == "eclipse":
            self.publishers = self.publishers[:1]  # the attackers' victim publishes every message

    def region(self, i: int) -> str:
        return self.region_names[self.node_regions[i]]
