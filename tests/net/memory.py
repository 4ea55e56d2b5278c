"""The in-memory network: real hosts over our own event heap, time passed explicitly.

In the style of aioquic's ``client_and_server()`` / ``transfer()`` / ``drop()`` test helpers and h11's
``ConnectionPair``: no sockets, no clock, no SimPy. Every delivery, response, timeout, handshake step and
host timer is a callback on one heap ordered by (time, sequence number), so a run is a pure function of
the seed. It carries messages as ``p2pnode.interface`` says a runtime must:

- a request is answered synchronously by the target's ``handle_request`` when it arrives; the response
  travels back; no answer within the timeout (target down, request or response lost, or too slow) is a
  ``timeout`` failure at the deadline, and a target that left gracefully is ``refused`` after a round trip;
- a one-way message is delivered after one way, or lost silently;
- a dial completes in one round trip: the listener's ``connection_opened(dialer, False)`` after one way
  (it may refuse), the dialer's ``connection_opened(listener, True)`` (or ``dial_failed``) after the way
  back, and nothing the listener sends reaches the dialer before the dialer has the connection open. A
  dial to a crashed peer, or a lost dial, fails after ``DIAL_TIMEOUT``; to a departed one after a round
  trip. ``disconnect`` tells the other end after one way; a host that goes down has its connections
  closed at the other ends after one way (graceful) or ``idle_timeout`` (crash).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from typing import Any

from p2pnode.host import Host
from p2pnode.kad.messages import PeerInfo
from p2pnode.security.limits import RateLimited
from tests.net.base import DIAL_TIMEOUT, TestNet


class _Timer:
    __slots__ = ("callback", "args", "cancelled")

    def __init__(self, callback: Callable[..., None], args: tuple):
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Link:
    """One open connection. The dialer learns it is open only when the handshake's answer arrives."""

    __slots__ = ("dialer", "listener", "handshake")

    def __init__(self, dialer: int, listener: int):
        self.dialer = dialer
        self.listener = listener
        self.handshake: _Timer | None = None  # the dialer's "opened", while it is on its way


