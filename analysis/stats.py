"""Headline statistics of one run, computed from its events (summary.json "stats" and "pubsub")."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.load import Run, setting
from experiment.events import PUBSUB_KINDS, USER_LOOKUPS


def num(value: object) -> object:
    """JSON-ready number: floats rounded to 6 decimals, numpy scalars unwrapped, NaN/inf/NA -> None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        if not math.isfinite(value):
            return None
        return round(value, 6) + 0.0  # + 0.0 turns -0.0 into 0.0
    return value


def _floats(series: pd.Series) -> np.ndarray:
    return series.astype("float64").dropna().to_numpy()


def percentile(series: pd.Series, q: float) -> float | None:
    values = _floats(series)
    return float(np.percentile(values, q)) if len(values) else None


def mean(series: pd.Series) -> float | None:
    values = _floats(series)
    return float(values.mean()) if len(values) else None


def judged_lookups(run: Run) -> pd.DataFrame:
    """The lookups ``lookup_p99`` and ``lookup_success`` judge: the user-facing ones (``get``, ``find_peer``,
    ``find_providers`` rows), which end when they have what was asked for; a run without any (a workload of
    FIND_NODE lookups only) is judged on its FIND_NODE convergence (``lookup`` rows)."""
    events = run.events
    user = events[events["kind"].isin(USER_LOOKUPS)]
    return user if len(user) else run.of_kind("lookup")


def share_ok(rows: pd.DataFrame) -> float | None:
    if rows.empty:
        return None
    return float((rows["ok"].fillna(0) == 1).sum()) / len(rows)


def _int_or_none(value: float | None) -> int | float | None:
    if value is None or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


