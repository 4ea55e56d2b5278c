"""What a peer's bad input (or its vanishing) does is the peer's problem, not the node's: it is logged as one
short INFO line per peer (or source address) per interval, the others counted and said with the next line,
so no peer can fill the node's log. The swarm uses it for reset streams, the transports for failed
handshakes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable


class PeerLog:
    """At most ``burst`` INFO lines per ``key`` (a peer ID, a source address) per ``interval`` seconds (a token
    bucket), each at most ``MAX_LINE`` characters; the next line that goes out says how many were held."""

    MAX_LINE = 200
    MAX_KEYS = 4096  # beyond, the keys with a full bucket are forgotten

    def __init__(self, logger: logging.Logger, interval: float = 10.0, burst: int = 5,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.rate = burst / interval  # tokens per second
        self.burst = burst
        self.clock = clock
        self._buckets: dict[Hashable, list[float]] = {}  # key -> [tokens, when counted, lines held]

    def report(self, key: Hashable, message: str, *args: object) -> None:
        """Log ``message % args`` for ``key`` if its bucket has a line left."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_KEYS:
                self._forget_full(now)
            bucket = self._buckets[key] = [float(self.burst), now, 0]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1:
            bucket[0] = tokens
            bucket[2] += 1
            return
        bucket[0] = tokens - 1
        line = message % args if args else message
        if len(line) > self.MAX_LINE:
            line = line[: self.MAX_LINE - 3] + "..."
        if bucket[2]:
            line += f" ({bucket[2]:.0f} more like it not logged)"
            bucket[2] = 0
        self.logger.info("%s", line)

    def _forget_full(self, now: float) -> None:
        self._buckets = {k: b for k, b in self._buckets.items()
                         if b[0] + (now - b[1]) * self.rate < self.burst or b[2]}


__all__ = ["PeerLog"]
