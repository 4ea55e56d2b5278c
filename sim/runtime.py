"""The SimPy runtime: modelled time and links under unchanged sans-IO nodes.

Every delivery is one SimPy event whose callback does the work: no process per message. The network knows
at send time whether a request can be answered in time (target alive, nothing lost, response before the
timeout); only when it cannot is a timeout event scheduled, so an answered request costs two events.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import simpy
from simpy.core import NORMAL
from simpy.events import Event

from p2pnode.kad import codec
from p2pnode.kad.messages import RESPONSE_TYPES, PeerInfo
from sim.latency import LatencyModel


def _fire(event: _Call) -> None:
    if not event.cancelled:
        event.fn(*event.args)


class _Call(Event):
    """A scheduled callback; also the ``Timer`` handed to nodes (``cancel``)."""

    def __init__(self, env: simpy.Environment, delay: float, fn: Callable[..., None], args: tuple):
        self.env = env
        self.callbacks = [_fire]
        self._value = None
        self._ok = True
        self.fn = fn
        self.args = args
        self.cancelled = False
        env.schedule(self, NORMAL, delay)

    def cancel(self) -> None:
        self.cancelled = True


class SimNetwork:
    """Hosts the nodes' endpoints: who is up, how long messages take, what they cost."""

    def __init__(self, env: simpy.Environment, latency: LatencyModel, loss: float, rng: random.Random,
                 wire_exact: bool = False):
        self.env = env
        self.latency = latency
        self.loss = loss
        self.rng = rng
        self.wire_exact = wire_exact
        self.handlers: list[Any] = []          # node index -> object with handle_request, or None when down
        self.infos: list[PeerInfo] = []
        self.index: dict[bytes, int] = {}       # peer-ID bytes -> node index (bytes hash in C, cached)
        self.refuses: list[bool] = []          # down after a graceful exit: dials fail fast, no timeout
        self.messages = 0
        self.bytes = 0
        self.by_type: dict[type, int] = {}
        self._last_sized: Any = None
        self._last_size = 0

    def add_endpoint(self, info: PeerInfo) -> int:
        idx = len(self.infos)
        self.infos.append(info)
        self.handlers.append(None)
        self.refuses.append(False)
        self.index[info.peer_id.raw] = idx
        return idx

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> _Call:
        return _Call(self.env, delay, fn, args)

    def _charge(self, message: Any) -> Any:
        self.messages += 1
        # A lookup sends one request object to several peers in a row: size it once.
        if message is not self._last_sized:
            self._last_sized = message
            self._last_size = codec.framed_size(message)
        self.bytes += self._last_size
        kind = type(message)
        self.by_type[kind] = self.by_type.get(kind, 0) + 1
        if self.wire_exact:
            return codec.decode(codec.encode(message), response=isinstance(message, RESPONSE_TYPES))
        return message

    def _lost(self) -> bool:
        return self.loss > 0 and self.rng.random() < self.loss

    def request(self, src: int, peer: PeerInfo, message: Any, timeout: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        dst = self.index[peer.peer_id.raw]
        message = self._charge(message)
        deadline = self.env.now + timeout
        if self.handlers[dst] is None:
            if self.refuses[dst]:
                _Call(self.env, self.latency.base_rtt(src, dst), on_failure, ("refused",))
            else:
                _Call(self.env, timeout, on_failure, ("timeout",))
            return
        if self._lost():
            _Call(self.env, timeout, on_failure, ("timeout",))
            return
        _Call(self.env, self.latency.one_way(src, dst), self._deliver_request,
              (src, dst, message, deadline, on_response, on_failure))

    def _deliver_request(self, src: int, dst: int, message: Any, deadline: float,
                         on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        handler = self.handlers[dst]
        env = self.env
        if handler is None:  # went down while the request was on its way
            _Call(env, deadline - env.now, on_failure, ("timeout",))
            return
        response = self._charge(handler.handle_request(self.infos[src], message))
        delay = self.latency.one_way(dst, src)
        if self._lost() or env.now + delay > deadline:
            _Call(env, deadline - env.now, on_failure, ("timeout",))
        else:
            _Call(env, delay, on_response, (response,))

    def send(self, src: int, peer: PeerInfo, message: Any) -> None:
        dst = self.index[peer.peer_id.raw]
        message = self._charge(message)
        if self.handlers[dst] is not None and not self._lost():
            _Call(self.env, self.latency.one_way(src, dst), self._deliver_oneway, (src, dst, message))

    def _deliver_oneway(self, src: int, dst: int, message: Any) -> None:
        handler = self.handlers[dst]
        if handler is not None:
            handler.handle_request(self.infos[src], message)


class SimRuntime:
    """The ``p2pnode.interface.Runtime`` one simulated node sees."""

    __slots__ = ("network", "index", "rng")

    def __init__(self, network: SimNetwork, index: int, rng: random.Random):
        self.network = network
        self.index = index
        self.rng = rng

    def now(self) -> float:
        return self.network.env.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Call:
        return _Call(self.network.env, delay, callback, ())

    def request(self, peer: PeerInfo, message: Any, timeout: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        self.network.request(self.index, peer, message, timeout, on_response, on_failure)

    def send(self, peer: PeerInfo, message: Any) -> None:
        self.network.send(self.index, peer, message)
