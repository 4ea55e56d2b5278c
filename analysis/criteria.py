"""Success criteria and headline statistics of a run (summary.json)."""

from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import AnalysisError, Run

FORMATION_DEFINITION = (
    "Formation is reached when every checked live node has finished bootstrapping and lookups for one "
    "random key, started from all of them at the same moment, all return exactly the true k closest live "
    "peers; the formation time is when the last of those lookups returned (the first `formation` row with "
    "`value == 1` and `ok == 1`). Routing-table completeness is shown beside it: the share of checked live "
    "nodes each of whose buckets holds min(k, live peers in the bucket's range) live peers."
)

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    unit: str
    target: float
    op: str


SPECS = {
    spec.name: spec
    for spec in (
        Spec(
            "formation_time",
            "Simulated seconds from t=0 until lookups for one random key from every checked live node "
            "(all bootstrapped) returned exactly the true k closest live peers; fails if never reached.",
            "s",
            30.0,
            "<",
        ),
        Spec(
            "lookup_p99",
            "99th percentile of lookup latency over all lookups, successful or not "
            "(linear interpolation between samples).",
            "s",
            0.5,
            "<",
        ),
        Spec(
            "lookup_success",
            "Share of lookups that found the closest live peer to the key (ok == 1).",
            "share",
            0.99,
            ">=",
        ),
        Spec(
            "put_get_success",
            "Share of gets, for keys put earlier and under churn, that returned the newest stored version "
            "(ok == 1).",
            "share",
            0.99,
            ">=",
        ),
        Spec(
            "scaling",
            "Wall-clock seconds per simulated message at the largest node count divided by the same at the "
            "smallest (each point's manifest perf: wall_seconds / messages).",
            "ratio",
            1.5,
            "<=",
        ),
    )
}
RUN_CRITERIA = ("formation_time", "lookup_p99", "lookup_success", "put_get_success")
DEFAULT_RUN_CRITERIA = ("lookup_p99", "lookup_success", "put_get_success")


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


def share_ok(rows: pd.DataFrame) -> float | None:
    if rows.empty:
        return None
    return float((rows["ok"].fillna(0) == 1).sum()) / len(rows)


def _int_or_none(value: float | None) -> int | float | None:
    if value is None or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


def formation_time(run: Run) -> float | None:
    rows = run.of_kind("formation")
    reached = rows[(rows["value"] == 1) & (rows["ok"].fillna(0) == 1)]
    return float(reached["time"].iloc[0]) if len(reached) else None


def judged(scenario: dict, sweep: bool) -> list[tuple[str, float]]:
    """The (name, target) pairs the scenario asks to judge, in a fixed order."""
    section = scenario.get("criteria")
    if section is None:
        names = DEFAULT_RUN_CRITERIA
        section = {}
    elif isinstance(section, dict):
        names = tuple(name for name in RUN_CRITERIA if name in section)
    else:
        raise AnalysisError(f"scenario criteria: expected a mapping, got {type(section).__name__}")
    if sweep:
        names = ("scaling", *names)
    result = []
    for name in names:
        result.append((name, _target(name, section.get(name))))
    return result


def _target(name: str, setting: object) -> float:
    default = SPECS[name].target
    if setting is None:
        return default
    if isinstance(setting, dict):
        setting = setting.get("target")
        if setting is None:
            return default
    if isinstance(setting, bool) or not isinstance(setting, int | float):
        raise AnalysisError(f"scenario criteria.{name}.target: {setting!r} is not a number")
    return float(setting)


def criterion(name: str, value: float | None, target: float, description: str | None = None) -> dict:
    spec = SPECS[name]
    value = num(value)
    passed = value is not None and OPS[spec.op](value, target)
    return {
        "name": name,
        "description": description or spec.description,
        "value": value,
        "target": num(float(target)),
        "op": spec.op,
        "unit": spec.unit,
        "pass": passed,
    }


