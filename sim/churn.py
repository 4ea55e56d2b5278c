"""Session and offline time distributions for churn."""

from __future__ import annotations

import math
import random
from typing import Any


def sampler(spec: Any, rng: random.Random):
    """A function drawing durations (seconds) from a scenario distribution (exponential, weibull, lognormal)."""
    kind = spec.distribution
    if kind == "exponential":
        rate = 1.0 / spec.mean
        return lambda: rng.expovariate(rate)
    if kind == "weibull":
        scale, shape = spec.scale, spec.shape
        return lambda: rng.weibullvariate(scale, shape)
    if kind == "lognormal":
        mu, sigma = spec.mu, spec.sigma
        return lambda: rng.lognormvariate(mu, sigma)
    raise ValueError(f"unknown distribution {kind!r}")


def mean(spec: Any) -> float:
    """The distribution's mean, for the report."""
    if spec.distribution == "exponential":
        return spec.mean
    if spec.distribution == "weibull":
        return spec.scale * math.gamma(1 + 1 / spec.shape)
    return math.exp(spec.mu + spec.sigma**2 / 2)
