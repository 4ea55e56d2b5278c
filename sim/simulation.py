"""One simulated run: build the nodes and the network from a scenario, drive churn and workload, measure.

Measurements come from outside the protocol: the simulation knows every live node, so it can say whether a
lookup found the truly closest peers (``experiment.oracle``) and whether routing tables have formed.
"""

from __future__ import annotations

import gc
import random
import resource
import time
from collections.abc import Callable
from typing import Any

import simpy

from experiment import churn as churn_model
from experiment.latency import scenario_matrix, scenario_path_loss
from experiment.measure import Published, drain_seconds
from experiment.oracle import LiveSet
from p2pnode.config import GossipConfig, KadConfig, ScoreConfig, TopicScoreParams
from p2pnode.eventlog import EventWriter
from p2pnode.host import Host
from p2pnode.identity import Keypair, kad_key
from p2pnode.kad.events import GetFinished, LookupFinished, PutFinished
from p2pnode.kad.messages import PeerInfo
from p2pnode.pubsub.codec import default_message_id
from p2pnode.pubsub.messages import Message
from p2pnode.pubsub.router import GossipSub
from sim.access import AccessNetworks
from sim.attacks import DroppingGossipSub
from sim.latency import LatencyModel
from sim.runtime import SimNetwork, SimRuntime


def _spread(shares: dict[str, float], count: int, rng: random.Random) -> list[str]:
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


def kad_config(dht: Any) -> KadConfig:
    return KadConfig(k=dht.k, alpha=dht.alpha, disjoint_paths=dht.disjoint_paths,
                     request_timeout=dht.request_timeout, slow_after=dht.slow_after, record_ttl=dht.record_ttl,
                     republish_interval=dht.republish_interval, refresh_interval=dht.refresh_interval)


def gossip_config(pubsub: Any) -> GossipConfig:
    return GossipConfig(**pubsub.router.model_dump())


def score_config(pubsub: Any) -> ScoreConfig:
    """Thresholds from the scenario; each of its topics gets parameters sized for the rate it carries (a
    topic without parameters would not count towards scores)."""
    topic = TopicScoreParams.for_rate(pubsub.rate / pubsub.topics)
    return ScoreConfig(enabled=pubsub.scoring, topics=tuple((name, topic) for name in pubsub.topic_names()),
                       **pubsub.score.model_dump())


