"""What a protocol test sees of a network of real hosts, whichever runtime carries their messages.

``TestNet`` builds real ``p2pnode.host.Host`` objects (DHT, and GossipSub when configured), one per
endpoint, and drives time explicitly: nothing happens between calls of ``run``, ``advance``, ``settle``,
``complete`` and ``run_until``. A subclass supplies the runtime (``MemoryNet``: our own event heap;
``SimNet``: the simulator's ``SimNetwork``) through the ``_``-prefixed hooks at the end; both give the
same hosts for a seed, the same latencies and the same helpers:

- latency: one way ``latency`` seconds, unless an end has its own (``set_latency``; the larger wins) or
  the link has its own (``set_delay``);
- faults: ``drop(rule)`` loses every request, response, one-way message or dial (message ``None``) for
  which ``rule(src_host, dst_host, message)`` is true, until ``undrop``; ``partition`` is such a rule.
  ``crash`` stops a host silently (requests to it time out, its peers notice the dead connection after
  ``idle_timeout``); ``stop`` is a graceful exit (dials and requests are refused within a round trip,
  peers hear of it after one way);
- inspection: ``sent`` logs every request and one-way message a host handed its runtime, ``dials``
  every connect, ``requests`` counts requests.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from p2pnode.config import GossipConfig, KadConfig, ScoreConfig
from p2pnode.host import Host
from p2pnode.identity import Keypair, PeerId
from p2pnode.interface import Runtime, Timer
from p2pnode.kad.messages import PeerInfo
from p2pnode.security.puzzles import solve_dynamic, solve_static
from sim.runtime import DIAL_TIMEOUT

__all__ = ["DIAL_TIMEOUT", "DropRule", "Sent", "TestNet"]

# (sending host, receiving host or None for an endpoint without one, message or None for a dial) -> lose it
DropRule = Callable[[Host, "Host | None", Any], bool]


class Sent(NamedTuple):
    time: float
    src: Host
    dst: Host | None
    message: Any


class Latency:
    """The fixed latency model both runtimes use (``sim.runtime`` asks any model for these two)."""

    def __init__(self, default: float):
        self.default = default
        self.node: dict[int, float] = {}
        self.link: dict[frozenset[int], float] = {}

    def one_way(self, a: int, b: int) -> float:
        if self.link:
            link = self.link.get(frozenset((a, b)))
            if link is not None:
                return link
        node, default = self.node, self.default
        return max(node.get(a, default), node.get(b, default))

    def base_rtt(self, a: int, b: int) -> float:
        return 2 * self.one_way(a, b)


class _Recorder:
    """The runtime a host is handed: its network's own, with every request, message and dial logged."""

    __slots__ = ("net", "index", "inner", "rng")

    def __init__(self, net: TestNet, index: int, inner: Runtime):
        self.net = net
        self.index = index
        self.inner = inner
        self.rng = inner.rng

    def now(self) -> float:
        return self.inner.now()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.net._call_later(self.inner, delay, callback)

    def request(self, peer: PeerInfo, message: Any, timeout: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        self.net.requests += 1
        self.net._log(self.index, peer, message)
        self.inner.request(peer, message, timeout, on_response, on_failure)

    def send(self, peer: PeerInfo, message: Any) -> None:
        self.net._log(self.index, peer, message)
        self.inner.send(peer, message)

    def connect(self, peer: PeerInfo) -> None:
        self.net.dials.append((self.net.hosts[self.index], peer))
        self.inner.connect(peer)

    def disconnect(self, peer: PeerInfo) -> None:
        self.inner.disconnect(peer)


class TestNet:
    __test__ = False  # a helper, not a test class

    kind = ""  # "memory" or "simpy": the test ID suffix

    def __init__(self, latency: float = 0.01, seed: int = 0, idle_timeout: float = 30.0):
        self.rng = random.Random(seed)
        self.delays = Latency(latency)
        self.idle_timeout = idle_timeout
        self.hosts: list[Host | None] = []     # endpoint index -> the host last started there
        self.infos: list[PeerInfo] = []
        self._index: dict[bytes, int] = {}     # peer-ID bytes -> endpoint index
        self.drops: list[DropRule] = []
        self.sent: list[Sent] = []
        self.dials: list[tuple[Host, PeerInfo]] = []
        self.requests = 0

    @property
    def latency(self) -> float:
        return self.delays.default

    @property
    def time(self) -> float:
        raise NotImplementedError

    # ---- building --------------------------------------------------------------------------------

    def add_host(self, kad: KadConfig | None = None, gossip: GossipConfig | None = None,
                 score: ScoreConfig | None = None, *, start: bool = True, heartbeat: bool = True,
                 **host_args: Any) -> Host:
        """A host on a new endpoint (``host_args``: ``Host``'s ``peers``, ``max_peers``, ``router``,
        ``discover``), started unless ``start`` is false; see ``start`` for ``heartbeat``."""
        kad = kad or KadConfig()
        keypair = solve_static(self.rng.randbytes(32), kad.puzzle_static)[0]  # the seed's own key if c1 = 0
        rng = random.Random(self.rng.getrandbits(64))
        index = self._endpoint(keypair, solve_dynamic(keypair.peer_id.kad_id, kad.puzzle_dynamic)[0])
        host = Host(keypair, _Recorder(self, index, self._runtime(index, rng)), kad, gossip, score, **host_args)
        self.hosts[index] = host
        if start:
            self.start(host, heartbeat=heartbeat)
        return host

    def outsider(self, keypair: Keypair | None = None) -> PeerInfo:
        """An endpoint no host ever runs on (a peer ID known to nobody here): dials to it time out."""
        return self.infos[self._endpoint(keypair or Keypair.from_seed(self.rng.randbytes(32)))]

    def start(self, host: Host, bootstrap: Iterable[PeerInfo] = (), heartbeat: bool = True) -> None:
        """Start ``host`` (joining the DHT through ``bootstrap``). Without ``heartbeat`` its router runs
        no heartbeat of its own: the test runs each one with ``beat``."""
        self._up(self._index[host.peer_id.raw], host)
        host.start(bootstrap)
        if not heartbeat and host.pubsub is not None:
            host.pubsub._timer.cancel()
            host.pubsub._timer = None

    def populate(self, count: int, kad: KadConfig | None = None) -> list[Host]:
        """``count`` DHT hosts joining one after another, each through the first."""
        hosts = [self.add_host(kad, start=False) for _ in range(count)]
        self.start(hosts[0])
        for host in hosts[1:]:
            self.start(host, [hosts[0].info])
            self.run()
            assert host.bootstrapped
        return hosts

    def host_of(self, peer: PeerInfo | PeerId | bytes) -> Host | None:
        if isinstance(peer, PeerInfo):
            peer = peer.peer_id
        return self.hosts[self._index[peer if isinstance(peer, bytes) else peer.raw]]

    # ---- connections -----------------------------------------------------------------------------

    def connect(self, dialer: Host, listener: Host) -> None:
        """``dialer`` dials ``listener``; runs until both ends have the connection open."""
        self.connect_all([(dialer, listener)])

    def connect_all(self, pairs: Iterable[tuple[Host, Host]]) -> None:
        """Dial every (dialer, listener) pair at once; runs until every connection is open at both ends."""
        pairs = list(pairs)
        for dialer, listener in pairs:
            dialer.dial(listener.info)

        def done() -> bool:
            return all(b.info in a.connections and a.info in b.connections for a, b in pairs)

        self.run_until(done, DIAL_TIMEOUT, "the connections did not open")

    def connect_randomly(self, hosts: list[Host], dials: int) -> None:
        """Every host dials ``dials`` random others it is not yet connected to (all dials at once)."""
        linked: set[frozenset[int]] = set()
        pairs = []
        for host in hosts:
            others = [h for h in hosts if h is not host and frozenset((id(host), id(h))) not in linked
                      and h.info not in host.connections]
            for other in self.rng.sample(others, min(dials, len(others))):
                linked.add(frozenset((id(host), id(other))))
                pairs.append((host, other))
        self.connect_all(pairs)

    # ---- faults ----------------------------------------------------------------------------------

    def crash(self, host: Host) -> None:
        """Stop ``host`` silently: requests to it time out, its peers notice after ``idle_timeout``."""
        self._stop(host, graceful=False)

    def stop(self, host: Host) -> None:
        """Stop ``host`` gracefully: dials and requests to it are refused, its peers hear of it after one way."""
        self._stop(host, graceful=True)

    def _stop(self, host: Host, graceful: bool) -> None:
        host.stop()
        self._down(self._index[host.peer_id.raw], graceful)

    def drop(self, rule: DropRule) -> DropRule:
        """Lose everything for which ``rule`` is true (until ``undrop``)."""
        self.drops.append(rule)
        return rule

    def undrop(self, rule: DropRule) -> None:
        self.drops.remove(rule)

    def partition(self, side: Iterable[Host]) -> DropRule:
        """Lose everything that crosses between ``side`` and the rest of the network."""
        inside = {id(h) for h in side}
        return self.drop(lambda src, dst, message: (id(src) in inside) != (id(dst) in inside))

    def set_latency(self, host: Host, seconds: float) -> None:
        """One-way delay of every message to or from ``host`` (unless the other end's is larger)."""
        self.delays.node[self._index[host.peer_id.raw]] = seconds

    def set_delay(self, a: Host, b: Host, seconds: float) -> None:
        """One-way delay between ``a`` and ``b``, either way."""
        self.delays.link[frozenset((self._index[a.peer_id.raw], self._index[b.peer_id.raw]))] = seconds

    # ---- driving ---------------------------------------------------------------------------------

    def run(self, until: float | None = None) -> None:
        """Process events in time order: all those due by time ``until``, or (None) until no message,
        dial or timeout is pending; node timers (heartbeats, refreshes) alone do not keep it going."""
        if until is None:
            while self._network_pending():
                self._step()
            return
        while self._peek() <= until:
            self._step()
        if self.time < until:
            self._advance_clock(until)

    def advance(self, seconds: float) -> None:
        self.run(self.time + seconds)

    def settle(self) -> None:
        """Run until nothing is in flight (a quiet moment: everything sent so far has arrived or been lost)."""
        self.run()

    def run_until(self, done: Callable[[], bool], within: float, failure: str = "timed out") -> None:
        """Process events until ``done()``; fail if that takes more than ``within`` seconds."""
        deadline = self.time + within
        while not done():
            assert self._peek() <= deadline, failure
            self._step()

    def complete(self, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Start an operation that reports through ``on_done`` and run until it does; returns its event."""
        results: list[Any] = []
        operation(*args, on_done=results.append, **kwargs)
        while not results and self._network_pending():
            self._step()
        assert results, "the operation never finished"
        return results[0]

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` at time ``when`` (a timer: it does not keep ``settle`` going)."""
        self._timer(when - self.time, callback)

    def beat(self, *hosts: Host) -> None:
        """Run one heartbeat of each host's router now, without scheduling the next."""
        for host in hosts:
            router = host.pubsub
            router._heartbeat()
            router._timer.cancel()
            router._timer = None

    # ---- inspecting ------------------------------------------------------------------------------

    def sent_by(self, src: Host, dst: Host | None = None) -> list[Any]:
        """What ``src`` sent (to ``dst``), in order."""
        return [s.message for s in self.sent if s.src is src and (dst is None or s.dst is dst)]

    # ---- what a runtime supplies -------------------------------------------------------------------

    def _endpoint(self, keypair: Keypair, puzzle: bytes = b"") -> int:
        index = len(self.infos)
        info = PeerInfo(keypair.peer_id, puzzle=puzzle)
        self.infos.append(info)
        self.hosts.append(None)
        self._index[info.peer_id.raw] = index
        self._add_endpoint(info)
        return index

    def _log(self, src: int, peer: PeerInfo, message: Any) -> None:
        self.sent.append(Sent(self.time, self.hosts[src], self.hosts[self._index[peer.peer_id.raw]], message))

    def _dropped(self, src: int, dst: int, message: Any) -> bool:
        if not self.drops:
            return False
        a, b = self.hosts[src], self.hosts[dst]
        return any(rule(a, b, message) for rule in self.drops)

    def _add_endpoint(self, info: PeerInfo) -> None:
        raise NotImplementedError

    def _runtime(self, index: int, rng: random.Random) -> Runtime:
        raise NotImplementedError

    def _call_later(self, runtime: Runtime, delay: float, callback: Callable[[], None]) -> Timer:
        """A host's timer, through its runtime."""
        return runtime.call_later(delay, callback)

    def _timer(self, delay: float, callback: Callable[[], None]) -> Timer:
        """A test's own timer."""
        raise NotImplementedError

    def _up(self, index: int, host: Host) -> None:
        raise NotImplementedError

    def _down(self, index: int, graceful: bool) -> None:
        raise NotImplementedError

    def _peek(self) -> float:
        """Time of the next event (infinity when there is none)."""
        raise NotImplementedError

    def _step(self) -> None:
        raise NotImplementedError

    def _network_pending(self) -> bool:
        raise NotImplementedError

    def _advance_clock(self, until: float) -> None:
        raise NotImplementedError

