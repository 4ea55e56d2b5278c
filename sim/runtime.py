"""The SimPy runtime: modelled time and links under unchanged sans-IO nodes.

Every delivery is one SimPy event whose callback does the work: no process per message. The network knows
at send time whether a request can be answered in time (target alive, nothing lost, response before the
timeout); only when it cannot is a timeout event scheduled, so an answered request costs two events.
A scheduled callback (``_Call``) is a small slotted object in SimPy's own queue rather than a full
``simpy.Event``; ``SimClock``, the simulator's environment, runs such entries directly instead of through
``Environment.step`` (any other SimPy event still works as SimPy runs it; the order is SimPy's).

Connections: a dial completes in one round trip (the listener accepts after one way, the dialer learns
after the answer's way back). When a node goes down its peers hear of it after one way if it left
gracefully, or after ``idle_timeout`` if it crashed (the transport's idle timeout notices the silence).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import NORMAL, URGENT, EventPriority
from simpy.events import Event

from p2pnode.framing import varint_len
from p2pnode.kad.messages import PeerInfo
from p2pnode.security.limits import RateLimited
from p2pnode.wire import BY_TYPE, PUBSUB, WireProtocol, round_trip
from sim.latency import LatencyModel

DIAL_TIMEOUT = 5.0  # seconds before a dial to a silent (crashed) peer fails
_UNSIZED = object()


def _fire(event: _Call) -> None:
    if not event.cancelled:
        event.fn(*event.args)


_FIRE = (_fire,)  # every _Call's callbacks: one shared tuple, no list per call


class _Call:
    """A scheduled callback; also the ``Timer`` handed to nodes (``cancel``).

    It sits in SimPy's queue as an event would, and has what ``Environment.step`` reads of one
    (``callbacks``, ``_ok``), so any SimPy environment runs it; ``SimClock`` calls ``fn`` directly."""

    __slots__ = ("fn", "args", "cancelled", "callbacks")
    _ok = True

    def __init__(self, env: simpy.Environment, delay: float, fn: Callable[..., None], args: tuple):
        self.fn = fn
        self.args = args
        self.cancelled = False
        self.callbacks: Any = _FIRE  # SimPy's step sets it to None, a test's environment to a list
        if env.__class__ is SimClock:  # straight into its queue, as its schedule() would: one call less
            heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), self))  # type: ignore[misc]
        else:
            env.schedule(self, NORMAL, delay)  # type: ignore[arg-type]

    def cancel(self) -> None:
        self.cancelled = True


class SimClock(simpy.Environment):
    """SimPy's environment with a run loop that calls ``_Call`` entries straight from the queue, one
    Python call per event instead of ``step`` and ``_fire``. Entries are taken in SimPy's order (time,
    priority, insertion) and ``run(until=t)`` stops where SimPy's would, so a run is the same either way."""

    def run(self, until: Any = None) -> Any:
        if until is None or isinstance(until, Event):
            return super().run(until)
        at = float(until)
        if at <= self._now:
            raise ValueError(f"until ({at}) must be greater than the current simulation time")
        stop = Event(self)
        self.schedule(stop, URGENT, at - self._now)  # before every regular entry due at ``at``, as in SimPy
        queue = self._queue
        call = _Call
        while True:
            self._now, _, _, event = heappop(queue)  # never empty: ``stop`` is in it
            if event.__class__ is call:
                if not event.cancelled:
                    event.fn(*event.args)
            elif event is stop:
                return None
            else:  # any other SimPy event: back to the front of the queue, for SimPy's own step
                heappush(queue, (self._now, EventPriority(-1), -1, event))
                self.step()


class Meter:
    """What the messages of one type cost: their count, framed bytes, and of those the payload bytes and
    payloads (as ``p2pnode.wire``'s ``measure`` says: for pub-sub RPCs, the published-message copies)."""

    __slots__ = ("protocol", "messages", "bytes", "payload_bytes", "payloads")

    def __init__(self, protocol: WireProtocol) -> None:
        self.protocol = protocol
        self.messages = self.bytes = self.payload_bytes = self.payloads = 0