class Simulation:
    def __init__(self, scenario: Any, events: EventWriter, progress: Callable[[float, float], None] | None = None):
        self.scenario = scenario
        self.events = events
        self.progress = progress
        seed = scenario.seed
        master = random.Random(seed)
        # Separate streams, so that changing the workload does not change who churns when.
        self.rng_net = random.Random(master.getrandbits(64))
        self.rng_churn = random.Random(master.getrandbits(64))
        self.rng_work = random.Random(master.getrandbits(64))
        self.rng_nodes = random.Random(master.getrandbits(64))
        rng_build = random.Random(master.getrandbits(64))

        self.env = simpy.Environment()
        self.config = kad_config(scenario.dht)
        n = scenario.nodes.count
        self.n = n
        self.keypairs = [Keypair.from_seed(rng_build.randbytes(32)) for _ in range(n)]
        names, rtt = scenario_matrix(scenario)
        regions = scenario.nodes.region_shares(names)
        region_index = {name: i for i, name in enumerate(names)}
        node_regions = [region_index[r] for r in _spread(regions, n, rng_build)]
        lo, hi = scenario.network.latency.access
        access = [rng_build.uniform(lo, hi) for _ in range(n)]
        self.access = None
        if set(scenario.nodes.transition) != {"native"}:
            # its own stream (a string seed is hashed deterministically), so runs without transition
            # mechanisms draw exactly what they drew before
            rng_access = random.Random(f"access-{seed}")
            boot = scenario.nodes.bootstrap
            networks = ["native"] * boot + _spread(scenario.nodes.transition, n - boot, rng_access)
            self.access = AccessNetworks(networks, scenario.nodes.transition_blackhole, boot, node_regions,
                                         [[v / 2000.0 for v in row] for row in rtt], rng_access)
            access = [a + d for a, d in zip(access, self.access.detour, strict=True)]
        latency = LatencyModel(rtt, node_regions, access, scenario.network.latency.jitter, self.rng_net,
                               path_loss=scenario_path_loss(scenario))
        self.network = SimNetwork(self.env, latency, scenario.network.loss, self.rng_net,
                                  wire_exact=scenario.dht.wire == "exact",
                                  idle_timeout=scenario.network.idle_timeout)
        self.infos = [PeerInfo(kp.peer_id) for kp in self.keypairs]
        for info in self.infos:
            self.network.add_endpoint(info)
        if self.access is not None:
            self.network.unreachable = self.access.unreachable
        self.nodes: list[Host | None] = [None] * n
        self.up_since = [0.0] * n
        self.started_once = [False] * n
        self.live = LiveSet()
        self.bootstrap_infos = self.infos[: scenario.nodes.bootstrap]
        self.end = scenario.warmup + scenario.duration
        self.published: list[tuple[bytes, int]] = []  # (key, version) of puts that reached a replica
        sample = scenario.measure.formation_sample
        self.formation_nodes = sorted(rng_build.sample(range(n), min(sample, n)))
        self.formed = False
        self._verifying = False
        # The lookup check adds traffic of its own (a lookup from every checked node, again and again
        # until they agree), so it runs only where formation is judged; elsewhere the routing-table
        # completeness samples are enough.
        self.check_formation = "formation_time" in (scenario.criteria or {})
        # With random discovery and no DHT workload nothing needs the DHT: nodes do not join it (its
        # bootstrap would otherwise be most of the traffic of a pub-sub study).
        wl = scenario.workload
        self.join_dht = not (scenario.pubsub is not None and scenario.pubsub.discovery == "random"
                             and wl.lookup == wl.put == wl.get == 0 and not self.check_formation)
        self._setup_pubsub(rng_build)
        self._setup_mcp(rng_build)

    def _setup_pubsub(self, rng: random.Random) -> None:
        ps = self.scenario.pubsub
        self.pubsub = ps
        self.stop_at = self.end + drain_seconds(self.scenario)
        if ps is None:
            return
        n = self.n
        self.gossip = gossip_config(ps)
        self.scores = score_config(ps)
        self.topic_names = [f"topic-{t}" for t in range(ps.topics)]
        self.attacker = [False] * n
        for i in rng.sample(range(n), round(ps.attackers * n)):
            self.attacker[i] = True
        self.subscribed: list[list[str]] = [[] for _ in range(n)]
        self.subscribers: dict[str, list[int]] = {}  # honest subscribers per topic
        for topic in self.topic_names:
            members = sorted(rng.sample(range(n), max(1, round(ps.subscribers * n))))
            for i in members:
                self.subscribed[i].append(topic)
            self.subscribers[topic] = [i for i in members if not self.attacker[i]]
        honest = [i for i in range(n) if not self.attacker[i]]
        self.publishers = sorted(rng.sample(honest, max(1, round(ps.publishers * len(honest)))))
        self.live_list: list[int] = []  # for random discovery: live nodes, any order
        self.live_pos: dict[int, int] = {}
        self.in_flight: dict[bytes, Published] = {}  # by message ID (the router's default)
        self.message_count = 0
        self.settle = self.scenario.measure.delivery_settle
        self.deadline = self.scenario.measure.delivery_deadline
        self.payload = bytes(ps.message_size)
        self.retired = [0, 0]  # message copies received / first receptions at nodes since stopped

    def _setup_mcp(self, rng: random.Random) -> None:
        """Who offers run_inference, and each node's MCP configuration (docs/mcp.md)."""
        mcp = self.scenario.mcp
        self.mcp_services: list[Any] = [None] * self.n
        if mcp is None:
            return
        from p2pnode.nodeconfig import MCP_TOOLS, validate_config

        count = max(1, round(mcp.providers * self.n))
        self.mcp_providers = set(rng.sample(range(self.n), count))
        section = {"service_ttl": mcp.service_ttl, "request_timeout": mcp.request_timeout,
                   "max_concurrent_requests": 1000, "peer_tools": {"*": ["*"]}}
        self.mcp_config = {
            True: validate_config({"mcp": section}),
            False: validate_config({"mcp": {**section, "available_tools": [
                t for t in MCP_TOOLS if t != "run_inference"]}}),
        }
        self.rng_mcp = random.Random(rng.getrandbits(64))

    def _start_mcp(self, i: int, node: Host) -> None:
        from p2pnode.mcp.service import McpRuntime, McpService
        from sim.mcp import ModelledBackend, SimMcpLink

        mcp = self.scenario.mcp
        runtime = McpRuntime(SimMcpLink(self.network, self.mcp_services, i),
                             ModelledBackend(self.network, self.rng_mcp, mcp.service_time), PeerInfo,
                             facts=lambda: {"uptime_s": self.env.now - self.up_since[i]})
        service = McpService(node, self.mcp_config[i in self.mcp_providers], runtime)
        self.mcp_services[i] = service
        service.start()

    # ---- node lifecycle --------------------------------------------------------------------------

    def _host(self, i: int) -> Host:
        runtime = SimRuntime(self.network, i, self.rng_nodes)
        ps = self.pubsub
        if ps is None:
            return Host(self.keypairs[i], runtime, self.config)
        discover = (lambda: self._sample_live(2 * ps.peers)) if ps.discovery == "random" else None
        return Host(self.keypairs[i], runtime, self.config, self.gossip, self.scores, peers=ps.peers,
                    max_peers=ps.max_peers, router=DroppingGossipSub if self.attacker[i] else GossipSub,
                    discover=discover)

    def start_node(self, i: int) -> None:
        node = self._host(i)
        self.nodes[i] = node
        self.network.handlers[i] = node
        self.network.refuses[i] = False
        self.live.add(self.infos[i].peer_id.kad_id)
        self.up_since[i] = self.env.now
        first = not self.started_once[i]
        self.started_once[i] = True
        self.events.write(self.env.now, "up", i, value=1 if first else 0)
        bootstrap = [b for b in self.bootstrap_infos if b is not self.infos[i]] if self.join_dht else []
        node.start(bootstrap)
        if self.scenario.mcp is not None:
            self._start_mcp(i, node)
        if self.pubsub is not None:
            self.live_pos[i] = len(self.live_list)
            self.live_list.append(i)
            for topic in self.subscribed[i]:
                node.subscribe(topic, lambda message, i=i: self._delivered(i, message))

    def stop_node(self, i: int, graceful: bool) -> None:
        node = self.nodes[i]
        if node is None:
            return
        node.stop()
        if self.mcp_services[i] is not None:
            self.mcp_services[i].stop()
            self.mcp_services[i] = None
        self.nodes[i] = None
        self.network.handlers[i] = None
        self.network.refuses[i] = graceful
        self.network.node_down(i, graceful)
        self.live.remove(self.infos[i].peer_id.kad_id)
        self.events.write(self.env.now, "down", i, value=1 if graceful else 0)
        if self.pubsub is not None:
            self.retired[0] += node.pubsub.received
            self.retired[1] += node.pubsub.first_received
            pos = self.live_pos.pop(i)
            last = self.live_list.pop()
            if last != i:
                self.live_list[pos] = last
                self.live_pos[last] = pos

    def _sample_live(self, count: int) -> list[PeerInfo]:
        """A discovery service's answer: ``count`` random live peers."""
        live = self.live_list
        picked = self.rng_nodes.sample(live, min(count, len(live)))
        return [self.infos[j] for j in picked]

    def _schedule_churn(self) -> None:
        spec = self.scenario.churn
        if spec is None:
            return
        session = churn_model.sampler(spec.session, self.rng_churn)
        offline = churn_model.sampler(spec.offline, self.rng_churn)
        graceful_share = spec.graceful
        rng = self.rng_churn
        net = self.network

        def leave(i: int) -> None:
            self.stop_node(i, rng.random() < graceful_share)
            net.call_later(offline(), rejoin, i)

        def rejoin(i: int) -> None:
            self.start_node(i)
            net.call_later(session(), leave, i)

        for i in range(self.scenario.nodes.bootstrap, self.n):
            # Sessions in progress at the end of the warm-up: each ends after a fresh session draw.
            net.call_later(self.scenario.warmup + session(), leave, i)

    # ---- workload --------------------------------------------------------------------------------

    def _poisson(self, rate_per_minute: float, action: Callable[[Host, int], None]) -> None:
        """Operations at ``rate_per_minute`` per live node: a Poisson process over all nodes, thinned to
        the live ones (each live node then sees exactly its own Poisson process)."""
        if rate_per_minute <= 0:
            return
        total_rate = rate_per_minute / 60.0 * self.n
        rng = self.rng_work
        net = self.network

        def tick() -> None:
            if self.env.now >= self.end:
                return
            i = rng.randrange(self.n)
            node = self.nodes[i]
            if node is not None and node.bootstrapped:
                action(node, i)
            net.call_later(rng.expovariate(total_rate), tick)

        net.call_later(self.scenario.warmup + rng.expovariate(total_rate), tick)

    def _lookup(self, node: Host, i: int) -> None:
        key = self.rng_work.randbytes(32)

        def done(result: LookupFinished) -> None:
            target = kad_key(key)
            truth = self.live.closest(target, self.config.k, exclude=node.peer_id.kad_id)
            found = {p.peer_id.kad_id for p in result.peers}
            ok = bool(truth) and truth[0] in found
            share = len(found.intersection(truth)) / len(truth) if truth else 1.0
            self.events.write(self.env.now, "lookup", i, result.finished - result.started, result.hops, ok,
                              round(share, 6), result.requests)

        node.dht.find_node(key, done)

    def _put(self, node: Host, i: int) -> None:
        key = b"/p2pnode/" + self.rng_work.randbytes(16).hex().encode()
        value = self.rng_work.randbytes(self.scenario.workload.value_size)

        def done(result: PutFinished) -> None:
            if result.replicas > 0:
                self.published.append((key, result.version))
            self.events.write(self.env.now, "put", i, result.finished - result.started, None,
                              result.replicas > 0, result.replicas, result.requests)

        node.dht.put_value(key, value, done)

    def _get(self, node: Host, i: int) -> None:
        if not self.published:
            return
        key, version = self.published[self.rng_work.randrange(len(self.published))]

        def done(result: GetFinished) -> None:
            ok = result.record is not None and result.record.version >= version
            self.events.write(self.env.now, "get", i, result.finished - result.started, result.hops, ok,
                              None, result.requests)

        node.dht.get_value(key, done)

    def _mcp_call(self, node: Host, i: int) -> None:
        """A local agent's tools/call on node i: forward_to_peer, or aggregate_results over providers."""
        from p2pnode.mcp import jsonrpc
        from p2pnode.mcp.server import META_CAPABILITIES, META_VERSION, MODERN_VERSIONS, Channel

        service = self.mcp_services[i]
        if service is None:
            return
        mcp = self.scenario.mcp
        rng = self.rng_work
        started = self.env.now
        text = rng.randbytes(24).hex()
        if rng.random() < mcp.aggregate:
            tool, arguments = "aggregate_results", {"input": text, "count": mcp.fanout, "timeout": mcp.timeout}
        else:
            tool, arguments = "forward_to_peer", {"input": text, "attempt_timeout": mcp.attempt_timeout}

        def answered(message: dict) -> None:
            if "id" not in message:
                return  # progress
            result = message.get("result") or {}
            ok = "result" in message and not result.get("isError")
            structured = result.get("structuredContent") or {}
            attempts = len(structured.get("attempts", [])) or structured.get("requested")
            self.events.write(self.env.now, "mcp", i, self.env.now - started, attempts, ok,
                              structured.get("failovers", 0), structured.get("answered"))
            if structured.get("discovery_ms") is not None and not structured.get("discovery_cached"):
                self.events.write(self.env.now, "mcp_discovery", i, structured["discovery_ms"] / 1000, None, True)

        request = jsonrpc.request(1, "tools/call", {"name": tool, "arguments": arguments,
                                                    "_meta": {META_VERSION: MODERN_VERSIONS[0], META_CAPABILITIES: {}}})
        service.server.receive(jsonrpc.parse_object(request), Channel(answered))

    # ---- pub-sub workload and delivery ----------------------------------------------------------

    def _schedule_publishing(self) -> None:
        ps = self.pubsub
        if ps is None:
            return
        rng = self.rng_work
        net = self.network

        def gap() -> float:
            return 1.0 / ps.rate if ps.arrivals == "periodic" else rng.expovariate(ps.rate)

        def tick() -> None:
            if self.env.now >= self.end:
                return
            self._publish()
            net.call_later(gap(), tick)

        # Messages flow from the moment every node has joined, as in a network in steady state (an idle
        # topic would also have peer scoring prune every mesh for want of deliveries); only those
        # published after the warm-up are measured.
        net.call_later(self.scenario.nodes.join_over + gap(), tick)

    def _publish(self) -> None:
        """One message from a live publisher (a random one; the others are tried in random order when it
        is down), on a random topic."""
        rng = self.rng_work
        topic = self.topic_names[rng.randrange(len(self.topic_names))]
        start = rng.randrange(len(self.publishers))
        for k in range(len(self.publishers)):
            i = self.publishers[(start + k) % len(self.publishers)]
            node = self.nodes[i]
            if node is not None:
                break
        else:
            return
        now = self.env.now
        mid = node.publish(topic, self.payload)  # the publisher's own delivery is not measured
        if now < self.scenario.warmup:
            return
        number = self.message_count
        self.message_count += 1
        record = Published(mid, number, now, topic, i)
        self.in_flight[mid] = record
        self.events.write(now, "publish", i, value=number, count=len(self.payload))
        self.network.call_later(self.deadline, self._judge, record)

    def _delivered(self, i: int, message: Message) -> None:
        record = self.in_flight.get(default_message_id(message))
        if record is None or i == record.publisher or self.attacker[i] or i in record.delivered:
            return
        now = self.env.now
        record.delivered[i] = now
        eligible = self.up_since[i] <= record.time - self.settle
        self.events.write(now, "deliver", i, now - record.time, ok=eligible, value=record.number)

    def _judge(self, record: Published) -> None:
        """The deadline has passed: count the subscribers that were up throughout, and which got it."""
        del self.in_flight[record.mid]
        since = record.time - self.settle
        eligible = delivered = 0
        for j in self.subscribers[record.topic]:
            if j == record.publisher or self.nodes[j] is None or self.up_since[j] > since:
                continue
            eligible += 1
            delivered += j in record.delivered
        self.events.write(record.time, "delivery", record.publisher, ok=delivered == eligible, value=delivered,
                          count=eligible)

    # ---- measurement -----------------------------------------------------------------------------

    def _sample(self) -> None:
        now = self.env.now
        self.events.write(now, "live", value=len(self.live))
        self.events.write(now, "traffic", value=self.network.bytes, count=self.network.messages)
        if self.join_dht:  # nodes that never join the DHT have no routing table to judge
            self._check_formation(now)
        if self.pubsub is not None:
            self._sample_pubsub(now)
        self.events.flush()

    def _sample_pubsub(self, now: float) -> None:
        net = self.network
        self.events.write(now, "ps_data", value=net.pubsub_data_bytes, count=net.pubsub_copies)
        self.events.write(now, "ps_control", value=net.pubsub_control_bytes, count=net.pubsub_rpcs)
        received, first = self.retired
        degrees = 0
        meshes = 0
        under = 0
        d_lo = self.gossip.d_lo
        for i in self.live_list:
            router = self.nodes[i].pubsub
            received += router.received
            first += router.first_received
            if self.subscribed[i]:
                sizes = [len(router.mesh.get(t, ())) for t in self.subscribed[i]]
                degrees += sum(sizes)
                meshes += len(sizes)
                under += min(sizes) < d_lo
        self.events.write(now, "ps_recv", value=first, count=received)
        self.events.write(now, "mesh", value=round(degrees / meshes, 6) if meshes else None, count=under)

    def _check_formation(self, now: float) -> None:
        k = self.config.k
        checked = complete = bootstrapped = 0
        for i in self.formation_nodes:
            node = self.nodes[i]
            if node is None:
                continue
            checked += 1
            bootstrapped += node.bootstrapped
            complete += self.live.table_complete(node.peer_id.kad_id, node.dht.table.buckets, k)
        if checked == 0:
            return
        self.events.write(now, "formation", value=round(complete / checked, 6), count=checked)
        joined = now >= self.scenario.nodes.join_over  # the whole network exists, not a first few nodes
        if self.check_formation and joined and bootstrapped == checked and not self.formed and not self._verifying:
            self._verify_formation()

    def _verify_formation(self) -> None:
        """Every checked node has bootstrapped: do lookups for one random key from all of them return the
        true k closest live peers? The answer is written when the last lookup returns."""
        self._verifying = True
        key = self.rng_work.randbytes(32)
        target = kad_key(key)
        origins = [i for i in self.formation_nodes if self.nodes[i] is not None]
        results: dict[int, set[int]] = {}

        def done(i: int, result: LookupFinished) -> None:
            results[i] = {p.peer_id.kad_id for p in result.peers}
            if len(results) < len(origins):
                return
            self._verifying = False
            k = self.config.k
            agreeing = sum(
                results[j] == set(self.live.closest(target, k, exclude=self.infos[j].peer_id.kad_id))
                for j in origins
            )
            self.formed = agreeing == len(origins)
            self.events.write(self.env.now, "formation", ok=self.formed, value=round(agreeing / len(origins), 6),
                              count=len(origins))

        for i in origins:
            self.nodes[i].dht.find_node(key, lambda result, i=i: done(i, result))

    # ---- the run ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        scenario = self.scenario
        net = self.network
        wall_start = time.perf_counter()
        for i in range(scenario.nodes.bootstrap):
            net.call_later(0.0, self.start_node, i)
        joiners = self.n - scenario.nodes.bootstrap
        join_rng = random.Random(self.rng_churn.getrandbits(64))
        for i in range(scenario.nodes.bootstrap, self.n):
            delay = join_rng.uniform(0.0, scenario.nodes.join_over) if joiners else 0.0
            net.call_later(delay, self.start_node, i)
        self._schedule_churn()
        workload = scenario.workload
        self._poisson(workload.lookup, self._lookup)
        self._poisson(workload.put, self._put)
        self._poisson(workload.get, self._get)
        if scenario.mcp is not None:
            self._poisson(scenario.mcp.rate, self._mcp_call)
        self._schedule_publishing()

        interval = scenario.measure.sample_interval
        stop = self.stop_at
        t = 0.0
        # The cyclic garbage collector's full passes walk every object, so with the default thresholds
        # their cost per message grows with the network: keep the long-lived setup out of its sight
        # and let it run less often (cycles are still collected).
        thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        try:
            while t < stop:
                t = min(t + interval, stop)
                self.env.run(until=t)
                self._sample()
                if self.progress is not None:
                    self.progress(t, stop)
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
        wall = time.perf_counter() - wall_start
        self.events.flush()
        return {
            "wall_seconds": round(wall, 3),
            "simulated_seconds": stop,
            "messages": net.messages,
            "bytes": net.bytes,
            "messages_per_wall_second": round(net.messages / wall, 1) if wall > 0 else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "messages_by_type": {kind.__name__: count for kind, count in sorted(
                net.by_type.items(), key=lambda item: item[0].__name__)},
        }

