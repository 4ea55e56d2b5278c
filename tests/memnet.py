"""An in-memory network with explicit time, for driving sans-IO Kademlia nodes in tests.

In the style of aioquic's ``client_and_server()`` / ``transfer()`` test helpers: no sockets, no clock, no
SimPy. Every delivery, response, timeout and node timer is a callback on one heap ordered by
(time, sequence number), so a run is a pure function of the seed. A request is answered synchronously by
the target's ``handle_request`` when it arrives; the response travels back with the same latency.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from typing import Any

from p2pnode.config import KadConfig
from p2pnode.identity import Keypair, PeerId
from p2pnode.kad.messages import PeerInfo
from p2pnode.kad.node import KademliaNode

# (source node, destination node, message) -> True to lose the message
DropRule = Callable[[KademliaNode, KademliaNode, Any], bool]


class _Timer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]):
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Endpoint:
    """The ``p2pnode.interface.Runtime`` one node sees."""

    def __init__(self, net: MemoryNet, peer_id: PeerId, rng: random.Random):
        self.net = net
        self.peer_id = peer_id
        self.rng = rng

    def now(self) -> float:
        return self.net.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        return self.net._schedule(delay, callback, network=False)

    def request(self, peer: PeerInfo, message: Any, timeout: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        self.net._request(self.net.nodes[self.peer_id], peer, message, timeout, on_response, on_failure)

    def send(self, peer: PeerInfo, message: Any) -> None:
        self.net._send(self.net.nodes[self.peer_id], peer, message)


class MemoryNet:
    def __init__(self, latency: float = 0.01, seed: int = 0):
        self.latency = latency                      # one-way delay of every message...
        self.node_latency: dict[PeerId, float] = {}  # ...unless an end of it has its own (the larger wins)
        self.rng = random.Random(seed)
        self.time = 0.0
        self.nodes: dict[PeerId, KademliaNode] = {}
        self.drops: list[DropRule] = []
        self.requests = 0                            # requests sent, for cost and determinism checks
        self.sent: list[tuple[float, PeerId, PeerId, Any]] = []  # every request and one-way message
        self._heap: list[tuple[float, int, _Timer, bool]] = []
        self._seq = itertools.count()
        self._network_pending = 0                    # messages and timeouts still on the heap

    # ---- building --------------------------------------------------------------------------------

    def add_node(self, config: KadConfig | None = None) -> KademliaNode:
        keypair = Keypair.from_seed(self.rng.randbytes(32))
        endpoint = _Endpoint(self, keypair.peer_id, random.Random(self.rng.getrandbits(64)))
        node = KademliaNode(keypair, endpoint, config)
        self.nodes[keypair.peer_id] = node
        return node

    def set_latency(self, node: KademliaNode, latency: float) -> None:
        self.node_latency[node.peer_id] = latency

    def crash(self, node: KademliaNode) -> None:
        """Stop ``node`` silently: requests to it time out, messages to it are lost."""
        node.stop()

    def drop(self, rule: DropRule) -> None:
        """Lose every message (request, response or one-way) for which ``rule`` is true."""
        self.drops.append(rule)

    # ---- driving ---------------------------------------------------------------------------------

    def populate(self, count: int, config: KadConfig | None = None) -> list[KademliaNode]:
        """``count`` new nodes joining one after another, each bootstrapping through the first."""
        nodes = [self.add_node(config) for _ in range(count)]
        nodes[0].start()
        for node in nodes[1:]:
            node.start([nodes[0].info])
            self.run()
            assert node.bootstrapped
        return nodes

    def run(self, until: float | None = None) -> None:
        """Process events in time order: up to time ``until``, or (None) until no message or timeout is
        pending; node timers (refresh, republish, sweep) alone do not keep the run going."""
        heap = self._heap
        while heap and (heap[0][0] <= until if until is not None else self._network_pending):
            self._next()
        if until is not None:
            self.time = max(self.time, until)

    def advance(self, seconds: float) -> None:
        self.run(self.time + seconds)

    def complete(self, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Start an operation that reports through ``on_done`` and run until it does; returns its event."""
        results: list[Any] = []
        operation(*args, on_done=results.append, **kwargs)
        while not results and self._network_pending:
            self._next()
        assert results, "the operation never finished"
        return results[0]

    def _next(self) -> None:
        when, _, timer, network = heapq.heappop(self._heap)
        self._network_pending -= network
        self.time = when
        if not timer.cancelled:
            timer.callback()

    # ---- the wire --------------------------------------------------------------------------------

    def _schedule(self, delay: float, callback: Callable[[], None], network: bool = True) -> _Timer:
        timer = _Timer(callback)
        heapq.heappush(self._heap, (self.time + delay, next(self._seq), timer, network))
        self._network_pending += network
        return timer

    def _delay(self, a: KademliaNode, b: KademliaNode) -> float:
        latency = self.node_latency
        return max(latency.get(a.peer_id, self.latency), latency.get(b.peer_id, self.latency))

    def _lost(self, src: KademliaNode, dst: KademliaNode, message: Any) -> bool:
        return any(rule(src, dst, message) for rule in self.drops)

    def _request(self, src: KademliaNode, peer: PeerInfo, message: Any, timeout: float,
                 on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        self.requests += 1
        self.sent.append((self.time, src.peer_id, peer.peer_id, message))
        dst = self.nodes[peer.peer_id]
        deadline = self.time + timeout

        def time_out() -> None:
            self._schedule(deadline - self.time, lambda: on_failure("timeout"))

        def arrive() -> None:
            if not dst.running:
                time_out()
                return
            response = dst.handle_request(src.info, message)
            delay = self._delay(dst, src)
            if self._lost(dst, src, response) or self.time + delay > deadline:
                time_out()
            else:
                self._schedule(delay, lambda: on_response(response))

        if self._lost(src, dst, message):
            time_out()
        else:
            self._schedule(self._delay(src, dst), arrive)

    def _send(self, src: KademliaNode, peer: PeerInfo, message: Any) -> None:
        self.sent.append((self.time, src.peer_id, peer.peer_id, message))
        dst = self.nodes[peer.peer_id]
        if not self._lost(src, dst, message):
            self._schedule(self._delay(src, dst),
                           lambda: dst.handle_request(src.info, message) if dst.running else None)
