"""How reports name and format figures: statistic labels and units, plot captions, number formatting, and the
small document pieces that run, sweep and comparison reports share."""

from __future__ import annotations

import os
from pathlib import Path

from analysis.criteria import verdict
from analysis.definitions import clock
from analysis.render import Doc

MISSING = "—"

# summary["stats"] key -> (label, format)
STATS = {
    "user_lookups": ("user-facing lookups (get, find_peer, find_providers)", "count"),
    "user_lookup_p50": ("user-facing lookup latency p50", "s"),
    "user_lookup_p99": ("user-facing lookup latency p99", "s"),
    "user_lookup_success": ("user-facing lookup success", "share"),
    "user_lookup_rpcs_mean": ("RPCs per user-facing lookup, mean", "number"),
    "find_peers": ("find_peer lookups", "count"),
    "find_peer_success": ("find_peer success (target's addresses returned)", "share"),
    "find_peer_latency_p50": ("find_peer latency p50", "s"),
    "find_peer_latency_p99": ("find_peer latency p99", "s"),
    "provides": ("provides", "count"),
    "provide_success": ("provide success (a peer told)", "share"),
    "find_providers": ("find_providers lookups", "count"),
    "find_providers_success": ("find_providers success (a provider returned)", "share"),
    "find_providers_latency_p50": ("find_providers latency p50", "s"),
    "find_providers_latency_p99": ("find_providers latency p99", "s"),
    "lookups": ("FIND_NODE lookups", "count"),
    "lookup_latency_p50": ("FIND_NODE convergence p50", "s"),
    "lookup_latency_p90": ("FIND_NODE convergence p90", "s"),
    "lookup_latency_p99": ("FIND_NODE convergence p99", "s"),
    "lookup_latency_mean": ("FIND_NODE convergence mean", "s"),
    "lookup_hops_mean": ("FIND_NODE hops, mean", "number"),
    "lookup_hops_p50": ("FIND_NODE hops, median", "number"),
    "lookup_rpcs_mean": ("RPCs per FIND_NODE lookup, mean", "number"),
    "lookup_precision_mean": ("share of true k closest found, mean", "share"),
    "puts": ("puts", "count"),
    "put_success": ("put success (at least one replica stored)", "share"),
    "put_replicas_mean": ("replicas per put, mean", "number"),
    "gets": ("gets", "count"),
    "get_success": ("get success (newest version returned)", "share"),
    "get_latency_p50": ("get latency p50", "s"),
    "get_latency_p99": ("get latency p99", "s"),
    "messages": ("messages sent", "count"),
    "bytes": ("bytes sent", "bytes"),
    "churn_departures": ("departures", "count"),
    "churn_crashes": ("of which crashes", "count"),
    "churn_rejoins": ("rejoins", "count"),
    "live_nodes_min": ("live nodes, min", "count"),
    "live_nodes_mean": ("live nodes, mean", "number"),
    "live_nodes_max": ("live nodes, max", "count"),
    "formation_time": ("formation reached at", "s"),
}

# summary["pubsub"] key -> (label, format)
PUBSUB_STATS = {
    "messages_published": ("messages published", "count"),
    "messages_judged": ("messages judged (deadline passed)", "count"),
    "delivery_rate": ("delivery rate (eligible subscribers reached within the deadline)", "share"),
    "messages_fully_delivered": ("messages that reached every eligible subscriber", "share"),
    "delivery_latency_p50": ("delivery latency p50", "s"),
    "delivery_latency_p99": ("delivery latency p99", "s"),
    "delivery_latency_max": ("delivery latency max", "s"),
    "duplicates_per_delivery": ("duplicate copies per delivered message", "number"),
    "data_bytes": ("message data sent", "bytes"),
    "control_bytes": ("control sent (subscriptions, IHAVE, IWANT, GRAFT, PRUNE)", "bytes"),
    "control_share": ("control share of pub-sub bytes", "share"),
    "control_bytes_per_delivery": ("control bytes per delivered message", "bytes"),
    "mesh_degree_end": ("mean mesh degree at the end", "number"),
    "mesh_below_d_lo_end": ("nodes with a mesh below d_lo at the end", "count"),
    "scoring": ("peer scoring", "flag"),
    "attacker_share": ("attacker share of the nodes", "share"),
}
PUBSUB_PLOTS = ("delivery_cdf", "delivery_rate", "mesh_degree")
MCP_PLOTS = ("mcp_cdf",)
PUBSUB_NOTE = (
    "Duplicates per delivered message are (copies received − first receptions) / first receptions; the control "
    "share is control bytes / (message data bytes + control bytes); control bytes per delivered message "
    "divide by first receptions. All three come from the last `ps_recv`, `ps_data` and `ps_control` samples "
    "(cumulative over the whole run, warm-up included, at every node); the mesh figures are the last `mesh` "
    "sample."
)

