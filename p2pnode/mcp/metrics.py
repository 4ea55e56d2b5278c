"""What the MCP server counts: ``mcp_requests_total{tool,outcome}`` and the
``mcp_request_duration_seconds{tool}`` histogram (the spec's metric names), kept as plain numbers that
the Prometheus collector of the node's HTTP listener reads when scraped."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    __slots__ = ("counts", "sum", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus exposes them."""
        out, total = [], 0
        for bound, n in zip((*map(str, BUCKETS), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class McpMetrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.durations: dict[str, Histogram] = {}

    def count(self, tool: str, outcome: str, seconds: float) -> None:
        self.requests[(tool, outcome)] += 1
        histogram = self.durations.get(tool)
        if histogram is None:
            histogram = self.durations[tool] = Histogram()
        histogram.observe(seconds)

    def total(self, outcome: str | None = None) -> int:
        return sum(n for (_, o), n in self.requests.items() if outcome is None or o == outcome)
