"""Can this machine run the scenario? An estimate of a run's cost, checked before the run directory is made.

Each field's range (experiment.scenario.schema) keeps every value usable on its own; together they can still ask
for more than a machine has: a million nodes (memory), or years of lookups from every node (time). The estimate
is an order of magnitude, from the figures measured on the 2-core development machine (README, Benchmarks):

* the simulator handles about 15,000 messages per wall-clock second at 10,000 nodes (churn and gossip
  benchmarks), and holds about 80 KB per node (123 MB at 1,000 nodes, 768 MB at 10,000, k = 20) plus the
  records stored (their value and ~200 bytes, k replicas, while their TTL lasts);
* a lookup, put or get costs about 8·log2(n) messages (1.29 M messages for 16,000 operations at 1,000 nodes,
  16.7 M for 160,000 at 10,000, joins and refreshes included); a join, a rejoin and a bucket refresh round are
  log2(n) lookups (a refresh round about half of them: buckets looked up lately are skipped); a publish costs d
  messages per subscriber, a heartbeat d_lazy + 1 per node; a sample walks every live node once and the formation
  sample's k closest peers, each visit about a fiftieth of a message;
* an emulated node is a Python process of about 70 MiB (`benchmarks/bench_emulation.py`).

A run is refused when its memory exceeds what the machine has available, or its simulation would take more
than `MAX_WALL_SECONDS`; the refusal names the field that costs most and says the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import psutil

MESSAGES_PER_SECOND = 15_000.0
NODE_BYTES = 80e3
BASE_BYTES = 200e6  # the interpreter and the libraries (measured: 183 MB for 30 nodes)
RECORD_OVERHEAD = 200
EMULATED_NODE_BYTES = 70 * 2**20
SAMPLE_VISIT = 0.02  # a sample's visit of one node, in messages
MAX_WALL_SECONDS = 7 * 86400.0  # longer than a week is not an experiment anyone waits for


@dataclass(frozen=True)
class Cost:
    """A run's estimated cost: messages by the field that drives them, and peak memory (bytes)."""

    messages: dict[tuple[str, ...], float] = field(default_factory=dict)
    memory: float = 0.0
    memory_field: tuple[str, ...] = ("nodes", "count")

    @property
    def total(self) -> float:
        return math.fsum(self.messages.values())

    @property
    def wall_seconds(self) -> float:
        return self.total / MESSAGES_PER_SECOND

    def costliest(self) -> tuple[str, ...]:
        return max(self.messages, key=self.messages.__getitem__)


def simulation_cost(scenario: Any) -> Cost:
    """The estimated messages and memory of simulating `scenario` (one point, not its sweep)."""
    n = scenario.nodes.count
    levels = max(1.0, math.log2(n))
    per_op = 8 * levels
    measured, span = scenario.duration, scenario.warmup + scenario.duration
    dht, wl = scenario.dht, scenario.workload
    messages: dict[tuple[str, ...], float] = {("nodes", "count"): n * levels * per_op}  # joins
    for name in ("lookup", "put", "get", "find_peer", "provide", "find_providers"):
        messages[("workload", name)] = n * getattr(wl, name) / 60 * measured * per_op
    messages[("dht", "refresh_interval")] = n * levels / 2 * span / dht.refresh_interval * per_op
    records = n * wl.put / 60 * measured  # records put during the run, each republished while it lives
    messages[("dht", "republish_interval")] = records * measured / 2 / dht.republish_interval * per_op
    if scenario.churn is not None:
        cycle = scenario.churn.session.expected + scenario.churn.offline.expected
        messages[("churn", "session")] = n * measured / cycle * levels * per_op
    if scenario.pubsub is not None:
        ps = scenario.pubsub
        messages[("pubsub", "rate")] = ps.rate * measured * n * ps.subscribers * ps.router.d
        messages[("pubsub", "router", "heartbeat_interval")] = (
            n * span / ps.router.heartbeat_interval * (ps.router.d_lazy + 1))
    if scenario.mcp is not None:
        mcp = scenario.mcp
        messages[("mcp", "rate")] = n * mcp.rate / 60 * measured * (per_op + 2 + 2 * mcp.aggregate * mcp.fanout)
    m = scenario.measure
    visits = n + min(m.formation_sample, n) * dht.k
    messages[("measure", "sample_interval")] = span / m.sample_interval * visits * SAMPLE_VISIT
    stored = records * min(1.0, dht.record_ttl / measured) * dht.k * (wl.value_size + RECORD_OVERHEAD)
    memory = BASE_BYTES + n * NODE_BYTES * max(1.0, dht.k / 20) + stored
    return Cost(messages, memory, ("nodes", "count") if stored < n * NODE_BYTES else ("workload", "put"))


def available_memory() -> float:
    return float(psutil.virtual_memory().available)


def check_simulation(scenario: Any, available: float | None = None) -> Cost:
    """Refuse (ScenarioError at the costliest field's line) a scenario, sweep included, that this machine
    cannot simulate; returns the estimate of the whole run."""
    points = [point for _, point in scenario.sweep_points()] or [scenario]
    costs = [simulation_cost(point) for point in points]
    available = available_memory() if available is None else available
    biggest = max(costs, key=lambda c: c.memory)
    if biggest.memory > available:
        n = max(point.nodes.count for point in points)
        raise scenario.error([(biggest.memory_field, f"{n} simulated nodes need about {_bytes(biggest.memory)} "
                                                     f"of memory; {_bytes(available)} is available")])
    merged = _merged(costs)
    total = math.fsum(merged.values())
    if total / MESSAGES_PER_SECOND > MAX_WALL_SECONDS:
        worst = max(merged, key=merged.__getitem__)
        wall = _duration(total / MESSAGES_PER_SECOND)
        raise scenario.error([(worst, f"about {total:.2g} messages to simulate (~{wall} "
                                      f"at ~{MESSAGES_PER_SECOND:,.0f} messages/s; {100 * merged[worst] / total:.0f} % "
                                      f"from this field); at most {_duration(MAX_WALL_SECONDS)} is run")])
    return Cost(merged, biggest.memory, biggest.memory_field)


def _merged(costs: list[Cost]) -> dict[tuple[str, ...], float]:
    merged: dict[tuple[str, ...], float] = {}
    for cost in costs:
        for key, value in cost.messages.items():
            merged[key] = merged.get(key, 0.0) + value
    return merged


def check_emulation(scenario: Any, available: float | None = None) -> None:
    """Refuse a scenario whose node processes would not fit in this machine's memory."""
    need = BASE_BYTES + scenario.nodes.count * EMULATED_NODE_BYTES
    available = available_memory() if available is None else available
    if need > available:
        raise scenario.error([(("nodes", "count"), f"{scenario.nodes.count} node processes need about "
                                                   f"{_bytes(need)} of memory; {_bytes(available)} is available")])


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def _duration(seconds: float) -> str:
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"
