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

from experiment.churn import Churn, join_delays
from experiment.delivery import Delivery
from experiment.formation import Formation
from experiment.latency import scenario_path_loss
from experiment.mcp import McpWorkload, node_section
from experiment.nat import place as place_nats
from experiment.oracle import LiveSet
from experiment.plan import Plan
from experiment.workload import DhtWorkload, Operations
from p2pnode import native
from p2pnode.config import KAD_PRESETS, GossipConfig, KadConfig, ScoreConfig, TopicScoreParams
from p2pnode.eventlog import EventWriter
from p2pnode.host import Host
from p2pnode.kad.events import GetFinished, LookupFinished, PeerFound, ProvidersFound, PutFinished
from p2pnode.kad.messages import PeerInfo
from p2pnode.pubsub.codec import default_message_id
from p2pnode.pubsub.router import GossipSub
from p2pnode.security.limits import InboundLimits
from sim.access import AccessNetworks
from sim.adversary import Adversary, eclipse_discovery, gossip_router
from sim.latency import LatencyModel
from sim.nat import NatModel
from sim.runtime import SimClock, SimNetwork, SimRuntime


def kad_config(dht: Any, security: Any) -> KadConfig:
    """The scenario's DHT settings; a preset (``dht.preset``) replaces those it sets."""
    settings = dict(k=dht.k, alpha=dht.alpha, disjoint_paths=dht.disjoint_paths,
                    request_timeout=dht.request_timeout, slow_after=dht.slow_after, record_ttl=dht.record_ttl,
                    republish_interval=dht.republish_interval, refresh_interval=dht.refresh_interval,
                    puzzle_static=security.puzzle_static, puzzle_dynamic=security.puzzle_dynamic,
                    siblings=security.siblings, pow_difficulty=security.pow_difficulty,
                    pow_hash_seconds=security.pow_hash_seconds)
    settings.update(KAD_PRESETS[dht.preset])
    return KadConfig(**settings)


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
        plan = self.plan = Plan(scenario)
        self.rng_net, self.rng_churn = plan.rng_net, plan.rng_churn
        self.rng_work, self.rng_nodes = plan.rng_work, plan.rng_nodes
        self.env = SimClock()
        self.config = kad_config(scenario.dht, scenario.security)
        n = self.n = plan.n
        self.keypairs = plan.keypairs
        access = plan.access
        self.access = None
        if plan.access_networks is not None:
            self.access = AccessNetworks(plan.access_networks.networks, plan.access_networks.blackholed,
                                         plan.node_regions, [[v / 2000.0 for v in row] for row in plan.rtt_ms])
            access = [a + d for a, d in zip(access, self.access.detour, strict=True)]
        latency = LatencyModel(plan.rtt_ms, plan.node_regions, access, scenario.network.latency.jitter,
                               self.rng_net, path_loss=scenario_path_loss(scenario))
        self.network = SimNetwork(self.env, latency, scenario.network.loss, self.rng_net,
                                  wire_exact=scenario.dht.wire == "exact",
                                  idle_timeout=scenario.network.idle_timeout)
        self.infos = [PeerInfo(peer_id, puzzle=x) for peer_id, x in zip(plan.peer_ids, plan.puzzles, strict=True)]
        for info in self.infos:
            self.network.add_endpoint(info)
        self.nat = None
        placement = place_nats(scenario)
        if placement is not None:
            # the NAT model decides who gets in (DS-Lite's and 464XLAT's carrier NATs among its boxes)
            mechanisms = [a.mechanism for a in self.access.nodes] if self.access is not None else None
            self.nat = self.network.nat = NatModel(scenario, placement, self.network, events, mechanisms)
            # DHT servers are the nodes AutoNAT found public (the rest run in client mode and cannot be
            # found by a lookup): those are the live set lookups and formation are judged against
            self.nat.on_server = lambda i, serving: (self.live.add if serving else self.live.remove)(
                self.infos[i].peer_id.kad_id)
        elif self.access is not None:
            self.network.unreachable = self.access.unreachable
        self.nodes: list[Host | None] = [None] * n
        self.up_since = [0.0] * n
        self.started_once = [False] * n
        self.live = LiveSet()
        self.bootstrap_infos = self.infos[: scenario.nodes.bootstrap]
        self.end, self.stop_at = plan.end, plan.stop_at
        # With an adversary, lookups are judged against the honest live nodes (a lookup is for the key's
        # honest replicas: a malicious node's answer counts for nothing) and only honest nodes act.
        self.adversary = self.honest = None
        if scenario.adversary is not None:
            self.adversary = Adversary(scenario, plan.malicious, self.infos, random.Random(f"forge-{scenario.seed}"))
            self.honest = LiveSet()
            if "drop" in scenario.adversary.behaviours:
                self.network.drop = self.adversary.drops
        self.dht = DhtWorkload(scenario, self.rng_work, self.live if self.honest is None else self.honest, events)
        self.formation = Formation(scenario, plan, self.live, events)
        # With random discovery and no DHT workload nothing needs the DHT: nodes do not join it (its
        # bootstrap would otherwise be most of the traffic of a pub-sub study).
        self.join_dht = not (scenario.pubsub is not None and scenario.pubsub.discovery == "random"
                             and not self.dht.operations and not self.formation.judged)
        self.pubsub = ps = scenario.pubsub
        if ps is not None:
            self.gossip = gossip_config(ps)
            self.scores = score_config(ps)
            self.delivery = Delivery(scenario, plan, events)
            self.attacker = plan.attacker
            self.subscribed = plan.subscribed
            self.live_list: list[int] = []  # for random discovery: live nodes, any order
            self.live_pos: dict[int, int] = {}
            self.payload = bytes(ps.message_size)
            self.retired = [0, 0]  # message copies received / first receptions at nodes since stopped
            self.eclipse = None  # (the attackers' discovery, the victim publisher's) for an eclipse
            if ps.attack.kind == "eclipse":
                attackers = [self.infos[j] for j in range(n) if self.attacker[j]]
                self.eclipse = eclipse_discovery(self.infos[plan.publishers[0]], attackers, self.rng_nodes,
                                                 2 * ps.peers)
        self.mcp = McpWorkload(scenario, n, self.rng_work, events)
        self._setup_mcp()

    def _setup_mcp(self) -> None:
        """Who offers run_inference, and each node's MCP configuration (docs/mcp.md)."""
        mcp = self.scenario.mcp
        self.mcp_services: list[Any] = [None] * self.n
        if mcp is None:
            return
        from p2pnode.nodeconfig import validate_config

        self.mcp_providers = self.plan.mcp_providers
        self.mcp_config = {provider: validate_config({"mcp": node_section(self.scenario, provider)})
                           for provider in (True, False)}
        self.rng_mcp = self.plan.rng_mcp

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
        security = self.scenario.security
        limits = (InboundLimits(security.rate_limit_per_peer, security.total_rate_limit)
                  if security.rate_limit_per_peer and security.total_rate_limit else None)
        ps = self.pubsub
        if ps is None:
            return Host(self.keypairs[i], runtime, self.config, limits=limits)
        discover = (lambda: self._sample_live(2 * ps.peers)) if ps.discovery == "random" else None
        if self.eclipse is not None and (self.attacker[i] or i == self.plan.publishers[0]):
            discover = self.eclipse[0] if self.attacker[i] else self.eclipse[1]
        return Host(self.keypairs[i], runtime, self.config, self.gossip, self.scores, peers=ps.peers,
                    max_peers=ps.max_peers, router=gossip_router(ps.attack) if self.attacker[i] else GossipSub,
                    discover=discover, limits=limits)

    def start_node(self, i: int) -> None:
        node = self._host(i)
        self.nodes[i] = node
        self.network.handlers[i] = node
        self.network.refuses[i] = False
        if self.nat is None:
            self.live.add(self.infos[i].peer_id.kad_id)
        if self.adversary is not None:
            self.adversary.up(i, node)
            if not self.plan.malicious[i]:
                self.honest.add(self.infos[i].peer_id.kad_id)
        self.up_since[i] = self.env.now
        first = not self.started_once[i]
        self.started_once[i] = True
        self.events.write(self.env.now, "up", i, value=1 if first else 0)
        if self.nat is not None:
            self.nat.attach(i, node)
        bootstrap = [b for b in self.bootstrap_infos if b is not self.infos[i]] if self.join_dht else []
        node.start(bootstrap)
        if self.scenario.mcp is not None:
            self._start_mcp(i, node)
        if self.pubsub is not None:
            self.delivery.node_up(i, self.env.now)
            self.live_pos[i] = len(self.live_list)
            self.live_list.append(i)
            for topic in self.subscribed[i]:
                node.subscribe(topic, lambda message, i=i: self.delivery.delivered(
                    i, default_message_id(message), self.env.now))

    def stop_node(self, i: int, graceful: bool) -> None:
        node = self.nodes[i]
        if node is None:
            return
        node.stop()
        if self.nat is not None:
            self.nat.detach(i)
        if self.mcp_services[i] is not None:
            self.mcp_services[i].stop()
            self.mcp_services[i] = None
        self.nodes[i] = None
        self.network.handlers[i] = None
        self.network.refuses[i] = graceful
        self.network.node_down(i, graceful)
        self.live.remove(self.infos[i].peer_id.kad_id)
        if self.adversary is not None:
            self.adversary.down(i, node)
            self.honest.remove(self.infos[i].peer_id.kad_id)
        self.events.write(self.env.now, "down", i, value=1 if graceful else 0)
        if self.pubsub is not None:
            self.delivery.node_down(i, self.env.now)
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
        if self.scenario.churn is None:
            return
        churn = Churn(self.scenario.churn, self.rng_churn)
        net = self.network

        def leave(i: int) -> None:
            graceful, offline = churn.departure()
            self.stop_node(i, graceful)
            net.call_later(offline, rejoin, i)

        def rejoin(i: int) -> None:
            self.start_node(i)
            net.call_later(churn.session(), leave, i)

        for i, at in churn.first_departures(self.scenario):
            net.call_later(at, leave, i)

    # ---- workload --------------------------------------------------------------------------------

    def _schedule_operations(self) -> None:
        actions = {"lookup": self._lookup, "put": self._put, "get": self._get, "find_peer": self._find_peer,
                   "provide": self._provide, "find_providers": self._find_providers}
        for kind, operations in self.dht.operations.items():
            self._operate(operations, actions[kind])

    def _operate(self, operations: Operations, action: Callable[[Host, int], None]) -> None:
        net = self.network

        def tick() -> None:
            if self.env.now >= self.end:
                return
            acting = operations.pick(self.nodes)
            if acting is not None and not self.plan.malicious[acting[1]]:
                action(*acting)
            net.call_later(operations.gap(), tick)

        net.call_later(self.scenario.warmup + operations.gap(), tick)

    def _lookup(self, node: Host, i: int) -> None:
        key = self.dht.lookup_key()
        victims = self.plan.victim_keys
        if victims and self.rng_work.random() < self.scenario.adversary.eclipse.lookups:
            key = victims[self.rng_work.randrange(len(victims))]

        def done(result: LookupFinished) -> None:
            self.dht.lookup_done(self.env.now, i, node.peer_id.kad_id, key,
                                 (p.peer_id.kad_id for p in result.peers), result.finished - result.started,
                                 result.hops, result.requests)

        node.dht.find_node(key, done)

    def _put(self, node: Host, i: int) -> None:
        update = self.dht.update_item() if self.dht.updates else None
        if update is not None and self.nodes[update[1]] is not None:
            key, i, value = update  # a new version, written by the key's publisher
            node = self.nodes[i]
        else:
            key, value = self.dht.put_item()

        def done(result: PutFinished) -> None:
            self.dht.put_done(self.env.now, i, key, result.version, result.replicas,
                              result.finished - result.started, result.requests)

        node.dht.put_value(key, value, done)

    def _get(self, node: Host, i: int) -> None:
        item = self.dht.get_item()
        if item is None:
            return
        key, version = item

        def done(result: GetFinished) -> None:
            found = result.record.version if result.record is not None else None
            self.dht.get_done(self.env.now, i, version, found, result.finished - result.started, result.hops,
                              result.requests)

        node.dht.get_value(key, done)

    def _find_peer(self, node: Host, i: int) -> None:
        j = self.dht.find_peer_target(self.nodes, i)
        if j is None:
            return

        def done(result: PeerFound) -> None:
            self.dht.find_peer_done(self.env.now, i, result.peer is not None, result.finished - result.started,
                                    result.hops, result.requests)

        node.dht.find_peer(self.infos[j].peer_id, done)

    def _provide(self, node: Host, i: int) -> None:
        key = self.dht.provide_key()

        def done(result: PutFinished) -> None:
            self.dht.provide_done(self.env.now, i, key, result.replicas, result.finished - result.started,
                                  result.requests)

        node.dht.provide(key, done)

    def _find_providers(self, node: Host, i: int) -> None:
        key = self.dht.find_providers_key()
        if key is None:
            return

        def done(result: ProvidersFound) -> None:
            self.dht.find_providers_done(self.env.now, i, len(result.providers), result.finished - result.started,
                                         result.hops, result.requests)

        node.dht.find_providers(key, done, count=1)

    def _mcp_call(self, node: Host, i: int) -> None:
        """A local agent's tools/call on node i (experiment/mcp.py says which and writes its rows)."""
        from p2pnode.mcp import jsonrpc
        from p2pnode.mcp.server import Channel

        service = self.mcp_services[i]
        if service is None:
            return
        started = self.env.now

        def answered(message: dict) -> None:
            if "id" in message:  # not a progress notification
                self.mcp.answered(self.env.now, i, self.env.now - started, message)

        service.server.receive(jsonrpc.parse_object(self.mcp.request()), Channel(answered))

    # ---- pub-sub workload ------------------------------------------------------------------------

    def _schedule_publishing(self) -> None:
        if self.pubsub is None:
            return
        delivery, rng, net = self.delivery, self.rng_work, self.network

        def tick() -> None:
            if self.env.now >= self.end:
                return
            self._publish()
            net.call_later(delivery.gap(rng), tick)

        net.call_later(delivery.first_publish(rng), tick)

    def _publish(self) -> None:
        chosen = self.delivery.choose(self.rng_work, self.nodes)
        if chosen is None:
            return
        node, i, topic = chosen
        mid = node.publish(topic, self.payload)  # the publisher's own delivery is not measured
        record = self.delivery.published(mid, self.env.now, topic, i, len(self.payload))
        if record is not None:
            self.network.call_later(self.delivery.deadline, self.delivery.judge, record)

    # ---- measurement -----------------------------------------------------------------------------

    def _sample(self) -> None:
        now = self.env.now
        self.events.write(now, "live", value=len(self.live))
        self.events.write(now, "traffic", value=self.network.bytes, count=self.network.messages)
        if self.join_dht:  # nodes that never join the DHT have no routing table to judge
            self._check_formation(now)
        if self.pubsub is not None:
            self._sample_pubsub(now)
        if self.nat is not None:
            self.nat.sample(now)
        if self.honest is not None:  # what the honest nodes hold (a write flood fills their stores)
            held = [len(self.nodes[i].dht.records) for i in range(self.n)
                    if self.nodes[i] is not None and not self.plan.malicious[i]]
            self.events.write(now, "records", value=round(sum(held) / len(held), 3) if held else None,
                              count=max(held, default=0))
        self.events.flush()

    def _sample_pubsub(self, now: float) -> None:
        net = self.network
        self.events.write(now, "ps_data", value=net.pubsub_data_bytes, count=net.pubsub_copies)
        self.events.write(now, "ps_control", value=net.pubsub_control_bytes, count=net.pubsub_rpcs)
        received, first = self.retired
        meshes = []
        for i in self.live_list:
            router = self.nodes[i].pubsub
            received += router.received
            first += router.first_received
            if self.subscribed[i]:
                meshes.append([len(router.mesh.get(t, ())) for t in self.subscribed[i]])
        self.delivery.sample(now, first, received, meshes)

    def _check_formation(self, now: float) -> None:
        tables = []
        for i in self.formation.nodes:
            node = self.nodes[i]
            if node is not None:
                buckets = {index: bucket.entries for index, bucket in node.dht.table.buckets.items()}
                tables.append((node.peer_id.kad_id, node.bootstrapped, buckets))
        if self.formation.sample(now, tables):
            self._verify_formation()

    def _verify_formation(self) -> None:
        """Lookups for one key from every checked live node; judged when the last one returns."""
        key = self.formation.start_round(self.rng_work)
        origins = [i for i in self.formation.nodes if self.nodes[i] is not None]
        results: dict[int, set[int]] = {}

        def done(i: int, result: LookupFinished) -> None:
            results[i] = {p.peer_id.kad_id for p in result.peers}
            if len(results) == len(origins):
                self.formation.round_done(self.env.now, key, [(self.infos[j].peer_id.kad_id, results[j])
                                                              for j in origins])

        for i in origins:
            self.nodes[i].dht.find_node(key, lambda result, i=i: done(i, result))

    # ---- the run ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        scenario = self.scenario
        net = self.network
        wall_start = time.perf_counter()
        for i in range(scenario.nodes.bootstrap):
            net.call_later(0.0, self.start_node, i)
        for i, delay in join_delays(scenario, self.rng_churn):
            net.call_later(delay, self.start_node, i)
        self._schedule_churn()
        self._schedule_operations()
        if self.mcp.operations is not None:
            self._operate(self.mcp.operations, self._mcp_call)
        self._schedule_publishing()
        if self.adversary is not None:
            self.adversary.flood(scenario, self.nodes, net.call_later)

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
            "native": native.status(),  # compiled hot paths or pure Python (p2pnode/native.py)
            "messages_by_type": {kind.__name__: count for kind, count in sorted(
                net.by_type.items(), key=lambda item: item[0].__name__)},
        }

