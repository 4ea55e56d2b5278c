"""What a peer's bad input (or its vanishing) does is the peer's problem, not the node's: it is logged as a
few short INFO lines per peer (or source address) per interval, the others counted and said with the next
line, so no peer (nor many peer IDs together) can fill the node's log. The swarm uses it for reset streams,
the transports for failed handshakes. Sans-IO: the caller hands in its clock."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable

from p2pnode.security.ratelimit import TokenBucket


class PeerLog:
    """At most ``burst`` INFO lines per ``key`` (a peer ID, a source address) per ``interval`` seconds, and
    ``total`` lines a second for all keys together (many peer IDs are cheap), each at most ``MAX_LINE``
    characters; the next line of a key that goes out says how many of its lines were held."""

    MAX_LINE = 200
    MAX_KEYS = 4096  # beyond, the keys with a full bucket are forgotten

    def __init__(self, logger: logging.Logger, clock: Callable[[], float], interval: float = 10.0, burst: int = 5,
                 total: float = 20.0):
        self.logger = logger
        self.rate = burst / interval
        self.burst = burst
        self.clock = clock
        self.total = TokenBucket(total, 5 * total, now=clock())
        self._buckets: dict[Hashable, TokenBucket] = {}
        self._held: dict[Hashable, int] = {}

    def report(self, key: Hashable, message: str, *args: object) -> None:
        """Log ``message % args`` for ``key`` if its bucket and the total one have a line left."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_KEYS:
                self._buckets = {k: b for k, b in self._buckets.items() if b.available(now) < b.burst}
                self._held = {k: n for k, n in self._held.items() if k in self._buckets}
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now=now)
        if bucket.available(now) < 1 or not self.total.take(now):
            self._held[key] = self._held.get(key, 0) + 1
            return
        bucket.take(now)
        line = message % args if args else message
        if len(line) > self.MAX_LINE:
            line = line[: self.MAX_LINE - 3] + "..."
        held = self._held.pop(key, 0)
        if held:
            line += f" ({held} more like it not logged)"
        self.logger.info("%s", line)


__all__ = ["PeerLog"]
