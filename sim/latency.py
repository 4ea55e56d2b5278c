"""The simulator's message delay: region-to-region RTT (experiment.latency), per-node access latency, jitter;
and, for a network graph, the loss along each pair of regions' path."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np


class LatencyModel:
    """One-way delay of a message from node a to node b, in seconds.

    delay = (RTT(region a, region b) / 2 + access(a) + access(b)) × max(0.5, 1 + jitter × N(0, 1))
    """

    def __init__(self, rtt_ms: list[list[float]], node_regions: list[int], access: list[float],
                 jitter: float, rng: random.Random, path_loss: Sequence[Sequence[float]] | None = None):
        self.half_rtt = [[v / 2000.0 for v in row] for row in rtt_ms]
        self.path_loss = path_loss  # per pair of regions (SimNetwork combines it with the message loss)
        self.node_regions = node_regions
        self.access = access
        self.jitter = jitter
        # Jitter factors are drawn in batches by numpy (one Python-level gauss per message was a
        # noticeable share of the simulator's time), from a generator seeded by the run's stream.
        self._normal = np.random.default_rng(rng.getrandbits(64))
        self._factors: list[float] = []

    def _refill(self) -> None:
        factors = 1.0 + self.jitter * self._normal.standard_normal(8192)
        self._factors = np.maximum(factors, 0.5).tolist()

    def one_way(self, a: int, b: int) -> float:
        base = self.half_rtt[self.node_regions[a]][self.node_regions[b]] + self.access[a] + self.access[b]
        if self.jitter:
            if not self._factors:
                self._refill()
            return base * self._factors.pop()
        return base

    def base_rtt(self, a: int, b: int) -> float:
        return 2 * (self.half_rtt[self.node_regions[a]][self.node_regions[b]] + self.access[a] + self.access[b])