CAPTIONS = {
    "lookup_cdf": "Share of lookups finished within a given latency, with the median, the 99th percentile "
                  "and the target marked.",
    "lookup_success": "Share of lookups per time bin that found the closest live peer, against the target "
                      "(grey bars: lookups per bin).",
    "get_success": "Share of gets per time bin that returned the newest stored version, against the target "
                   "(grey bars: gets per bin).",
    "live_nodes": "Live nodes over {clock} time, with joins and rejoins (up) and departures (down) "
                  "counted per time bin below.",
    "formation": "Routing-table completeness: share of checked live nodes whose every bucket holds "
                 "min(k, live peers in its range) live peers; dots mark lookup checks that agreed, lines "
                 "the formation time and its target.",
    "scaling": "Wall-clock time per simulated message at each node count; the dashed line is the scaling "
               "target relative to the smallest point.",
    "sweep_cdf": "Lookup latency CDF of every sweep point on one axes.",
    "compare_cdf": "Lookup latency CDFs of both runs on one axes; the black bar marks the largest gap between "
                   "them, the KS distance.",
    "delivery_cdf": "Share of deliveries (first receptions at subscribers up since `delivery_settle` before "
                    "the publish) within a given latency of the publish, with the median, the 99th "
                    "percentile and the target marked.",
    "delivery_rate": "Delivery rate of the messages published in each time bin (eligible subscribers reached "
                     "within the deadline over eligible subscribers), against the target; grey: live nodes.",
    "mesh_degree": "Mean mesh degree of the live subscribed nodes over all their topics, with the router's "
                   "d, d_lo and d_hi; grey: nodes whose mesh for some topic is below d_lo.",
    "sweep_delivery_cdf": "Delivery latency CDF of every sweep point on one axes.",
    "compare_delivery_cdf": "Delivery latency CDFs of both runs on one axes; the black bar marks the largest gap "
                            "between them, the KS distance.",
    "mcp_cdf": "Share of MCP requests (a local agent's tools/call: forward_to_peer or aggregate_results) "
               "answered within a given end-to-end latency, with the median, the 99th percentile and the "
               "target marked.",
    "compare_mcp_cdf": "MCP request latency CDFs of both runs on one axes; the black bar marks the largest gap "
                       "between them, the KS distance.",
}


def fmt(value: object, unit: str) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        if unit == "flag":
            return "on" if value else "off"
        return "PASS" if value else "FAIL"
    if not isinstance(value, int | float):
        return str(value)
    if unit == "s":
        return f"{value * 1000:.4g} ms" if abs(value) < 1 else f"{value:.4g} s"
    if unit == "share":
        return f"{value * 100:.2f} %"
    if unit in ("count", "bytes"):
        return f"{value:,.0f}" + (" B" if unit == "bytes" else "")
    if unit == "ratio":
        return f"{value:.3g}"
    return f"{value:.3g}"


def fmt_micro(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def target_text(crit: dict) -> str:
    return f"{crit['op']} {fmt(crit['target'], crit['unit'])}"


def verdict_text(summary: dict) -> tuple[bool | None, str]:
    criteria = summary.get("criteria") or []
    passed = verdict(summary)
    if passed is None:
        return None, "No criteria judged"
    count = sum(1 for c in criteria if c["pass"])
    return passed, f"{'PASS' if passed else 'FAIL'}: {count} of {len(criteria)} criteria met"


def node_counts(summary: dict) -> object:
    """The node count of a run, or the distinct node counts of a sweep's points ("1000, 2000")."""
    nodes = summary.get("nodes")
    return ", ".join(str(n) for n in dict.fromkeys(nodes)) if isinstance(nodes, list) else nodes


def title(summary: dict) -> str:
    nodes = node_counts(summary)
    return f"{summary['scenario']}: seed {summary.get('seed')}, {nodes} nodes, {summary.get('runtime')}"


def given(value: object, suffix: str = "") -> str:
    if value is None:
        return "not given"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value}{suffix}"


def rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def caption(name: str, runtime: str | None) -> str:
    """A plot's caption, its time named for the run's runtime."""
    return CAPTIONS[name].replace("{clock}", clock(runtime))


def time_covered(runtime: str | None, seconds: float | None) -> str:
    gloss = " (real seconds since the scenario started)" if runtime == "emulation" else ""
    return f"{clock(runtime).capitalize()} time covered by events{gloss}: {fmt(seconds, 's')}."


def plots_section(doc: Doc, pngs: dict[str, Path], base: Path, runtime: str | None = None) -> None:
    doc.heading("Plots")
    if not pngs:
        doc.para("No plots: the events hold no data to plot.")
    for name, path in pngs.items():
        doc.image(rel(path, base), name.replace("_", " "), caption(name, runtime))
