"""Token buckets: ``rate`` tokens a second, at most ``burst`` saved up; time is handed in.

``RateLimiter`` keeps one bucket per key (a peer) and one for everything, as ``[security]
rate_limit_per_peer`` and ``total_rate_limit`` describe; a request is admitted only when both have a
token, and a refusal says which limit it hit and when a token will be back.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "updated")

    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self.tokens = self.burst
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def available(self, now: float) -> float:
        self._refill(now)
        return self.tokens

    def take(self, now: float, cost: float = 1.0) -> bool:
        self._refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def wait_time(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there (0 if they are now)."""
        self._refill(now)
        return max(0.0, (cost - self.tokens) / self.rate)


@dataclass(frozen=True, slots=True)
class Refusal:
    scope: str          # "peer" or "total"
    limit: float        # tokens a second of the bucket that refused
    retry_after: float  # seconds


class RateLimiter:
    """A bucket per key plus a total one. Idle per-key buckets (full again) are dropped by ``prune``."""

    def __init__(self, per_key: float, total: float, max_keys: int = 10_000):
        self.per_key = per_key
        self.total = TokenBucket(total)
        self.max_keys = max_keys
        self.buckets: dict[Hashable, TokenBucket] = {}

    def admit(self, key: Hashable | None, now: float) -> Refusal | None:
        """Take a token for ``key`` (None: only the total limit applies); None if admitted."""
        bucket = None
        if key is not None:
            bucket = self.buckets.get(key)
            if bucket is None:
                if len(self.buckets) >= self.max_keys:
                    self.prune(now)
                bucket = self.buckets[key] = TokenBucket(self.per_key, now=now)
            if bucket.available(now) < 1.0:
                return Refusal("peer", self.per_key, bucket.wait_time(now))
        if not self.total.take(now):
            return Refusal("total", self.total.rate, self.total.wait_time(now))
        if bucket is not None:
            bucket.take(now)
        return None

    def reconfigure(self, per_key: float, total: float) -> None:
        self.per_key = per_key
        self.total.rate = self.total.burst = float(total)
        for bucket in self.buckets.values():
            bucket.rate = bucket.burst = float(per_key)

    def prune(self, now: float) -> None:
        self.buckets = {k: b for k, b in self.buckets.items() if b.available(now) < b.burst}
