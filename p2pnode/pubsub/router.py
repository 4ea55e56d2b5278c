"""The GossipSub v1.1 router (``/meshsub/1.1.0``), sans-IO.

Follows libp2p/specs ``pubsub/gossipsub/gossipsub-v1.0.md`` and ``gossipsub-v1.1.md``: per-topic meshes
kept between ``d_lo`` and ``d_hi`` by a heartbeat, fanout for topics we publish to without joining,
IHAVE/IWANT gossip from the message cache, GRAFT/PRUNE with backoff and peer exchange, flood publishing,
StrictSign signatures, and (``p2pnode.pubsub.score``) peer scoring with its thresholds.

The router is told which peers it is connected to (``add_peer``/``remove_peer``; the host's connection
manager does that), receives their RPCs (``handle_rpc``) and sends through the runtime. Scores used by the
heartbeat and to gate incoming RPCs are computed at most once per peer per heartbeat, as go-libp2p's
heartbeat does; between heartbeats a peer's cached score can be up to one heartbeat old.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from p2pnode.config import GossipConfig, ScoreConfig
from p2pnode.identity import IdentityError, Keypair, PeerId, encode_public_key, verify
from p2pnode.interface import Runtime, Timer
from p2pnode.kad.messages import PeerInfo
from p2pnode.pubsub.codec import default_message_id, signing_payload
from p2pnode.pubsub.mcache import MessageCache
from p2pnode.pubsub.messages import (
    RPC,
    Control,
    Graft,
    IHave,
    IWant,
    Message,
    PeerExchange,
    Prune,
    SubOpts,
)
from p2pnode.pubsub.score import PeerScore

PROTOCOL_ID = "/meshsub/1.1.0"

Handler = Callable[[Message], None]


@lru_cache(maxsize=1 << 12)
def signature_ok(message: Message) -> bool:
    """StrictSign: signed, with ``from`` and ``seqno``, by the key inlined in the ``from`` peer ID. Cached
    per message object: in the simulator every node verifies the same object."""
    if not message.signature or not message.seqno or not message.source:
        return False
    try:
        public_key = PeerId(message.source).public_key()
    except IdentityError:
        return False
    # ``key``, when sent (py-libp2p sends it even for Ed25519), is the protobuf PublicKey of the signer
    if message.key and message.key != encode_public_key(public_key):
        return False
    return verify(public_key, message.signature, signing_payload(message))


class GossipSub:
    def __init__(
        self,
        keypair: Keypair,
        runtime: Runtime,
        config: GossipConfig | None = None,
        score: ScoreConfig | None = None,
        connect: Callable[[PeerInfo], None] | None = None,
        message_id: Callable[[Message], bytes] = default_message_id,
    ):
        self.keypair = keypair
        self.me = keypair.peer_id.raw
        self.runtime = runtime
        self.config = config = config or GossipConfig()
        self.score_config = score = score or ScoreConfig()
        self.score = PeerScore(score, runtime.now) if score.enabled else None
        self.connect = connect          # dial a peer learnt by peer exchange
        self.message_id = message_id
        self.rng = runtime.rng

        self.peers: dict[PeerInfo, bool] = {}            # connected pub-sub peers -> outbound connection
        self.topics: dict[str, set[PeerInfo]] = {}       # topic -> peers subscribed to it
        self.subscriptions: dict[str, Handler] = {}      # our topics -> application handler
        self.mesh: dict[str, set[PeerInfo]] = {}
        self.fanout: dict[str, set[PeerInfo]] = {}
        self.last_published: dict[str, float] = {}       # fanout topics -> when we last published
        self.backoff: dict[str, dict[PeerInfo, float]] = {}  # topic -> peer -> no GRAFT before
        self.seen: dict[bytes, float] = {}               # message ID -> first seen (insertion-ordered)
        self.recent: dict[bytes, tuple[float, str, set[PeerInfo]]] = {}  # P3 window: first seen, topic, senders
        self.mcache = MessageCache(config.history_length, config.history_gossip)
        self.promises: dict[bytes, dict[PeerInfo, float]] = {}  # IWANT'd message -> peer -> deadline
        self.peer_have: dict[PeerInfo, int] = {}         # IHAVEs received this heartbeat
        self.iasked: dict[PeerInfo, int] = {}            # message IDs asked for this heartbeat
        self._scores: dict[PeerInfo, float] = {}         # this heartbeat's scores
        self._clean: set[PeerInfo] = set()               # this heartbeat's peers with no penalty
        self._seqno = 0
        self._timer: Timer | None = None
        self.ticks = 0
        self.running = False
        # Counters the runtime or a simulation may read.
        self.received = 0          # message copies received (duplicates included)
        self.first_received = 0    # distinct valid messages received
        self.invalid = 0

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.running = True
        # Random sequence-number origin: a restarted node must not reuse the IDs of its earlier messages.
        self._seqno = self.rng.getrandbits(63)
        # Heartbeats of different nodes are not in step.
        self._timer = self.runtime.call_later(self.rng.uniform(0, self.config.heartbeat_interval), self._heartbeat)

    def stop(self) -> None:
        self.running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ---- connections (from the host) -------------------------------------------------------------

    def add_peer(self, peer: PeerInfo, outbound: bool, ip: str | None = None) -> None:
        """A connection to ``peer`` that speaks pub-sub: tell it our subscriptions."""
        self.peers[peer] = outbound
        if self.score is not None:
            self.score.add_peer(peer, ip)
        if self.subscriptions:
            self.runtime.send(peer, RPC(subscriptions=tuple(SubOpts(True, t) for t in self.subscriptions)))

    def remove_peer(self, peer: PeerInfo) -> None:
        if self.peers.pop(peer, None) is None:
            return
        for members in self.topics.values():
            members.discard(peer)
        for mesh in self.mesh.values():
            mesh.discard(peer)
        for fanout in self.fanout.values():
            fanout.discard(peer)
        self.peer_have.pop(peer, None)
        self.iasked.pop(peer, None)
        self._scores.pop(peer, None)
        self._clean.discard(peer)
        if self.score is not None:
            self.score.remove_peer(peer)

    # ---- the application's side ------------------------------------------------------------------

    def subscribe(self, topic: str, handler: Handler) -> None:
        new = topic not in self.subscriptions
        self.subscriptions[topic] = handler
        if new:
            self._announce(topic, True)
            self._join(topic)

    def unsubscribe(self, topic: str) -> None:
        if self.subscriptions.pop(topic, None) is None:
            return
        self._announce(topic, False)
        mesh = self.mesh.pop(topic, set())
        backoff = self.config.unsubscribe_backoff
        for peer in mesh:
            self._add_backoff(topic, peer, backoff)
            if self.score is not None:
                self.score.prune(peer, topic)
            self.runtime.send(peer, RPC(control=Control(prune=(self._prune(peer, topic, backoff),))))

    def publish(self, topic: str, data: bytes) -> bytes:
        """Sign and send a message; returns its message ID. Data over ``max_message_size`` is refused
        (ValueError): no peer would accept it."""
        if len(data) > self.config.max_message_size:
            raise ValueError(f"message of {len(data)} bytes exceeds the {self.config.max_message_size}-byte limit")
        self._seqno = (self._seqno + 1) & 0xFFFFFFFFFFFFFFFF
        unsigned = Message(self.me, data, self._seqno.to_bytes(8, "big"), topic)
        signature = self.keypair.sign(signing_payload(unsigned))
        message = Message(self.me, data, unsigned.seqno, topic, signature)
        mid = self.message_id(message)
        now = self.runtime.now()
        self.seen[mid] = now
        self.mcache.put(mid, message)
        handler = self.subscriptions.get(topic)
        if handler is not None:
            handler(message)
        members = self.topics.get(topic, ())
        if self.config.flood_publish:
            threshold = self.score_config.publish_threshold
            targets = [p for p in members if self._passes(p, threshold)]
        else:
            targets = list(self._mesh_or_fanout(topic))
        rpc = RPC(publish=(message,))
        for peer in targets:
            self.runtime.send(peer, rpc)
        return mid

    # ---- incoming --------------------------------------------------------------------------------

    def handle_rpc(self, src: PeerInfo, rpc: RPC) -> None:
        if src not in self.peers:
            return  # not (or no longer) connected
        if self.score is not None and not self._passes(src, self.score_config.graylist_threshold):
            return
        for sub in rpc.subscriptions:
            self._on_subscription(src, sub)
        for message in rpc.publish:
            self._on_message(src, message)
        if rpc.control is not None:
            self._on_control(src, rpc.control)

    def _on_subscription(self, src: PeerInfo, sub: SubOpts) -> None:
        if sub.subscribe:
            self.topics.setdefault(sub.topic, set()).add(src)
            return
        members = self.topics.get(sub.topic)
        if members is not None:
            members.discard(src)
        mesh = self.mesh.get(sub.topic)
        if mesh is not None and src in mesh:
            mesh.discard(src)
            if self.score is not None:
                self.score.prune(src, sub.topic)
        fanout = self.fanout.get(sub.topic)
        if fanout is not None:
            fanout.discard(src)

    def _on_message(self, src: PeerInfo, message: Message) -> None:
        if message.topic not in self.subscriptions:
            return  # not our topic: neither delivered nor relayed (as go-libp2p does)
        self.received += 1
        mid = self.message_id(message)
        if mid in self.seen:
            if self.promises:
                self.promises.pop(mid, None)
            if self.score is not None:
                recent = self.recent.get(mid)
                if recent is not None:
                    senders = recent[2]
                    if src not in senders:
                        senders.add(src)
                        self.score.near_first_delivery(src, recent[1], recent[0])
            return
        if len(message.data) > self.config.max_message_size or not signature_ok(message):
            self.invalid += 1
            if self.score is not None:
                self.score.invalid_delivery(src, message.topic)
            return
        now = self.runtime.now()
        self.seen[mid] = now
        self.first_received += 1
        if self.promises:
            self.promises.pop(mid, None)
        self.mcache.put(mid, message)
        topic = message.topic
        if self.score is not None:
            self.score.first_delivery(src, topic)
            self.recent[mid] = (now, topic, {src})
        handler = self.subscriptions.get(topic)
        if handler is not None:
            handler(message)
        self.forward(message, src)

    def forward(self, message: Message, src: PeerInfo) -> None:
        """Send a newly received message on to the topic's mesh (or fanout), except back to its sender
        or its publisher."""
        source = message.source
        sender = src.peer_id.raw
        rpc = RPC(publish=(message,))
        send = self.runtime.send
        for peer in self._mesh_or_fanout(message.topic):
            raw = peer.peer_id.raw
            if raw != sender and raw != source:
                send(peer, rpc)

    def _on_control(self, src: PeerInfo, control: Control) -> None:
        iwant = self._on_ihave(src, control.ihave) if control.ihave else ()
        messages = self._on_iwant(src, control.iwant) if control.iwant else ()
        prunes = self._on_graft(src, control.graft) if control.graft else ()
        for prune in control.prune:
            self._on_prune(src, prune)
        if iwant or messages or prunes:
            reply = Control(iwant=iwant, prune=prunes) if iwant or prunes else None
            self.runtime.send(src, RPC(publish=messages, control=reply))

    def _on_ihave(self, src: PeerInfo, ihaves: tuple[IHave, ...]) -> tuple[IWant, ...]:
        config = self.config
        if not self._passes(src, self.score_config.gossip_threshold):
            return ()
        have = self.peer_have.get(src, 0) + 1
        self.peer_have[src] = have
        if have > config.max_ihave_messages:
            return ()
        asked = self.iasked.get(src, 0)
        if asked >= config.max_ihave_length:
            return ()
        wanted: list[bytes] = []
        for ihave in ihaves:
            if ihave.topic not in self.mesh:
                continue
            for mid in ihave.message_ids:
                if mid not in self.seen and mid not in wanted:
                    wanted.append(mid)
        if not wanted:
            return ()
        room = config.max_ihave_length - asked
        if len(wanted) > room:
            self.rng.shuffle(wanted)
            del wanted[room:]
        self.iasked[src] = asked + len(wanted)
        # Promise tracking (v1.1): one of the asked-for messages must arrive within the follow-up time.
        promised = wanted[self.rng.randrange(len(wanted))]
        self.promises.setdefault(promised, {}).setdefault(src, self.runtime.now() + config.iwant_followup_time)
        return (IWant(tuple(wanted)),)

    def _on_iwant(self, src: PeerInfo, iwants: tuple[IWant, ...]) -> tuple[Message, ...]:
        if not self._passes(src, self.score_config.gossip_threshold):
            return ()
        out: dict[bytes, Message] = {}
        limit = self.config.gossip_retransmission
        for iwant in iwants:
            for mid in iwant.message_ids:
                message, count = self.mcache.get_for_peer(mid, src)
                if message is not None and count <= limit:
                    out[mid] = message
        return tuple(out.values())

    def _on_graft(self, src: PeerInfo, grafts: tuple[Graft, ...]) -> tuple[Prune, ...]:
        prunes: list[Prune] = []
        now = self.runtime.now()
        config = self.config
        for graft in grafts:
            topic = graft.topic
            mesh = self.mesh.get(topic)
            if mesh is None:
                # Not our topic: ignored, as the v1.1 spam protection asks (answering would let a prober
                # learn which topics we are in).
                continue
            if src in mesh:
                continue
            until = self.backoff.get(topic, {}).get(src)
            if until is not None and until > now:
                # GRAFT during backoff: penalise, twice if it comes right after our PRUNE (a flood).
                if self.score is not None:
                    self.score.add_penalty(src)
                    if now < until - config.prune_backoff + config.graft_flood_threshold:
                        self.score.add_penalty(src)
                self._add_backoff(topic, src, config.prune_backoff)
                prunes.append(self._prune(src, topic, config.prune_backoff, px=False))
                continue
            if not self._passes(src, 0.0):
                self._add_backoff(topic, src, config.prune_backoff)
                prunes.append(self._prune(src, topic, config.prune_backoff, px=False))
                continue
            if len(mesh) >= config.d_hi and not self.peers.get(src, False):
                # Full: accept only outbound peers beyond d_hi (v1.1), send the rest elsewhere.
                self._add_backoff(topic, src, config.prune_backoff)
                prunes.append(self._prune(src, topic, config.prune_backoff))
                continue
            mesh.add(src)
            if self.score is not None:
                self.score.graft(src, topic)
        return tuple(prunes)

    def _on_prune(self, src: PeerInfo, prune: Prune) -> None:
        topic = prune.topic
        mesh = self.mesh.get(topic)
        if mesh is not None and src in mesh:
            mesh.discard(src)
            if self.score is not None:
                self.score.prune(src, topic)
        self._add_backoff(topic, src, self.config.prune_backoff if prune.backoff is None else prune.backoff)
        if prune.peers and self.connect is not None:
            if self.score is not None and not self._passes(src, self.score_config.accept_px_threshold):
                return
            peers = list(prune.peers)
            self.rng.shuffle(peers)
            for px in peers[: self.config.prune_peers]:
                try:
                    info = PeerInfo(PeerId(px.peer_id))
                except IdentityError:
                    continue
                if info not in self.peers and px.peer_id != self.me:
                    self.connect(info)

    # ---- the heartbeat ---------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        if not self.running:
            return
        self._timer = self.runtime.call_later(self.config.heartbeat_interval, self._heartbeat)
        self.ticks += 1
        self._scores.clear()
        self._clean.clear()
        now = self.runtime.now()
        control: dict[PeerInfo, dict[str, list]] = {}
        for topic, mesh in self.mesh.items():
            self._maintain_mesh(topic, mesh, control)
        for topic in list(self.fanout):
            self._maintain_fanout(topic, now, control)
        for topic, mesh in self.mesh.items():
            self._emit_gossip(topic, mesh, control)
        for topic, fanout in self.fanout.items():
            self._emit_gossip(topic, fanout, control)
        send = self.runtime.send
        shared: dict[tuple[IHave, ...], RPC] = {}  # peers that get only the same IHAVEs share one RPC
        for peer, parts in control.items():
            ihave = tuple(parts.get("ihave", ()))
            if len(parts) == 1 and ihave:
                rpc = shared.get(ihave)
                if rpc is None:
                    rpc = shared[ihave] = RPC(control=Control(ihave=ihave))
            else:
                rpc = RPC(control=Control(ihave=ihave, graft=tuple(parts.get("graft", ())),
                                          prune=tuple(parts.get("prune", ()))))
            send(peer, rpc)
        self.mcache.shift()
        self.peer_have.clear()
        self.iasked.clear()
        self._apply_broken_promises(now)
        self._expire(now)

    def _maintain_mesh(self, topic: str, mesh: set[PeerInfo], control: dict) -> None:
        config = self.config
        score = self._score
        passes = self._passes
        if self.score is not None:
            for peer in [p for p in mesh if not passes(p, 0.0)]:
                self._prune_from_mesh(topic, mesh, peer, control, px=False)  # no PX below zero (v1.1)
        if len(mesh) < config.d_lo:
            for peer in self._candidates(topic, mesh, config.d - len(mesh), lambda p: passes(p, 0.0)):
                self._graft(topic, mesh, peer, control)
        elif len(mesh) > config.d_hi:
            # Keep the d_score best-scoring peers and random others up to d, with at least d_out
            # outbound peers: outbound peers are moved to the front, displacing the last kept ones.
            ranked = list(mesh)
            self.rng.shuffle(ranked)
            ranked.sort(key=self._score, reverse=True)
            rest = ranked[config.d_score:]
            self.rng.shuffle(rest)
            ranked[config.d_score:] = rest
            outbound = self.peers
            have = sum(outbound.get(p, False) for p in ranked[: config.d])
            if have < config.d_out:
                front = [p for p in ranked[: config.d] if outbound.get(p, False)]
                front += [p for p in ranked[config.d:] if outbound.get(p, False)][: config.d_out - have]
                chosen = set(front)
                ranked = front + [p for p in ranked if p not in chosen]
            for peer in ranked[config.d:]:
                self._prune_from_mesh(topic, mesh, peer, control)
        if len(mesh) >= config.d_lo:
            outbound = sum(self.peers.get(p, False) for p in mesh)
            if outbound < config.d_out:
                def wanted(p: PeerInfo) -> bool:
                    return self.peers.get(p, False) and passes(p, 0.0)
                for peer in self._candidates(topic, mesh, config.d_out - outbound, wanted):
                    self._graft(topic, mesh, peer, control)
        if self.score is not None and self.ticks % config.opportunistic_graft_ticks == 0 and len(mesh) > 1:
            scores = sorted(score(p) for p in mesh)
            median = scores[len(scores) // 2]
            if median < self.score_config.opportunistic_graft_threshold:
                for peer in self._candidates(topic, mesh, config.opportunistic_graft_peers,
                                             lambda p: score(p) > median):
                    self._graft(topic, mesh, peer, control)

    def _maintain_fanout(self, topic: str, now: float, control: dict) -> None:
        if self.last_published.get(topic, now) + self.config.fanout_ttl < now:
            del self.fanout[topic]
            self.last_published.pop(topic, None)
            return
        fanout = self.fanout[topic]
        members = self.topics.get(topic, set())
        threshold = self.score_config.publish_threshold
        for peer in [p for p in fanout if p not in members or not self._passes(p, threshold)]:
            fanout.discard(peer)
        if len(fanout) < self.config.d:
            fanout.update(self._candidates(topic, fanout, self.config.d - len(fanout),
                                           lambda p: self._passes(p, threshold), check_backoff=False))

    def _emit_gossip(self, topic: str, exclude: set[PeerInfo], control: dict) -> None:
        mids = self.mcache.gossip_ids(topic)
        if not mids:
            return
        config = self.config
        if len(mids) > config.max_ihave_length:
            self.rng.shuffle(mids)
            del mids[config.max_ihave_length:]
        # The gossip targets: max(d_lazy, gossip_factor * candidates) random peers outside the mesh whose
        # score reaches the gossip threshold. Peers are drawn in random order and scored only until
        # enough pass: the target is sized from all candidates, which differs from sizing it from those
        # that pass only when some fail, and spares scoring every peer every heartbeat.
        candidates = list(self.topics.get(topic, set()) - exclude)
        count = max(config.d_lazy, int(config.gossip_factor * len(candidates)))
        chosen = self.rng.sample(candidates, count) if len(candidates) > count else candidates
        if self.score is not None:
            threshold = self.score_config.gossip_threshold
            passed = [p for p in chosen if self._passes(p, threshold)]
            if len(passed) < len(chosen) and len(candidates) > count:
                # Replace the peers that failed with others, in random order, while any are left.
                taken = set(chosen)
                rest = [p for p in candidates if p not in taken]
                self.rng.shuffle(rest)
                for peer in rest:
                    if len(passed) == count:
                        break
                    if self._passes(peer, threshold):
                        passed.append(peer)
            chosen = passed
        ihave = IHave(topic, tuple(mids))
        for peer in chosen:
            control.setdefault(peer, {}).setdefault("ihave", []).append(ihave)

    def _apply_broken_promises(self, now: float) -> None:
        if not self.promises:
            return
        for mid in list(self.promises):
            waiting = self.promises[mid]
            for peer in [p for p, deadline in waiting.items() if deadline < now]:
                del waiting[peer]
                if self.score is not None:
                    self.score.add_penalty(peer)
            if not waiting:
                del self.promises[mid]

    def _expire(self, now: float) -> None:
        horizon = now - self.config.seen_ttl
        seen = self.seen
        while seen:
            mid = next(iter(seen))
            if seen[mid] > horizon:
                break
            del seen[mid]
        if self.recent:
            window = self.score.longest_window()
            while self.recent:
                mid = next(iter(self.recent))
                if self.recent[mid][0] >= now - window:
                    break
                del self.recent[mid]
        if self.ticks % 15 == 0:  # backoffs are checked on use; forgetting expired ones can wait
            for topic in list(self.backoff):
                peers = self.backoff[topic]
                for peer in [p for p, until in peers.items() if until <= now]:
                    del peers[peer]
                if not peers:
                    del self.backoff[topic]
            if self.score is not None:
                self.score.expire()

    # ---- helpers ---------------------------------------------------------------------------------

    def _passes(self, peer: PeerInfo, threshold: float) -> bool:
        """score(peer) >= threshold; for thresholds at or below zero a peer with no penalty passes
        without its score being computed."""
        score = self.score
        if score is None:
            return threshold <= 0
        if threshold <= 0:
            stats = score.peers.get(peer)
            if stats is None or stats.clean:
                return True
        value = self._scores.get(peer)
        if value is not None:
            return value >= threshold
        if threshold <= 0:
            if peer in self._clean:
                return True
            if score.surely_nonnegative(peer, self.runtime.now()):
                self._clean.add(peer)  # until the next heartbeat (mesh peers) or for good (others)
                return True
        return self._score(peer) >= threshold

    def _score(self, peer: PeerInfo) -> float:
        if self.score is None:
            return 0.0
        value = self._scores.get(peer)
        if value is None:
            value = self._scores[peer] = self.score.score(peer)
        return value

    def _candidates(self, topic: str, exclude: set[PeerInfo], count: int, accept: Callable[[PeerInfo], bool],
                    check_backoff: bool = True) -> list[PeerInfo]:
        """Up to ``count`` random peers of ``topic`` outside ``exclude`` that ``accept`` allows."""
        if count <= 0:
            return []
        now = self.runtime.now()
        backoff = self.backoff.get(topic, {}) if check_backoff else {}
        pool = [p for p in self.topics.get(topic, ())
                if p not in exclude and backoff.get(p, 0.0) <= now and accept(p)]
        if len(pool) > count:
            return self.rng.sample(pool, count)
        self.rng.shuffle(pool)
        return pool

    def _mesh_or_fanout(self, topic: str) -> set[PeerInfo]:
        mesh = self.mesh.get(topic)
        if mesh is not None:
            return mesh
        fanout = self.fanout.get(topic)
        if not fanout:
            threshold = self.score_config.publish_threshold
            fanout = set(self._candidates(topic, set(), self.config.d, lambda p: self._passes(p, threshold),
                                          check_backoff=False))
            if not fanout:
                return fanout
            self.fanout[topic] = fanout
        self.last_published[topic] = self.runtime.now()
        return fanout

    def _join(self, topic: str) -> None:
        if topic in self.mesh:
            return
        mesh: set[PeerInfo] = set()
        fanout = self.fanout.pop(topic, set())
        self.last_published.pop(topic, None)
        now = self.runtime.now()
        backoff = self.backoff.get(topic, {})
        for peer in fanout:
            if len(mesh) < self.config.d and backoff.get(peer, 0.0) <= now and self._passes(peer, 0.0):
                mesh.add(peer)
        mesh.update(self._candidates(topic, mesh, self.config.d - len(mesh), lambda p: self._passes(p, 0.0)))
        self.mesh[topic] = mesh
        graft = RPC(control=Control(graft=(Graft(topic),)))
        for peer in mesh:
            if self.score is not None:
                self.score.graft(peer, topic)
            self.runtime.send(peer, graft)

    def _announce(self, topic: str, subscribe: bool) -> None:
        rpc = RPC(subscriptions=(SubOpts(subscribe, topic),))
        for peer in self.peers:
            self.runtime.send(peer, rpc)

    def _graft(self, topic: str, mesh: set[PeerInfo], peer: PeerInfo, control: dict) -> None:
        mesh.add(peer)
        if self.score is not None:
            self.score.graft(peer, topic)
        control.setdefault(peer, {}).setdefault("graft", []).append(Graft(topic))

    def _prune_from_mesh(self, topic: str, mesh: set[PeerInfo], peer: PeerInfo, control: dict,
                         px: bool = True) -> None:
        mesh.discard(peer)
        if self.score is not None:
            self.score.prune(peer, topic)
        self._add_backoff(topic, peer, self.config.prune_backoff)
        control.setdefault(peer, {}).setdefault("prune", []).append(
            self._prune(peer, topic, self.config.prune_backoff, px=px))

    def _prune(self, peer: PeerInfo, topic: str, backoff: float, px: bool = True) -> Prune:
        offered: tuple[PeerExchange, ...] = ()
        if px and self.config.prune_peers > 0:
            pool = [p for p in self.topics.get(topic, ()) if p != peer and self._passes(p, 0.0)]
            if len(pool) > self.config.prune_peers:
                pool = self.rng.sample(pool, self.config.prune_peers)
            offered = tuple(PeerExchange(p.peer_id.raw) for p in pool)
        return Prune(topic, offered, int(backoff))

    def _add_backoff(self, topic: str, peer: PeerInfo, seconds: float) -> None:
        until = self.runtime.now() + seconds
        peers = self.backoff.setdefault(topic, {})
        if peers.get(peer, 0.0) < until:
            peers[peer] = until
