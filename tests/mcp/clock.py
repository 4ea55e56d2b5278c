"""A runtime with explicit time for driving sans-IO MCP code in tests: timers fire when ``advance`` passes them."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable


class _Timer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    def __init__(self, seed: int = 0):
        self.time = 0.0
        self.rng = random.Random(seed)
        self._heap: list = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer()
        heapq.heappush(self._heap, (self.time + delay, next(self._order), timer, callback))
        return timer

    def advance(self, seconds: float) -> None:
        until = self.time + seconds
        while self._heap and self._heap[0][0] <= until:
            when, _, timer, callback = heapq.heappop(self._heap)
            self.time = when
            if not timer.cancelled:
                callback()
        self.time = until
