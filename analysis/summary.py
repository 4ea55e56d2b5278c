"""summary.json of a run or a sweep: its criteria (analysis.criteria) and headline statistics (analysis.stats)."""

from __future__ import annotations

import json
from pathlib import Path

from analysis.criteria import run_criteria, scaling_ratio, sweep_criteria
from analysis.definitions import DELIVERY_CRITERIA
from analysis.load import Run
from analysis.mcp import has_mcp, mcp_stats
from analysis.stats import (
    judged_lookups,
    num,
    percentile,
    point_perf,
    pubsub_stats,
    run_has_pubsub,
    run_stats,
    share_ok,
    simulated_seconds,
)
from analysis.sweep import entries_of, failed_runs, grid_points, is_grid


def point_label(point: Run) -> str:
    """A sweep point's label: the sweep manifest's, else its node count (and scoring setting)."""
    label = point.manifest.get("label")
    if isinstance(label, str) and label:
        return label
    scoring = point.manifest.get("scoring")
    suffix = f", scoring {'on' if scoring else 'off'}" if isinstance(scoring, bool) else ""
    return f"{point.manifest.get('nodes')} nodes{suffix}"


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
        **({"pubsub": pubsub_stats(run)} if run_has_pubsub(run) else {}),
        **({"mcp": mcp_stats(run)} if has_mcp(run) else {}),
        **({"damage": list(run.damage)} if run.damage else {}),
    }


def _summarise_sweep(run: Run) -> dict:
    points = []
    judged = {}
    for point in run.points:
        perf = point_perf(point)
        lookups = judged_lookups(point)
        point_criteria = judged[point.path.name] = run_criteria(point)
        entry = {
            "label": point_label(point),
            "nodes": point.manifest.get("nodes"),
            "scoring": point.manifest.get("scoring"),
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
        if run_has_pubsub(point):
            entry["criteria"] = [c for c in point_criteria if c["name"] in DELIVERY_CRITERIA]
            entry["pubsub"] = pubsub_stats(point)
        points.append(entry)
    ratio = scaling_ratio(run.points)
    entries = entries_of(run)
    grid = {"grid": grid_points(run, judged)} if is_grid(entries) else {}
    return {
        "scenario": run.name,
        "seed": run.manifest.get("seed", run.scenario.get("seed")),
        "nodes": [p["nodes"] for p in points],
        "runtime": run.runtime,
        "criteria": sweep_criteria(run, ratio),
        "points": points,
        "missing_points": list(run.missing_points),
        **grid,
        **({"failed": failed} if (failed := failed_runs(run)) else {}),
        **({"damage": damage} if (damage := run.damage + [f"{p.path.name}: {line}" for p in run.points
                                                          for line in p.damage]) else {}),
    }


def summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def write_summary(run: Run, summary: dict | None = None) -> Path:
    summary = summarise(run) if summary is None else summary
    path = run.path / "summary.json"
    path.write_text(summary_json(summary), encoding="utf-8")
    return path
