"""Joining and churn: when nodes first join, how long their sessions and offline times last, how they leave.

Bootstrap nodes start at 0 and never churn; the others join at uniform times over ``nodes.join_over``. From
the end of the warm-up each leaves after a session time (crashing, or gracefully with probability
``churn.graceful``), stays away for an offline time and comes back, until the run stops (the drain too, so
that the last messages are judged under the same churn as the others). Both drivers schedule these draws.
"""

from __future__ import annotations

import random
from typing import Any


def join_delays(scenario: Any, rng: random.Random) -> list[tuple[int, float]]:
    """(node, seconds after the start) of every non-bootstrap node's first join."""
    nodes = scenario.nodes
    joins = random.Random(rng.getrandbits(64))
    return [(i, joins.uniform(0.0, nodes.join_over)) for i in range(nodes.bootstrap, nodes.count)]


class Churn:
    """Session and offline times drawn from ``churn.session`` / ``churn.offline`` (exponential, Weibull,
    log-normal)."""

    def __init__(self, spec: Any, rng: random.Random):
        self.spec = spec
        self.rng = rng

    def first_departures(self, scenario: Any) -> list[tuple[int, float]]:
        """(node, time) of each churning node's first departure: sessions in progress at the end of the
        warm-up each end after a fresh session draw."""
        nodes = scenario.nodes
        return [(i, scenario.warmup + self.session()) for i in range(nodes.bootstrap, nodes.count)]

    def session(self) -> float:
        return self.spec.session.sample(self.rng)

    def departure(self) -> tuple[bool, float]:
        """(graceful, offline time) of a node leaving now."""
        graceful = self.rng.random() < self.spec.graceful
        return graceful, self.spec.offline.sample(self.rng)
