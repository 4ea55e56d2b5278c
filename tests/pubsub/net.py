"""An in-memory network of GossipSub routers with explicit time, for the router tests.

The pub-sub counterpart of ``tests/memnet.py``: no sockets, no clock, no SimPy. Every delivery and every
router timer is a callback on one heap ordered by (time, sequence number), so a run is a pure function of
the seed. Each link has a one-way delay (``latency`` unless ``set_delay`` gave it its own), chosen links or
messages can be lost (``drop``), and every RPC sent is logged in ``sent`` for the tests to inspect.

Routers are built unstarted (no heartbeat): a test either calls ``beat`` to run one heartbeat at a moment
it picks, or ``start`` to let heartbeats run on their own timers as they would in the simulator.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from p2pnode.config import GossipConfig, ScoreConfig
from p2pnode.identity import Keypair
from p2pnode.kad.messages import PeerInfo
from p2pnode.pubsub.codec import signing_payload
from p2pnode.pubsub.messages import RPC, Message
from p2pnode.pubsub.router import GossipSub
from tests.memnet import _Timer

# (sending router, receiving router, RPC) -> True to lose the RPC
DropRule = Callable[[GossipSub, GossipSub, RPC], bool]


class Sent(NamedTuple):
    time: float
    src: GossipSub
    dst: GossipSub
    rpc: RPC


def sign(keypair: Keypair, topic: str, data: bytes, seqno: int = 1) -> Message:
    """A StrictSign message published by ``keypair`` (as ``GossipSub.publish`` builds it)."""
    unsigned = Message(keypair.peer_id.raw, data, seqno.to_bytes(8, "big"), topic)
    return Message(unsigned.source, data, unsigned.seqno, topic, keypair.sign(signing_payload(unsigned)))


class _Endpoint:
    """The ``p2pnode.interface.Runtime`` one router sees."""

    def __init__(self, net: PubsubNet, rng: random.Random):
        self.net = net
        self.rng = rng
        self.router: GossipSub | None = None

    def now(self) -> float:
        return self.net.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        return self.net._schedule(delay, callback, network=False)

    def request(self, peer: PeerInfo, message: Any, timeout: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        raise NotImplementedError("GossipSub only sends one-way messages")

    def send(self, peer: PeerInfo, message: Any) -> None:
        self.net._send(self.router, peer, message)

    def connect(self, peer: PeerInfo) -> None:
        self.net._dial(self.router, peer)

    def disconnect(self, peer: PeerInfo) -> None:
        self.net.disconnect(self.router, self.net.router_of(peer))


class PubsubNet:
    def __init__(self, latency: float = 0.01, seed: int = 0, accept_dials: bool = False):
        self.latency = latency
        self.delays: dict[frozenset[int], float] = {}  # per-link one-way delays, by pair of router ids
        self.rng = random.Random(seed)
        self.time = 0.0
        self.routers: list[GossipSub] = []
        self.infos: dict[int, PeerInfo] = {}           # id(router) -> its one PeerInfo object
        self._by_peer: dict[bytes, GossipSub] = {}
        self.drops: list[DropRule] = []
        self.down: set[int] = set()                    # id() of crashed routers: nothing reaches them
        self.sent: list[Sent] = []
        self.dials: list[tuple[GossipSub, PeerInfo]] = []  # runtime.connect calls (peer exchange)
        self.accept_dials = accept_dials               # complete dials to routers of this network
        self._heap: list[tuple[float, int, _Timer, bool]] = []
        self._seq = itertools.count()
        self._in_flight = 0

    # ---- building --------------------------------------------------------------------------------

    def add_router(self, config: GossipConfig | None = None, score: ScoreConfig | None = None,
                   router: type[GossipSub] = GossipSub, **kwargs: Any) -> GossipSub:
        keypair = Keypair.from_seed(self.rng.randbytes(32))
        endpoint = _Endpoint(self, random.Random(self.rng.getrandbits(64)))
        node = router(keypair, endpoint, config, score, connect=endpoint.connect, **kwargs)
        endpoint.router = node
        self.routers.append(node)
        self.infos[id(node)] = PeerInfo(keypair.peer_id)
        self._by_peer[keypair.peer_id.raw] = node
        return node

    def add_routers(self, count: int, config: GossipConfig | None = None, score: ScoreConfig | None = None,
                    **kwargs: Any) -> list[GossipSub]:
        return [self.add_router(config, score, **kwargs) for _ in range(count)]

    def info(self, router: GossipSub) -> PeerInfo:
        return self.infos[id(router)]

    def router_of(self, peer: PeerInfo | bytes) -> GossipSub:
        return self._by_peer[peer if isinstance(peer, bytes) else peer.peer_id.raw]

    def connect(self, dialer: GossipSub, listener: GossipSub, dialer_ip: str | None = None,
                listener_ip: str | None = None) -> None:
        """Open a connection at once; ``dialer`` sees it as outbound. Each side gets the other's IP."""
        dialer.add_peer(self.info(listener), True, listener_ip)
        listener.add_peer(self.info(dialer), False, dialer_ip)

    def disconnect(self, a: GossipSub, b: GossipSub) -> None:
        a.remove_peer(self.info(b))
        b.remove_peer(self.info(a))

    def connect_randomly(self, routers: list[GossipSub], dials: int) -> None:
        """Every router dials ``dials`` random others it is not yet connected to."""
        for router in routers:
            others = [r for r in routers if r is not router and self.info(r) not in router.peers]
            for other in self.rng.sample(others, min(dials, len(others))):
                self.connect(router, other)

    def set_delay(self, a: GossipSub, b: GossipSub, seconds: float) -> None:
        self.delays[frozenset((id(a), id(b)))] = seconds

    def drop(self, rule: DropRule) -> DropRule:
        """Lose every RPC for which ``rule`` is true (until ``undrop``)."""
        self.drops.append(rule)
        return rule

    def undrop(self, rule: DropRule) -> None:
        self.drops.remove(rule)

    def cut(self, a: GossipSub, b: GossipSub) -> DropRule:
        """Lose everything sent between ``a`` and ``b`` in either direction."""
        return self.drop(lambda src, dst, rpc: {id(src), id(dst)} == {id(a), id(b)})

    def crash(self, router: GossipSub) -> None:
        router.stop()
        self.down.add(id(router))

    # ---- driving ---------------------------------------------------------------------------------

    def start(self, routers: Iterable[GossipSub] | None = None) -> None:
        for router in self.routers if routers is None else routers:
            router.start()

    def beat(self, *routers: GossipSub) -> None:
        """Run one heartbeat of each (unstarted) router now, without scheduling the next."""
        for router in routers:
            running = router.running
            router.running = True
            router._heartbeat()
            router._timer.cancel()
            router._timer = None
            router.running = running

    def inject(self, src: GossipSub, dst: GossipSub, rpc: RPC) -> None:
        """``src`` sends ``rpc`` to ``dst`` through the network (logged, delayed, subject to drops)."""
        self._send(src, self.info(dst), rpc)

    def run(self, until: float | None = None) -> None:
        """Process events in time order: up to time ``until``, or (None) until no RPC is in flight; router
        timers alone do not keep the run going."""
        heap = self._heap
        while heap and (heap[0][0] <= until if until is not None else self._in_flight):
            when, _, timer, network = heapq.heappop(heap)
            self._in_flight -= network
            self.time = when
            if not timer.cancelled:
                timer.callback()
        if until is not None:
            self.time = max(self.time, until)

    def advance(self, seconds: float) -> None:
        self.run(self.time + seconds)

    def settle(self) -> None:
        """Run until nothing is in flight (a quiet moment: every RPC sent so far has arrived or been lost)."""
        self.run()

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        self._schedule(when - self.time, callback, network=False)

    # ---- inspecting ------------------------------------------------------------------------------

    def sent_by(self, src: GossipSub, dst: GossipSub | None = None, since: float = 0.0) -> list[RPC]:
        return [s.rpc for s in self.sent
                if s.src is src and (dst is None or s.dst is dst) and s.time >= since]

    # ---- the wire --------------------------------------------------------------------------------

    def _schedule(self, delay: float, callback: Callable[[], None], network: bool = True) -> _Timer:
        timer = _Timer(callback)
        heapq.heappush(self._heap, (self.time + delay, next(self._seq), timer, network))
        self._in_flight += network
        return timer

    def _delay(self, a: GossipSub, b: GossipSub) -> float:
        return self.delays.get(frozenset((id(a), id(b))), self.latency)

    def _send(self, src: GossipSub, peer: PeerInfo, rpc: RPC) -> None:
        dst = self.router_of(peer)
        self.sent.append(Sent(self.time, src, dst, rpc))
        if id(dst) in self.down or any(rule(src, dst, rpc) for rule in self.drops):
            return
        info = self.info(src)
        self._schedule(self._delay(src, dst),
                       lambda: None if id(dst) in self.down else dst.handle_rpc(info, rpc))

    def _dial(self, src: GossipSub, peer: PeerInfo) -> None:
        self.dials.append((src, peer))
        dst = self._by_peer.get(peer.peer_id.raw)
        if self.accept_dials and dst is not None and id(dst) not in self.down:
            self._schedule(2 * self._delay(src, dst),
                           lambda: None if peer in src.peers else self.connect(src, dst))