def _na(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def _positive(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if value >= 0 else None


def _last(run: Run, kind: str, column: str, until: float | None = None) -> float | None:
    rows = run.of_kind(kind)
    if until is not None:
        rows = rows[rows["time"] <= until]
    return _na(rows[column].iloc[-1]) if len(rows) else None


def formation_time(run: Run) -> float | None:
    rows = run.of_kind("formation")
    reached = rows[(rows["value"] == 1) & (rows["ok"].fillna(0) == 1)]
    return float(reached["time"].iloc[0]) if len(reached) else None


def delivery_rate(run: Run) -> float | None:
    """Eligible subscribers reached within the deadline over eligible subscribers, summed over messages."""
    rows = run.of_kind("delivery")
    eligible = float(rows["count"].sum())
    return float(rows["value"].sum()) / eligible if eligible else None


def eligible_deliveries(run: Run) -> pd.DataFrame:
    """`deliver` rows at subscribers that were up delivery_settle seconds before the publish (ok == 1)."""
    rows = run.of_kind("deliver")
    return rows[rows["ok"].fillna(0) == 1]


def measured_end(run: Run) -> float | None:
    """warmup + duration: after it a run only drains (no more publishes, so scoring thins idle meshes)."""
    warmup, duration = setting(run.scenario, "warmup"), setting(run.scenario, "duration")
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (warmup, duration))
    return warmup + duration if ok else None


def has_pubsub(scenario: dict) -> bool:
    """Whether the scenario has a pubsub section (a resolved scenario without one has `pubsub: null`)."""
    return isinstance(scenario.get("pubsub"), dict)


def run_has_pubsub(run: Run) -> bool:
    """A pubsub section in the scenario, or pub-sub rows in the events."""
    return has_pubsub(run.scenario) or bool(run.events["kind"].isin(PUBSUB_KINDS).any())


def pubsub_stats(run: Run) -> dict:
    """Headline pub-sub figures (summary.json "pubsub"); the ps_* counters are cumulative over the run."""
    deliveries = run.of_kind("delivery")
    latencies = eligible_deliveries(run)["latency"]
    data, control = _last(run, "ps_data", "value"), _last(run, "ps_control", "value")
    first, copies = _last(run, "ps_recv", "value"), _last(run, "ps_recv", "count")
    duplicates = copies - first if copies is not None and first is not None else None
    total = data + control if data is not None and control is not None else None
    scoring, attackers = (setting(run.scenario.get("pubsub"), key) for key in ("scoring", "attackers"))
    stats = {
        "messages_published": len(run.of_kind("publish")),
        "messages_judged": len(deliveries),
        "delivery_rate": delivery_rate(run),
        "messages_fully_delivered": share_ok(deliveries),
        "delivery_latency_p50": percentile(latencies, 50),
        "delivery_latency_p99": percentile(latencies, 99),
        "delivery_latency_max": percentile(latencies, 100),
        "duplicates_per_delivery": _ratio(duplicates, first),
        "data_bytes": _int_or_none(data),
        "control_bytes": _int_or_none(control),
        "control_share": _ratio(control, total),
        "control_bytes_per_delivery": _ratio(control, first),
        "mesh_degree_end": _last(run, "mesh", "value", measured_end(run)),
        "mesh_below_d_lo_end": _int_or_none(_last(run, "mesh", "count", measured_end(run))),
        "scoring": scoring if isinstance(scoring, bool) else None,
        "attacker_share": attackers if isinstance(attackers, int | float) else None,
    }
    return {key: num(value) for key, value in stats.items()}


def run_stats(run: Run) -> dict:
    lookups = run.of_kind("lookup")
    puts = run.of_kind("put")
    gets = run.of_kind("get")
    downs = run.of_kind("down")
    ups = run.of_kind("up")
    live = _floats(run.of_kind("live")["value"])
    traffic = run.of_kind("traffic")
    last_traffic = traffic.iloc[-1] if len(traffic) else None
    user = run.events[run.events["kind"].isin(USER_LOOKUPS)]
    peers, providers = run.of_kind("find_peer"), run.of_kind("find_providers")
    provides = run.of_kind("provide")
    stats = {
        "user_lookups": len(user),
        "user_lookup_p50": percentile(user["latency"], 50),
        "user_lookup_p99": percentile(user["latency"], 99),
        "user_lookup_success": share_ok(user),
        "user_lookup_rpcs_mean": mean(user["count"]),
        "find_peers": len(peers),
        "find_peer_success": share_ok(peers),
        "find_peer_latency_p50": percentile(peers["latency"], 50),
        "find_peer_latency_p99": percentile(peers["latency"], 99),
        "provides": len(provides),
        "provide_success": share_ok(provides),
        "find_providers": len(providers),
        "find_providers_success": share_ok(providers),
        "find_providers_latency_p50": percentile(providers["latency"], 50),
        "find_providers_latency_p99": percentile(providers["latency"], 99),
        "lookups": len(lookups),
        "lookup_latency_p50": percentile(lookups["latency"], 50),
        "lookup_latency_p90": percentile(lookups["latency"], 90),
        "lookup_latency_p99": percentile(lookups["latency"], 99),
        "lookup_latency_mean": mean(lookups["latency"]),
        "lookup_hops_mean": mean(lookups["hops"]),
        "lookup_hops_p50": percentile(lookups["hops"], 50),
        "lookup_rpcs_mean": mean(lookups["count"]),
        "lookup_precision_mean": mean(lookups["value"]),
        "puts": len(puts),
        "put_success": share_ok(puts),
        "put_replicas_mean": mean(puts["value"]),
        "gets": len(gets),
        "get_success": share_ok(gets),
        "get_latency_p50": percentile(gets["latency"], 50),
        "get_latency_p99": percentile(gets["latency"], 99),
        "messages": None if last_traffic is None else _int_or_none(_na(last_traffic["count"])),
        "bytes": None if last_traffic is None else _int_or_none(_na(last_traffic["value"])),
        "churn_departures": len(downs),
        "churn_crashes": int((downs["value"] == 0).sum()),
        "churn_rejoins": int((ups["value"] == 0).sum()),
        "live_nodes_min": _int_or_none(float(live.min())) if len(live) else None,
        "live_nodes_mean": float(live.mean()) if len(live) else None,
        "live_nodes_max": _int_or_none(float(live.max())) if len(live) else None,
        "formation_time": formation_time(run),
    }
    return {key: num(value) for key, value in stats.items()}


def simulated_seconds(run: Run) -> float | None:
    return float(run.events["time"].max()) if len(run.events) else None


def point_perf(point: Run) -> dict:
    perf = point.manifest.get("perf")
    perf = perf if isinstance(perf, dict) else {}
    wall = _positive(perf.get("wall_seconds"))
    messages = _positive(perf.get("messages"))
    per_message = wall / messages if wall is not None and messages else None
    rate = perf.get("messages_per_wall_second")
    if rate is None and wall and messages is not None:
        rate = messages / wall
    return {
        "wall_seconds": wall,
        "messages": _int_or_none(messages) if messages is not None else None,
        "messages_per_wall_second": rate,
        "us_per_message": per_message * 1e6 if per_message is not None else None,
        "peak_rss_mb": perf.get("peak_rss_mb"),
        "wall_per_message": per_message,
    }


@dataclass(frozen=True)
class Latencies:
    """A latency sample (drawn as a CDF, compared between runs): the rows holding it and its criterion."""

    noun: str
    plural: str
    criterion: str
    rows: Callable[[Run], pd.DataFrame]


LOOKUPS = Latencies("lookup", "lookups", "lookup_p99", judged_lookups)  # what lookup_p99 judges
# FIND_NODE convergence: what the fidelity verdict compares between runtimes (the most samples of the model)
CONVERGENCE = Latencies("lookup", "FIND_NODE lookups", "lookup_p99", lambda run: run.of_kind("lookup"))
DELIVERIES = Latencies("delivery", "deliveries", "delivery_p99", eligible_deliveries)
MCP_CALLS = Latencies("MCP request", "MCP requests", "mcp_request_p99", lambda run: run.of_kind("mcp"))
