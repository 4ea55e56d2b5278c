"""Peer scoring of gossipsub v1.1 ("Peer Scoring" in gossipsub-v1.1.md).

score(p) = TopicCap(sum over topics t of t.weight * (w1 P1 + w2 P2 + w3 P3 + w3b P3b + w4 P4)) + w5 P5 + w6 P6 + w7 P7

- P1 time in mesh (quanta, capped); P2 first message deliveries (decaying, capped); P3 mesh message delivery
  deficit, squared, once the peer has been in the mesh for the activation time; P3b sticky mesh failure
  penalty (the P3 deficit at the moment the peer left the mesh); P4 invalid messages, squared.
- P5 application-specific; P6 IP colocation, (peers sharing an IP - threshold)^2; P7 behaviour penalty
  (broken IWANT promises, GRAFT during backoff), (penalty - threshold)^2.

Only topics with score parameters count (gossipsub v1.1: "if a topic is not configured, a peer's behavior
in that topic will not contribute to their score"): no counters are kept for the others, as go-libp2p
keeps none, so P1-P4 are zero there whatever happens.

Counters decay once per ``decay_interval`` and drop to zero below ``decay_to_zero``. Decay is applied
lazily, when a peer's counters are next read or changed, as ``decay ** intervals elapsed``: the same
values a sweep over every peer each interval would produce, without touching idle peers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p2pnode.config import ScoreConfig, TopicScoreParams


class TopicStats:
    __slots__ = ("in_mesh", "graft_time", "first_deliveries", "mesh_deliveries", "mesh_failure", "invalid")

    def __init__(self) -> None:
        self.in_mesh = False
        self.graft_time = 0.0
        self.first_deliveries = 0.0
        self.mesh_deliveries = 0.0
        self.mesh_failure = 0.0
        self.invalid = 0.0


class PeerStats:
    __slots__ = ("topics", "connected", "expires", "behaviour_penalty", "ip", "app_score", "decayed_at", "clean")

    def __init__(self, ip: str | None, tick: int) -> None:
        self.topics: dict[str, TopicStats] = {}
        self.connected = True
        self.expires = 0.0
        self.behaviour_penalty = 0.0
        self.ip = ip
        self.app_score = 0.0
        self.decayed_at = tick
        # No negative component, and none can appear with time alone (not in any mesh): stays true until
        # an event that may add a penalty.
        self.clean = False


class PeerScore:
    """Score bookkeeping for one router. ``now`` is the runtime's clock."""

    def __init__(self, config: ScoreConfig, now: Callable[[], float]):
        self.config = config
        self.now = now
        self.peers: dict[Any, PeerStats] = {}
        self.by_ip: dict[str, set[Any]] = {}
        self._params: dict[str, TopicScoreParams | None] = {}

    def params(self, topic: str) -> TopicScoreParams | None:
        """The topic's score parameters; None for a topic that is not scored."""
        try:
            return self._params[topic]
        except KeyError:
            params = self._params[topic] = self.config.topic(topic)
            return params

    def longest_window(self) -> float:
        """The longest P3 delivery window of the scored topics seen so far."""
        return max((p.mesh_message_deliveries_window for p in self._params.values() if p is not None), default=0.0)

    # ---- membership ------------------------------------------------------------------------------

    def add_peer(self, peer: Any, ip: str | None = None) -> None:
        stats = self.peers.get(peer)
        if stats is None:
            stats = self.peers[peer] = PeerStats(ip, self._tick())
        else:  # reconnected within the retention time: the old counters still apply
            self._decay(stats, self._tick())
            stats.connected = True
        if ip is not None:
            stats.ip = ip
            sharing = self.by_ip.setdefault(ip, set())
            sharing.add(peer)
            for other in sharing:  # P6 of every peer on this IP may have changed
                self.peers[other].clean = False

    def remove_peer(self, peer: Any) -> None:
        """A disconnected peer's counters are kept for ``retain_score`` if its score is not positive, so
        reconnecting does not wash a bad score away; its mesh stints end as if it had been pruned."""
        stats = self.peers.get(peer)
        if stats is None:
            return
        if stats.ip is not None:
            sharing = self.by_ip.get(stats.ip)
            if sharing is not None:
                sharing.discard(peer)
                if not sharing:
                    del self.by_ip[stats.ip]
        if self.score(peer) > 0:
            del self.peers[peer]
            return
        now = self.now()
        for topic, ts in stats.topics.items():
            if ts.in_mesh:
                self._leave_mesh(topic, ts, now)
            ts.first_deliveries = 0.0
        stats.connected = False
        stats.expires = now + self.config.retain_score

    def expire(self) -> None:
        """Forget disconnected peers whose retention time has passed (called every heartbeat)."""
        now = self.now()
        gone = [p for p, s in self.peers.items() if not s.connected and s.expires <= now]
        for peer in gone:
            del self.peers[peer]

    # ---- events ----------------------------------------------------------------------------------

    def graft(self, peer: Any, topic: str) -> None:
        ts = self._topic(peer, topic)
        if ts is not None:
            ts.in_mesh = True
            ts.graft_time = self.now()
            self.peers[peer].clean = False

    def prune(self, peer: Any, topic: str) -> None:
        ts = self._topic(peer, topic)
        if ts is not None and ts.in_mesh:
            self._leave_mesh(topic, ts, self.now())

    def first_delivery(self, peer: Any, topic: str) -> None:
        ts = self._topic(peer, topic)
        if ts is None:
            return
        params = self.params(topic)
        ts.first_deliveries = min(ts.first_deliveries + 1, params.first_message_deliveries_cap)
        if ts.in_mesh:
            ts.mesh_deliveries = min(ts.mesh_deliveries + 1, params.mesh_message_deliveries_cap)

    def near_first_delivery(self, peer: Any, topic: str, first_seen: float) -> None:
        """A copy of a message first seen at ``first_seen``: it counts for a mesh peer (P3) if it came
        within the topic's delivery window."""
        stats = self.peers.get(peer)
        if stats is None:
            return
        ts = stats.topics.get(topic)
        if ts is None or not ts.in_mesh:
            return
        p = self.params(topic)
        now = self.now()
        if now - first_seen > p.mesh_message_deliveries_window:
            return
        tick = int(now / self.config.decay_interval)
        if tick != stats.decayed_at:
            self._decay(stats, tick)
        ts.mesh_deliveries = min(ts.mesh_deliveries + 1, p.mesh_message_deliveries_cap)

    def invalid_delivery(self, peer: Any, topic: str) -> None:
        ts = self._topic(peer, topic)
        if ts is not None:
            ts.invalid += 1
            self.peers[peer].clean = False

    def add_penalty(self, peer: Any, count: float = 1.0) -> None:
        stats = self._stats(peer)
        if stats is not None:
            stats.behaviour_penalty += count
            stats.clean = False

    def set_app_score(self, peer: Any, value: float) -> None:
        stats = self._stats(peer)
        if stats is not None:
            stats.app_score = value
            stats.clean = False

    # ---- the score -------------------------------------------------------------------------------

    def score(self, peer: Any) -> float:
        stats = self.peers.get(peer)
        if stats is None:
            return 0.0
        now = self.now()
        tick = int(now / self.config.decay_interval)
        if tick != stats.decayed_at:
            self._decay(stats, tick)
        config = self.config
        total = 0.0
        for topic, ts in stats.topics.items():
            p = self._params[topic]  # stats exist only for scored topics, whose parameters are cached
            value = ts.first_deliveries * p.first_message_deliveries_weight
            if ts.in_mesh:
                in_mesh = now - ts.graft_time
                # Whole quanta, as go-libp2p counts them (Duration division).
                value += min(in_mesh // p.time_in_mesh_quantum, p.time_in_mesh_cap) * p.time_in_mesh_weight
                if in_mesh >= p.mesh_message_deliveries_activation:
                    deficit = p.mesh_message_deliveries_threshold - ts.mesh_deliveries
                    if deficit > 0:
                        value += deficit * deficit * p.mesh_message_deliveries_weight
            if ts.mesh_failure:
                value += ts.mesh_failure * p.mesh_failure_penalty_weight
            if ts.invalid:
                value += ts.invalid * ts.invalid * p.invalid_message_deliveries_weight
            total += value * p.topic_weight
        if 0 < config.topic_score_cap < total:
            total = config.topic_score_cap
        if stats.app_score:
            total += stats.app_score * config.app_specific_weight
        if stats.ip is not None:
            excess = len(self.by_ip.get(stats.ip, ())) - config.ip_colocation_factor_threshold
            if excess > 0:
                total += excess * excess * config.ip_colocation_factor_weight
        if stats.behaviour_penalty:
            excess = stats.behaviour_penalty - config.behaviour_penalty_threshold
            if excess > 0:
                total += excess * excess * config.behaviour_penalty_weight
        return total

    def surely_nonnegative(self, peer: Any, now: float) -> bool:
        """True when none of the peer's negative components (P3, P3b, P4, P5 < 0, P6, P7) can be non-zero,
        so its score is at least 0 without computing it. Undecayed counters only overstate penalties, so
        a False is merely "compute it"; the sign rules of the weights (checked by the config) make a True
        exact."""
        stats = self.peers.get(peer)
        if stats is None or stats.clean:
            return True
        config = self.config
        if stats.behaviour_penalty > config.behaviour_penalty_threshold or stats.app_score < 0:
            return False
        if stats.ip is not None and len(self.by_ip.get(stats.ip, ())) > config.ip_colocation_factor_threshold:
            return False
        intervals = int(now / config.decay_interval) - stats.decayed_at
        meshed = False
        for topic, ts in stats.topics.items():
            if ts.mesh_failure or ts.invalid:
                return False
            if ts.in_mesh:
                meshed = True
                p = self._params[topic]
                if now - ts.graft_time >= p.mesh_message_deliveries_activation:
                    # P3 applies: is the decayed delivery count still at the threshold?
                    deliveries = ts.mesh_deliveries * p.mesh_message_deliveries_decay**intervals
                    if deliveries < config.decay_to_zero or deliveries < p.mesh_message_deliveries_threshold:
                        return False
        # Penalties only decay, so without one (and outside every mesh) the peer stays clean.
        stats.clean = not meshed and not stats.behaviour_penalty and stats.app_score >= 0
        return True

    # ---- internals -------------------------------------------------------------------------------

    def _stats(self, peer: Any) -> PeerStats | None:
        stats = self.peers.get(peer)
        if stats is not None:
            tick = int(self.now() / self.config.decay_interval)
            if tick != stats.decayed_at:
                self._decay(stats, tick)
        return stats

    def _tick(self) -> int:
        return int(self.now() / self.config.decay_interval)

    def _topic(self, peer: Any, topic: str) -> TopicStats | None:
        """The peer's counters for ``topic``, created on first use; None for an unknown peer or a topic
        that is not scored."""
        if self.params(topic) is None:
            return None
        stats = self._stats(peer)
        if stats is None:
            return None
        ts = stats.topics.get(topic)
        if ts is None:
            ts = stats.topics[topic] = TopicStats()
        return ts

    def _leave_mesh(self, topic: str, ts: TopicStats, now: float) -> None:
        p = self.params(topic)
        if now - ts.graft_time >= p.mesh_message_deliveries_activation:
            deficit = p.mesh_message_deliveries_threshold - ts.mesh_deliveries
            if deficit > 0:
                ts.mesh_failure += deficit * deficit
        ts.in_mesh = False

    def _decay(self, stats: PeerStats, tick: int) -> None:
        n = tick - stats.decayed_at
        stats.decayed_at = tick
        if n <= 0:
            return
        floor = self.config.decay_to_zero
        for topic, ts in stats.topics.items():
            p = self.params(topic)
            if ts.first_deliveries:
                ts.first_deliveries = _decayed(ts.first_deliveries, p.first_message_deliveries_decay, n, floor)
            if ts.mesh_deliveries:
                ts.mesh_deliveries = _decayed(ts.mesh_deliveries, p.mesh_message_deliveries_decay, n, floor)
            if ts.mesh_failure:
                ts.mesh_failure = _decayed(ts.mesh_failure, p.mesh_failure_penalty_decay, n, floor)
            if ts.invalid:
                ts.invalid = _decayed(ts.invalid, p.invalid_message_deliveries_decay, n, floor)
        if stats.behaviour_penalty:
            stats.behaviour_penalty = _decayed(stats.behaviour_penalty, self.config.behaviour_penalty_decay, n, floor)


def _decayed(value: float, decay: float, intervals: int, floor: float) -> float:
    value *= decay**intervals
    return 0.0 if value < floor else value
