"""The same test network on the simulator's runtime: real hosts over ``sim.runtime.SimNetwork``.

Nothing here carries a message: ``SimNetwork`` and ``SimRuntime`` do, exactly as in ``simulate`` (with
``wire: exact``, so every message also round-trips through its codec), under the fixed latency model of
``tests.net.base.Latency`` (no jitter) and the test's drop rules (``SimNetwork.drop``). This module only
hosts the endpoints as ``sim.simulation`` does and steps SimPy's clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import simpy
from simpy.core import NORMAL

from p2pnode.host import Host
from p2pnode.interface import Runtime, Timer
from p2pnode.kad.messages import PeerInfo
from sim.runtime import SimNetwork, SimRuntime
from tests.net.base import TestNet


class _Env(simpy.Environment):
    """SimPy's environment, counting the events the network schedules (deliveries, timeouts, handshake
    steps) apart from timers, so that ``settle`` can stop when only timers are left."""

    def __init__(self) -> None:
        super().__init__()
        self.network_events = 0
        self.timers = False  # the event being scheduled is a timer

    def schedule(self, event: simpy.Event, priority: Any = NORMAL, delay: float = 0) -> None:
        if not self.timers:
            self.network_events += 1
            event.callbacks = [*event.callbacks, self._landed]
        super().schedule(event, priority, delay)

    def _landed(self, event: simpy.Event) -> None:
        self.network_events -= 1

    def timer(self, schedule: Callable[[], Timer]) -> Timer:
        self.timers = True
        try:
            return schedule()
        finally:
            self.timers = False


class SimNet(TestNet):
    kind = "simpy"

    def __init__(self, latency: float = 0.01, seed: int = 0, idle_timeout: float = 30.0):
        super().__init__(latency, seed, idle_timeout)
        self.env = _Env()
        self.network = SimNetwork(self.env, self.delays, 0.0, random.Random(seed), wire_exact=True,
                                  idle_timeout=idle_timeout)
        self.network.drop = self._dropped

    @property
    def time(self) -> float:
        return self.env.now

    def _peek(self) -> float:
        return self.env.peek()

    def _step(self) -> None:
        self.env.step()

    def _network_pending(self) -> bool:
        return self.env.network_events > 0

    def _advance_clock(self, until: float) -> None:
        self.env.timer(lambda: self.env.run(until=until))

    def _call_later(self, runtime: Runtime, delay: float, callback: Callable[[], None]) -> Timer:
        return self.env.timer(lambda: runtime.call_later(delay, callback))

    def _timer(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.env.timer(lambda: self.network.call_later(delay, callback))

    def _add_endpoint(self, info: PeerInfo) -> None:
        self.network.add_endpoint(info)

    def _runtime(self, index: int, rng: random.Random) -> SimRuntime:
        return SimRuntime(self.network, index, rng)

    def _up(self, index: int, host: Host) -> None:
        self.network.handlers[index] = host
        self.network.refuses[index] = False

    def _down(self, index: int, graceful: bool) -> None:
        self.network.handlers[index] = None
        self.network.refuses[index] = graceful
        self.network.node_down(index, graceful)