class SimNetwork:
    """Hosts the nodes' endpoints: who is up, how long messages take, what they cost."""

    def __init__(self, env: simpy.Environment, latency: LatencyModel, loss: float, rng: random.Random,
                 wire_exact: bool = False, idle_timeout: float = 30.0):
        self.env = env
        self.latency = latency
        self.loss = loss
        # A network graph's loss along each pair of regions' path, with the model's message loss; None: `loss`
        # alone (also for a latency model that has no paths, such as the test network's).
        path = getattr(latency, "path_loss", None)
        self.pair_loss = None if path is None else [[1 - (1 - loss) * (1 - p) for p in row] for row in path]
        self.rng = rng
        self.wire_exact = wire_exact
        self.handlers: list[Any] = []          # node index -> object with handle_request, or None when down
        self.infos: list[PeerInfo] = []
        self.index: dict[bytes, int] = {}       # peer-ID bytes -> node index (bytes hash in C, cached)
        self.refuses: list[bool] = []          # down after a graceful exit: dials fail fast, no timeout
        self.unreachable: list[bool] | None = None  # behind DS-Lite/464XLAT: dials in time out (sim/access.py)
        self.nat: Any = None  # sim.nat.NatModel: which messages get through NATs, and over which path
        self.conns: list[dict[int, None]] = []  # open connections per node (ordered, for determinism)
        self.handshakes: dict[tuple[int, int], _Call] = {}  # (dialer, listener) -> the dialer's "opened"
        self.idle_timeout = idle_timeout
        # Tests lose chosen messages: drop(src, dst, message) is true to lose it (message None: a dial).
        self.drop: Callable[[int, int, Any], bool] | None = None
        self.meters: dict[type, Meter] = {}  # by message type, in the order first sent
        self._last_sized: Any = _UNSIZED
        self._last_charge: tuple[Any, int, int, int] = (None, 0, 0, 0)  # meter, size, payload, payloads

    def add_endpoint(self, info: PeerInfo) -> int:
        idx = len(self.infos)
        self.infos.append(info)
        self.handlers.append(None)
        self.refuses.append(False)
        self.conns.append({})
        self.index[info.peer_id.raw] = idx
        return idx

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> _Call:
        return _Call(self.env, delay, fn, args)

    def _size(self) -> int:
        """Bytes on the wire of the message ``charge`` counted last."""
        return self._last_charge[1]

    def charge(self, message: Any) -> Any:
        """Count ``message`` in its type's meter; with ``wire: exact``, what its receiver gets of its wire form."""
        # A lookup sends one request object to several peers in a row, a router one message to its whole
        # mesh: size it once.
        if message is not self._last_sized:
            self._last_sized = message
            kind = type(message)
            meter = self.meters.get(kind)
            if meter is None:
                meter = self.meters[kind] = Meter(BY_TYPE[kind])
            payload, other, payloads = meter.protocol.measure(message)
            body = payload + other
            self._last_charge = (meter, body + varint_len(body), payload, payloads)
        meter, size, payload, payloads = self._last_charge
        meter.messages += 1
        meter.bytes += size
        meter.payload_bytes += payload
        meter.payloads += payloads
        if self.wire_exact:
            return round_trip(message)
        return message

    @property
    def messages(self) -> int:
        return sum(m.messages for m in self.meters.values())

    @property
    def bytes(self) -> int:
        return sum(m.bytes for m in self.meters.values())

    @property
    def by_type(self) -> dict[type, int]:
        return {kind: m.messages for kind, m in self.meters.items()}

    def _pubsub(self, field: str) -> int:
        return sum(getattr(m, field) for m in self.meters.values() if m.protocol is PUBSUB)

    # Pub-sub traffic as the results report it: bytes of published-message copies and of the rest of the
    # RPCs, the copies, and the RPCs.

    @property
    def pubsub_data_bytes(self) -> int:
        return self._pubsub("payload_bytes")

    @property
    def pubsub_control_bytes(self) -> int:
        return self._pubsub("bytes") - self._pubsub("payload_bytes")

    @property
    def pubsub_copies(self) -> int:
        return self._pubsub("payloads")

    @property
    def pubsub_rpcs(self) -> int:
        return self._pubsub("messages")

    def _lost(self, src: int, dst: int, message: Any) -> bool:
        if self.pair_loss is None:
            if self.loss > 0 and self.rng.random() < self.loss:
                return True
        else:
            regions = self.latency.node_regions
            loss = self.pair_loss[regions[src]][regions[dst]]
            if loss > 0 and self.rng.random() < loss:
                return True
        return self.drop is not None and self.drop(src, dst, message)

    def request(self, src: int, peer: PeerInfo, message: Any, timeout: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        dst = self.index[peer.peer_id.raw]
        message = self.charge(message)
        deadline = self.env.now + timeout
        if self.handlers[dst] is None:
            if self.refuses[dst]:
                _Call(self.env, self.latency.base_rtt(src, dst), on_failure, ("refused",))
            else:
                _Call(self.env, timeout, on_failure, ("timeout",))
            return
        delay: float | None = (
            self.latency.one_way(src, dst) if self.nat is None else self.nat.one_way(src, dst, self._size()))
        if delay is None or self._lost(src, dst, message):
            _Call(self.env, timeout, on_failure, ("timeout",))
            return
        _Call(self.env, delay, self._deliver_request, (src, dst, message, deadline, on_response, on_failure))

    def _deliver_request(self, src: int, dst: int, message: Any, deadline: float,
                         on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        handler = self.handlers[dst]
        env = self.env
        if handler is None:  # went down while the request was on its way
            _Call(env, deadline - env.now, on_failure, ("timeout",))
            return
        response = handler.handle_request(self.infos[src], message)
        delay: float | None
        if type(response) is RateLimited:  # refused: the requester sees a reset after the trip back
            delay = self.latency.one_way(dst, src) if self.nat is None else self.nat.back(src, dst, 0)
            _Call(env, delay if delay is not None else deadline - env.now, on_failure, ("rate limited",))
            return
        response = self.charge(response)
        delay = self.latency.one_way(dst, src) if self.nat is None else self.nat.back(src, dst, self._size())
        if delay is None or self._lost(dst, src, response) or env.now + delay > deadline:
            _Call(env, deadline - env.now, on_failure, ("timeout",))
        else:
            _Call(env, delay, on_response, (response,))

    def send(self, src: int, peer: PeerInfo, message: Any) -> None:
        dst = self.index[peer.peer_id.raw]
        message = self.charge(message)
        if self.handlers[dst] is not None and not self._lost(src, dst, message):
            delay: float | None = (
                self.latency.one_way(src, dst) if self.nat is None else self.nat.one_way(src, dst, self._size()))
            if delay is not None:
                _Call(self.env, delay, self._deliver_oneway, (src, dst, message))

    def _deliver_oneway(self, src: int, dst: int, message: Any) -> None:
        handler = self.handlers[dst]
        if handler is not None:
            if self.handshakes and (dst, src) in self.handshakes:
                # The listener's first message overtook the end of the dialer's handshake (jitter); a
                # transport hands nothing over before the connection is up, so the dialer learns of it now.
                self.handshakes.pop((dst, src)).cancel()
                self._opened(dst, src)
            handler.handle_request(self.infos[src], message)

    # ---- connections -----------------------------------------------------------------------------

    def connect(self, src: int, peer: PeerInfo) -> None:
        dst = self.index[peer.peer_id.raw]
        if self.handlers[dst] is None:
            delay = self.latency.base_rtt(src, dst) if self.refuses[dst] else DIAL_TIMEOUT
            _Call(self.env, delay, self._dial_failed, (src, dst))
        elif self.unreachable is not None and self.unreachable[dst]:
            _Call(self.env, DIAL_TIMEOUT, self._dial_failed, (src, dst))
        elif not self._lost(src, dst, None):
            way: float | None = self.latency.one_way(src, dst) if self.nat is None else self.nat.one_way(src, dst, 0)
            if way is None:  # behind a NAT that keeps it out, with no relay to reach it through
                _Call(self.env, DIAL_TIMEOUT, self._dial_failed, (src, dst))
            else:
                _Call(self.env, way, self._accept, (src, dst))
        else:
            _Call(self.env, DIAL_TIMEOUT, self._dial_failed, (src, dst))

    def _accept(self, src: int, dst: int) -> None:
        listener = self.handlers[dst]
        if listener is None or self.handlers[src] is None:
            _Call(self.env, DIAL_TIMEOUT, self._dial_failed, (src, dst))
            return
        if not listener.connection_opened(self.infos[src], False):
            _Call(self.env, self.latency.one_way(dst, src), self._dial_failed, (src, dst))
            return
        self.conns[src][dst] = None
        self.conns[dst][src] = None
        delay: float | None = self.latency.one_way(dst, src) if self.nat is None else self.nat.back(src, dst, 0)
        self.handshakes[src, dst] = _Call(self.env, delay or DIAL_TIMEOUT, self._opened, (src, dst))

    def _opened(self, src: int, dst: int) -> None:
        self.handshakes.pop((src, dst), None)
        dialer = self.handlers[src]
        if dialer is None:
            return
        if dst in self.conns[src]:
            dialer.connection_opened(self.infos[dst], True)
        else:  # the listener went down during the handshake
            dialer.dial_failed(self.infos[dst])

    def _dial_failed(self, src: int, dst: int) -> None:
        dialer = self.handlers[src]
        if dialer is not None:
            dialer.dial_failed(self.infos[dst])

    def disconnect(self, src: int, peer: PeerInfo) -> None:
        dst = self.index[peer.peer_id.raw]
        if dst not in self.conns[src]:
            return
        del self.conns[src][dst]
        self.conns[dst].pop(src, None)
        _Call(self.env, self.latency.one_way(src, dst), self._closed, (dst, src))

    def hold_connection(self, a: int, b: int) -> None:
        """A connection the hosts keep without the pub-sub layer's knowing (a relay reservation's): it ends
        like any other, and each side hears of it through ``connection_closed``."""
        if self.handlers[a] is not None and self.handlers[b] is not None:
            self.conns[a][b] = None
            self.conns[b][a] = None

    def break_connection(self, a: int, b: int) -> None:
        """The connection between ``a`` and ``b`` is reset (a relay's circuit hit its limit): both hear of it."""
        if b in self.conns[a]:
            del self.conns[a][b]
            self.conns[b].pop(a, None)
            _Call(self.env, self.latency.one_way(a, b), self._closed, (b, a))
            _Call(self.env, self.latency.one_way(a, b), self._closed, (a, b))

    def node_down(self, i: int, graceful: bool) -> None:
        """``i`` stopped: its connections end; each peer hears of it after one way, or after the idle
        timeout if ``i`` crashed."""
        for j in self.conns[i]:
            self.conns[j].pop(i, None)
            delay = self.latency.one_way(i, j) if graceful else self.idle_timeout
            _Call(self.env, delay, self._closed, (j, i))
        self.conns[i].clear()

    def _closed(self, j: int, i: int) -> None:
        if i in self.conns[j]:
            return  # ``i`` came back and connected again: the new connection replaced the dead one
        handler = self.handlers[j]
        if handler is not None:
            handler.connection_closed(self.infos[i])


class SimRuntime:
    """The ``p2pnode.interface.Runtime`` one simulated node sees."""

    __slots__ = ("network", "index", "rng", "send")

    def __init__(self, network: SimNetwork, index: int, rng: random.Random):
        self.network = network
        self.index = index
        self.rng = rng
        # send(peer, message): bound straight to the network, one Python call less per message sent.
        self.send: Callable[[PeerInfo, Any], None] = partial(network.send, index)

    def now(self) -> float:
        return self.network.env.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Call:
        return _Call(self.network.env, delay, callback, ())

    def request(self, peer: PeerInfo, message: Any, timeout: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        self.network.request(self.index, peer, message, timeout, on_response, on_failure)

    def connect(self, peer: PeerInfo) -> None:
        self.network.connect(self.index, peer)

    def disconnect(self, peer: PeerInfo) -> None:
        self.network.disconnect(self.index, peer)
