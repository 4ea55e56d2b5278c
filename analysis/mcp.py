"""The MCP section of a report (docs/mcp.md): a run whose events hold ``mcp`` rows.

From the rows both drivers write by one rule (``experiment/mcp.py``): ``mcp`` per call (latency end to end
as the calling node timed it, ``ok``, ``hops`` = attempts of a ``forward_to_peer`` or peers asked by an
``aggregate_results``, ``value`` = failovers, ``count`` = answers of a fan-out) and ``mcp_discovery`` when
the call waited for a discovery of providers. The section gives the end-to-end latency CDF and its p99
(the criterion ``mcp_request_p99``), the success rate, failovers, fan-outs that returned partial answers,
and how many calls waited for a discovery and for how long.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.formats import caption, fmt, rel
from analysis.load import Run
from analysis.render import Doc
from analysis.stats import mean, num, percentile, share_ok

MCP_STATS = {
    "mcp_requests": ("MCP requests (tools/call by local agents)", "count"),
    "mcp_success": ("answered without error", "share"),
    "mcp_latency_p50": ("latency p50 (end to end)", "s"),
    "mcp_latency_p90": ("latency p90", "s"),
    "mcp_latency_p99": ("latency p99", "s"),
    "mcp_latency_max": ("latency max", "s"),
    "mcp_forwards": ("forward_to_peer calls", "count"),
    "mcp_forward_latency_p99": ("forward_to_peer latency p99", "s"),
    "mcp_attempts_mean": ("providers asked per forward_to_peer (failovers and hedges)", "ratio"),
    "mcp_failovers": ("failovers (next provider after one failed or timed out)", "count"),
    "mcp_with_failover": ("calls with a failover", "share"),
    "mcp_aggregates": ("aggregate_results fan-outs", "count"),
    "mcp_aggregate_latency_p99": ("aggregate_results latency p99", "s"),
    "mcp_partial": ("fan-outs answered by only some peers (timeout or failures)", "share"),
    "mcp_discovery_waits": ("calls that waited for a discovery of providers", "share"),
    "mcp_discovery_p50": ("discovery time p50 (calls that waited)", "s"),
    "mcp_discovery_p99": ("discovery time p99 (calls that waited)", "s"),
}
def has_mcp(run: Run) -> bool:
    return len(run.of_kind("mcp")) > 0


def mcp_stats(run: Run) -> dict:
    calls = run.of_kind("mcp")
    fanout = calls["count"].notna()
    forwards, aggregates = calls[~fanout], calls[fanout]
    discoveries = run.of_kind("mcp_discovery")
    failovers = pd.to_numeric(calls["value"], errors="coerce").fillna(0)
    stats = {
        "mcp_requests": len(calls),
        "mcp_success": share_ok(calls),
        "mcp_latency_p50": percentile(calls["latency"], 50),
        "mcp_latency_p90": percentile(calls["latency"], 90),
        "mcp_latency_p99": percentile(calls["latency"], 99),
        "mcp_latency_max": percentile(calls["latency"], 100),
        "mcp_forwards": len(forwards),
        "mcp_forward_latency_p99": percentile(forwards["latency"], 99),
        "mcp_attempts_mean": mean(forwards["hops"]),
        "mcp_failovers": int(failovers.sum()),
        "mcp_with_failover": float((failovers > 0).mean()) if len(calls) else None,
        "mcp_aggregates": len(aggregates),
        "mcp_aggregate_latency_p99": percentile(aggregates["latency"], 99),
        "mcp_partial": float((aggregates["count"] < aggregates["hops"]).mean()) if len(aggregates) else None,
        "mcp_discovery_waits": len(discoveries) / len(calls) if len(calls) else None,
        "mcp_discovery_p50": percentile(discoveries["latency"], 50),
        "mcp_discovery_p99": percentile(discoveries["latency"], 99),
    }
    return {key: num(value) for key, value in stats.items()}


def mcp_section(doc: Doc, run: Run, stats: dict, pngs: dict[str, Path]) -> None:
    """The report's section, when the run made MCP calls (``pngs``: its latency CDF)."""
    doc.heading("MCP requests")
    doc.para("Each row is one tool call a node's local agent made, timed by that node from the request to its "
             "answer (discovery, routing, the remote peers' tools and failovers included). A fan-out's "
             "'partial' answer is one where some asked peers did not answer before its timeout or failed. "
             "A call waits for a discovery only when its node has no list of providers yet (docs/mcp.md).")
    doc.table(["statistic", "value"], [[MCP_STATS[key][0], fmt(value, MCP_STATS[key][1])]
                                       for key, value in stats.items()])
    for name, path in pngs.items():
        doc.image(rel(path, run.path), name.replace("_", " "), caption(name, run.runtime))