def run_stats(run: Run) -> dict:
    lookups = run.of_kind("lookup")
    puts = run.of_kind("put")
    gets = run.of_kind("get")
    downs = run.of_kind("down")
    ups = run.of_kind("up")
    live = _floats(run.of_kind("live")["value"])
    traffic = run.of_kind("traffic")
    last_traffic = traffic.iloc[-1] if len(traffic) else None
    stats = {
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


def _na(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def simulated_seconds(run: Run) -> float | None:
    return float(run.events["time"].max()) if len(run.events) else None


def criterion_value(run: Run, name: str) -> float | None:
    """The raw value of one of the run criteria (not scaling) for a single run."""
    if name == "formation_time":
        return formation_time(run)
    if name == "lookup_p99":
        return percentile(run.of_kind("lookup")["latency"], 99)
    if name == "lookup_success":
        return share_ok(run.of_kind("lookup"))
    if name == "put_get_success":
        return share_ok(run.of_kind("get"))
    raise KeyError(name)


def run_criteria(run: Run) -> list[dict]:
    return [criterion(name, criterion_value(run, name), target)
            for name, target in judged(run.scenario, sweep=False)]


def worst_over_points(points: list[Run], name: str) -> float | None:
    """The worst value of a run criterion over the sweep points (None if any point has none)."""
    values = [criterion_value(point, name) for point in points]
    if not values or any(value is None for value in values):
        return None
    return max(values) if SPECS[name].op in ("<", "<=") else min(values)


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


def _positive(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if value >= 0 else None


def scaling_ratio(points: list[Run]) -> float | None:
    """Wall seconds per message at the largest node count / at the smallest (None if not measurable)."""
    if len(points) < 2:
        return None
    smallest, largest = point_perf(points[0]), point_perf(points[-1])
    if points[0].manifest.get("nodes") == points[-1].manifest.get("nodes"):
        return None
    if not smallest["wall_per_message"] or largest["wall_per_message"] is None:
        return None
    return largest["wall_per_message"] / smallest["wall_per_message"]


def summarise(run: Run) -> dict:
    """The summary.json content of a run or a sweep; deterministic for the same events and manifest."""
    if run.is_sweep:
        return _summarise_sweep(run)
    return {
        "scenario": run.name,
        "seed": run.manifest.get("seed", run.scenario.get("seed")),
        "nodes": run.manifest.get("nodes"),
        "runtime": run.manifest.get("runtime"),
        "simulated_seconds": num(simulated_seconds(run)),
        "criteria": run_criteria(run),
        "stats": run_stats(run),
    }


def _summarise_sweep(run: Run) -> dict:
    points = []
    for point in run.points:
        perf = point_perf(point)
        lookups = point.of_kind("lookup")
        point_criteria = run_criteria(point)
        points.append(
            {
                "nodes": point.manifest.get("nodes"),
                "dir": point.path.name,
                "wall_seconds": num(perf["wall_seconds"]),
                "messages": num(perf["messages"]),
                "messages_per_wall_second": num(perf["messages_per_wall_second"]),
                "us_per_message": num(perf["us_per_message"]),
                "peak_rss_mb": num(perf["peak_rss_mb"]),
                "lookup_p99": num(percentile(lookups["latency"], 99)),
                "lookup_success": num(share_ok(lookups)),
                "pass": all(c["pass"] for c in point_criteria) if point_criteria else None,
            }
        )
    ratio = scaling_ratio(run.points)
    return {
        "scenario": run.name,
        "seed": run.manifest.get("seed", run.scenario.get("seed")),
        "nodes": [p["nodes"] for p in points],
        "runtime": run.manifest.get("runtime") or next((p.manifest.get("runtime") for p in run.points), None),
        "criteria": _sweep_criteria(run, ratio),
        "points": points,
        "missing_points": list(run.missing_points),
    }


def _sweep_criteria(run: Run, ratio: float | None) -> list[dict]:
    result = []
    for name, target in judged(run.scenario, sweep=True):
        if name == "scaling":
            result.append(criterion(name, ratio, target))
        else:
            description = f"Worst over the sweep points. {SPECS[name].description}"
            result.append(criterion(name, worst_over_points(run.points, name), target, description))
    return result


def verdict(summary: dict) -> bool | None:
    """True if every judged criterion passes, None if nothing is judged."""
    criteria = summary.get("criteria") or []
    return all(c["pass"] for c in criteria) if criteria else None


def summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def write_summary(run: Run, summary: dict | None = None) -> Path:
    summary = summarise(run) if summary is None else summary
    path = run.path / "summary.json"
    path.write_text(summary_json(summary), encoding="utf-8")
    return path
