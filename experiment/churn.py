"""Churn: session and offline times drawn from the scenario's distributions (``churn.session``, ``.offline``)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any


def sampler(spec: Any, rng: random.Random) -> Callable[[], float]:
    """A function drawing durations (seconds) from a scenario distribution (exponential, weibull, lognormal)."""
    return lambda: spec.sample(rng)
