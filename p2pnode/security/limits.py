"""What peers may ask of a node per second: ``[security] rate_limit_per_peer`` and ``total_rate_limit`` on
every inbound request and one-way message (DHT, pub-sub RPCs, application requests, relay and NAT protocols),
and separately on inbound streams, in the sans-IO host so the simulator models them as real nodes apply them.
MCP requests have their own limiter of the same kind (``p2pnode.mcp.server``), so that a peer's DHT traffic
does not spend its MCP allowance.

A refused request gets a ``RateLimited`` answer, which no peer ever receives as such: the asyncio runtime
resets the stream (libp2p's way of refusing: the requester sees an error, never a made-up answer), the
simulator fails the request at the requester after the trip back. A refused one-way message is dropped.
Each refusal is counted by kind (the protocol, or "stream") and by which limit it hit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass

from p2pnode.security.ratelimit import RateLimiter


@dataclass(frozen=True, slots=True)
class RateLimited:
    """The host's answer to a request it refused (see the module docstring)."""

    kind: str
    scope: str  # "peer" or "total"
    retry_after: float  # seconds


class InboundLimits:
    def __init__(self, per_peer: float, total: float):
        if per_peer <= 0 or total <= 0:
            raise ValueError("rate limits must be positive (leave the limits out for none)")
        self.per_peer = per_peer
        self.total = total
        self.messages = RateLimiter(per_peer, total)
        self.streams = RateLimiter(per_peer, total)
        self.refused: Counter[tuple[str, str]] = Counter()  # (kind, scope) -> refusals

    def admit(self, peer: Hashable, kind: str, now: float) -> RateLimited | None:
        """Take a token for one ``kind`` message (or, for "stream", one stream) from ``peer``; None if
        admitted, else the refusal, counted."""
        refusal = (self.streams if kind == "stream" else self.messages).admit(peer, now)
        if refusal is None:
            return None
        self.refused[(kind, refusal.scope)] += 1
        return RateLimited(kind, refusal.scope, refusal.retry_after)

    def reconfigure(self, per_peer: float, total: float) -> None:
        self.per_peer, self.total = per_peer, total
        self.messages.reconfigure(per_peer, total)
        self.streams.reconfigure(per_peer, total)