class _Endpoint:
    """The ``p2pnode.interface.Runtime`` of one endpoint."""

    __slots__ = ("net", "index", "rng")

    def __init__(self, net: MemoryNet, index: int, rng: random.Random):
        self.net = net
        self.index = index
        self.rng = rng

    def now(self) -> float:
        return self.net.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        return self.net._after(delay, callback, network=False)

    def request(self, peer: PeerInfo, message: Any, timeout: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        self.net._request(self.index, self.net._index[peer.peer_id.raw], message, timeout, on_response, on_failure)

    def send(self, peer: PeerInfo, message: Any) -> None:
        self.net._send(self.index, self.net._index[peer.peer_id.raw], message)

    def connect(self, peer: PeerInfo) -> None:
        self.net._connect(self.index, self.net._index[peer.peer_id.raw])

    def disconnect(self, peer: PeerInfo) -> None:
        self.net._disconnect(self.index, self.net._index[peer.peer_id.raw])


class MemoryNet(TestNet):
    kind = "memory"

    def __init__(self, latency: float = 0.01, seed: int = 0, idle_timeout: float = 30.0):
        super().__init__(latency, seed, idle_timeout)
        self._now = 0.0
        self._heap: list[tuple[float, int, _Timer, bool]] = []
        self._seq = itertools.count()
        self._in_flight = 0                      # messages, dials and timeouts still on the heap
        self.up: list[Host | None] = []          # endpoint -> its host while it runs
        self.refuses: list[bool] = []            # down after a graceful exit
        self.links: list[dict[int, _Link]] = []  # endpoint -> peer endpoint -> connection

    @property
    def time(self) -> float:
        return self._now

    # ---- the heap --------------------------------------------------------------------------------

    def _after(self, delay: float, callback: Callable[..., None], *args: Any, network: bool = True) -> _Timer:
        timer = _Timer(callback, args)
        heapq.heappush(self._heap, (self._now + delay, next(self._seq), timer, network))
        self._in_flight += network
        return timer

    def _peek(self) -> float:
        return self._heap[0][0] if self._heap else math.inf

    def _step(self) -> None:
        when, _, timer, network = heapq.heappop(self._heap)
        self._in_flight -= network
        self._now = when
        if not timer.cancelled:
            timer.callback(*timer.args)

    def _network_pending(self) -> bool:
        return self._in_flight > 0

    def _advance_clock(self, until: float) -> None:
        self._now = until

    def _timer(self, delay: float, callback: Callable[[], None]) -> _Timer:
        return self._after(delay, callback, network=False)

    # ---- endpoints -------------------------------------------------------------------------------

    def _add_endpoint(self, info: PeerInfo) -> None:
        self.up.append(None)
        self.refuses.append(False)
        self.links.append({})

    def _runtime(self, index: int, rng: random.Random) -> _Endpoint:
        return _Endpoint(self, index, rng)

    def _up(self, index: int, host: Host) -> None:
        self.up[index] = host
        self.refuses[index] = False

    def _down(self, index: int, graceful: bool) -> None:
        self.up[index] = None
        self.refuses[index] = graceful
        for peer in self.links[index]:
            del self.links[peer][index]
            self._after(self.delays.one_way(index, peer) if graceful else self.idle_timeout,
                        self._closed, peer, index)
        self.links[index].clear()

    # ---- requests and messages -------------------------------------------------------------------

    def _request(self, src: int, dst: int, message: Any, timeout: float,
                 on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        deadline = self._now + timeout
        if self.up[dst] is None and self.refuses[dst]:
            self._after(self.delays.base_rtt(src, dst), on_failure, "refused")
        elif self.up[dst] is None or self._dropped(src, dst, message):
            self._after(timeout, on_failure, "timeout")
        else:
            self._after(self.delays.one_way(src, dst), self._answer, src, dst, message, deadline,
                        on_response, on_failure)

    def _answer(self, src: int, dst: int, message: Any, deadline: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        target = self.up[dst]
        if target is None:  # went down while the request was on its way
            self._after(deadline - self._now, on_failure, "timeout")
            return
        response = target.handle_request(self.infos[src], message)
        delay = self.delays.one_way(dst, src)
        if type(response) is RateLimited:  # refused: a reset reaches the requester after the trip back
            self._after(delay, on_failure, "rate limited")
            return
        if self._now + delay > deadline or self._dropped(dst, src, response):
            self._after(deadline - self._now, on_failure, "timeout")
        else:
            self._after(delay, on_response, response)

    def _send(self, src: int, dst: int, message: Any) -> None:
        if self.up[dst] is not None and not self._dropped(src, dst, message):
            self._after(self.delays.one_way(src, dst), self._deliver, src, dst, message)

    def _deliver(self, src: int, dst: int, message: Any) -> None:
        target = self.up[dst]
        if target is None:
            return
        link = self.links[dst].get(src)
        if link is not None and link.handshake is not None and link.dialer == dst:
            # The listener's first message caught up with the end of the handshake: a transport hands
            # nothing over before the connection is up, so the dialer has it open first.
            link.handshake.cancel()
            self._opened(link)
        target.handle_request(self.infos[src], message)

    # ---- connections -----------------------------------------------------------------------------

    def _connect(self, src: int, dst: int) -> None:
        if self.up[dst] is None:
            self._after(self.delays.base_rtt(src, dst) if self.refuses[dst] else DIAL_TIMEOUT,
                        self._dial_failed, src, dst)
        elif self._dropped(src, dst, None):
            self._after(DIAL_TIMEOUT, self._dial_failed, src, dst)
        else:
            self._after(self.delays.one_way(src, dst), self._accept, src, dst)

    def _accept(self, src: int, dst: int) -> None:
        listener = self.up[dst]
        if listener is None or self.up[src] is None:
            self._after(DIAL_TIMEOUT, self._dial_failed, src, dst)
        elif not listener.connection_opened(self.infos[src], False):
            self._after(self.delays.one_way(dst, src), self._dial_failed, src, dst)
        else:
            link = self.links[src][dst] = self.links[dst][src] = _Link(src, dst)
            link.handshake = self._after(self.delays.one_way(dst, src), self._opened, link)

    def _opened(self, link: _Link) -> None:
        link.handshake = None
        dialer = self.up[link.dialer]
        if dialer is None:
            return
        if self.links[link.dialer].get(link.listener) is link:
            dialer.connection_opened(self.infos[link.listener], True)
        else:  # the listener went down during the handshake
            dialer.dial_failed(self.infos[link.listener])

    def _dial_failed(self, src: int, dst: int) -> None:
        dialer = self.up[src]
        if dialer is not None:
            dialer.dial_failed(self.infos[dst])

    def _disconnect(self, src: int, dst: int) -> None:
        link = self.links[src].pop(dst, None)
        if link is not None:
            del self.links[dst][src]
            self._after(self.delays.one_way(src, dst), self._closed, dst, src)

    def _closed(self, at: int, peer: int) -> None:
        if self.links[at].get(peer) is not None:
            return  # a new connection between the two replaced the dead one
        host = self.up[at]
        if host is not None:
            host.connection_closed(self.infos[peer])
