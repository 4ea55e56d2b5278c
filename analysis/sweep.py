"""A sweep's grid in the results (docs/results.md): the table of every run (sweep.csv, one row per point and
seed), the mean and 95 % confidence interval of each criterion per point over its seeds, a plot per swept
parameter, and the runs that failed.

A point is one setting of the swept parameters (node count, scoring, NATs and the grid's dotted paths); its
runs differ only in their seed. The interval is Student's t over the point's completed runs:
mean ± t(0.975, n − 1) · s / √n, with s the sample standard deviation; one run has no interval.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats as scipy_stats

from analysis.criteria import judged
from analysis.definitions import SPECS
from analysis.formats import MISSING, STATS, fmt, rel
from analysis.load import Run
from analysis.render import Doc

TABLE = "sweep.csv"
PERF = ("wall_seconds", "messages", "peak_rss_mb")
SWEPT = ("nodes", "scoring", "nat")  # the sweep's own settings, beside the grid's paths


def entries_of(sweep: Run) -> list[dict]:
    entries = sweep.manifest.get("sweep")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def is_grid(entries: list[dict]) -> bool:
    """A sweep over dotted paths or seeds (older sweeps vary only nodes, scoring and NATs, one run each)."""
    return any("params" in e or "seed" in e for e in entries)


def dimensions(entries: list[dict]) -> list[str]:
    """The swept parameters, in the sweep's order: nodes, scoring and nat where they vary, then the paths."""
    dims = [key for key in SWEPT if len({_key(e.get(key)) for e in entries}) > 1]
    for entry in entries:
        for key in entry.get("params") or {}:
            if key not in dims:
                dims.append(key)
    return dims


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def setting_of(entry: dict, dim: str) -> Any:
    return entry.get(dim) if dim in SWEPT else (entry.get("params") or {}).get(dim)


def criteria_names(scenario: dict) -> list[str]:
    return [name for name, _ in judged(scenario, scaling=False)]


def point_summary(point_dir: Path) -> dict | None:
    """A run's summary.json (written by its report), None when it has none or it is unreadable."""
    try:
        data = json.loads((point_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


class SweepTable:
    """sweep.csv, one row per run, a row appended as each run ends (a crash keeps the rows written)."""

    def __init__(self, path: Path, scenario: dict, entries: list[Any]) -> None:
        entries = [e if isinstance(e, dict) else e.entry() for e in entries]
        self.path = path
        self.criteria = criteria_names(scenario)
        dims = dimensions(entries)
        self.columns = ["dir", "label", *([] if "nodes" in dims else ["nodes"]), *dims]
        if any("seed" in e for e in entries):
            self.columns.append("seed")
        self.columns += ["status", "error", *self.criteria, *(k for k in STATS if k not in self.criteria), *PERF]
        with path.open("w", newline="", encoding="utf-8") as file:
            csv.writer(file).writerow(self.columns)

    def row(self, entry: dict, summary: dict | None) -> list[str]:
        values: dict[str, Any] = {"dir": entry.get("dir"), "label": entry.get("label"), "seed": entry.get("seed"),
                                  "status": entry.get("status"), "error": entry.get("error")}
        for column in self.columns:
            if column not in values:
                values[column] = setting_of(entry, column)
        if summary is not None:
            values.update({c["name"]: c.get("value") for c in summary.get("criteria") or []})
            values.update({k: v for k, v in (summary.get("stats") or {}).items() if k not in self.criteria})
        perf = entry.get("perf") if isinstance(entry.get("perf"), dict) else {}
        values.update({key: perf.get(key) for key in PERF})
        return [_cell(values.get(column)) for column in self.columns]

    def add(self, entry: dict, point_dir: Path) -> None:
        summary = point_summary(point_dir) if entry.get("status") == "completed" else None
        with self.path.open("a", newline="", encoding="utf-8") as file:
            csv.writer(file).writerow(self.row(entry, summary))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def write_table(sweep: Run) -> Path:
    """sweep.csv rewritten in the sweep's order from the manifest and every run's summary.json (the point
    reports are written first)."""
    entries = entries_of(sweep)
    table = SweepTable(sweep.path / TABLE, sweep.scenario, entries)
    loaded = {point.path.name for point in sweep.points}
    for entry in entries:
        table.add(entry if entry.get("dir") in loaded or entry.get("status") == "failed"
                  else {**entry, "status": entry.get("status", "not found")}, sweep.path / str(entry.get("dir")))
    return table.path


def interval(values: list[float]) -> tuple[float | None, float | None]:
    """(mean, half-width of the 95 % confidence interval); the half-width is None for fewer than two values."""
    if not values:
        return None, None
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    sd = float(np.std(values, ddof=1))
    return mean, float(scipy_stats.t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))


def grid_points(sweep: Run, criteria: dict[str, list[dict]]) -> list[dict]:
    """Per point (the runs that differ only in seed), in the sweep's order: its settings, runs completed and
    failed, and each judged criterion's mean, 95 % interval and count over the completed runs (``criteria``:
    each loaded run's judged criteria by its directory name)."""
    entries = entries_of(sweep)
    dims = dimensions(entries)
    names = criteria_names(sweep.scenario)
    groups: dict[str, dict] = {}
    for entry in entries:
        settings = {dim: setting_of(entry, dim) for dim in dims}
        group = groups.setdefault(_key(settings), {"settings": settings, "values": {n: [] for n in names},
                                                   "runs": 0, "failed": 0, "dirs": []})
        group["dirs"].append(entry.get("dir"))
        if entry.get("status") == "failed":
            group["failed"] += 1
        if entry.get("dir") not in criteria:  # failed, not finished, or not found
            continue
        group["runs"] += 1
        for c in criteria[entry["dir"]]:
            if c.get("name") in group["values"] and isinstance(c.get("value"), int | float):
                group["values"][c["name"]].append(float(c["value"]))
    out = []
    for group in groups.values():
        criteria = {}
        for name, values in group["values"].items():
            mean, half = interval(values)
            criteria[name] = {"mean": mean, "ci95": half, "n": len(values)}
        out.append({"settings": group["settings"], "runs": group["runs"], "failed": group["failed"],
                    "dirs": group["dirs"], "criteria": criteria})
    return out


def failed_runs(sweep: Run) -> list[dict]:
    return [{"dir": e.get("dir"), "label": e.get("label"), "error": e.get("error")}
            for e in entries_of(sweep) if e.get("status") == "failed"]


def setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return value if isinstance(value, str) else _cell(value)


def mean_text(stat: dict, unit: str) -> str:
    if stat["mean"] is None:
        return MISSING
    text = fmt(stat["mean"], unit)
    return text if stat["ci95"] is None else f"{text} ± {fmt(stat['ci95'], unit)}"


def plot_parameter(sweep: Run, points: list[dict], dim: str, path: Path) -> Path | None:
    """Each criterion's mean and 95 % interval against one swept parameter, a line per setting of the others."""
    from analysis.plots import PNG_METADATA  # analysis.plots reads summaries, which read this module

    names = criteria_names(sweep.scenario)
    if not names:
        return None
    values = list(dict.fromkeys(_key(p["settings"][dim]) for p in points))
    numeric = all(isinstance(json.loads(v), int | float) and not isinstance(json.loads(v), bool) for v in values)
    figure = Figure(figsize=(7.5, 2.4 * len(names) + 0.8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(names), 1, squeeze=False)[:, 0]
    others = [d for d in points[0]["settings"] if d != dim]
    lines: dict[str, list[dict]] = {}
    for point in points:
        lines.setdefault(", ".join(f"{d}={setting_text(point['settings'][d])}" for d in others), []).append(point)
    targets = dict(judged(sweep.scenario, scaling=False))
    for ax, name in zip(axes, names, strict=True):
        unit = SPECS[name].unit
        scale = 100.0 if unit == "share" else 1.0
        for label, members in lines.items():
            xs = [json.loads(_key(p["settings"][dim])) if numeric else values.index(_key(p["settings"][dim]))
                  for p in members]
            ys = [p["criteria"][name]["mean"] for p in members]
            errs = [p["criteria"][name]["ci95"] or 0.0 for p in members]
            keep = [i for i, y in enumerate(ys) if y is not None]
            if keep:
                ax.errorbar([xs[i] for i in keep], [ys[i] * scale for i in keep], yerr=[errs[i] * scale for i in keep],
                            marker="o", capsize=4, label=label or None)
        ax.axhline(targets[name] * scale, color="tab:red", linewidth=1, linestyle="--",
                   label=f"target {SPECS[name].op} {fmt(targets[name], unit)}")
        ax.set_ylabel(f"{name} ({'%' if unit == 'share' else unit})")
        ax.grid(True, alpha=0.3)
        if not numeric:
            ax.set_xticks(range(len(values)), [setting_text(json.loads(v)) for v in values])
        elif len(values) <= 12:
            ax.set_xticks([json.loads(v) for v in values])
        ax.legend(fontsize="small")
    axes[0].set_title(f"{sweep.name}: criteria against {dim} (mean, 95 % interval over seeds)")
    axes[-1].set_xlabel(dim)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata=PNG_METADATA)
    return path


def plot_file(dim: str) -> str:
    return "sweep_" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in dim) + ".png"


def grid_section(doc: Doc, sweep: Run, summary: dict) -> list[Path]:
    """The report's grid: means and intervals per point, the failed runs, a plot per swept parameter."""
    points, failed = summary.get("grid") or [], summary.get("failed") or []
    names = criteria_names(sweep.scenario)
    doc.heading("Grid: mean and 95 % confidence interval per point")
    doc.para("A point is one setting of the swept parameters; its runs differ in their seed only. Each cell is "
             "the criterion's mean over the point's completed runs ± the half-width of its 95 % confidence "
             "interval (Student's t: t(0.975, n − 1) · s / √n); a point with one run has no interval. "
             f"Every run, one row each, is in `{TABLE}`.")
    dims = list(points[0]["settings"]) if points else []
    rows = [[*(setting_text(p["settings"][d]) for d in dims), str(p["runs"]), str(p["failed"]),
             *(mean_text(p["criteria"][n], SPECS[n].unit) for n in names)] for p in points]
    if rows:
        doc.table([*dims, "runs", "failed", *names], rows)
    if failed:
        doc.heading("Failed runs", 3)
        doc.para("These runs are left out of every figure above; their directories keep what they wrote.")
        doc.table(["run", "error"], [[f["dir"], f["error"] or MISSING] for f in failed])
    written = []
    if points and names:
        for dim in dims:
            path = plot_parameter(sweep, points, dim, sweep.path / plot_file(dim))
            if path is not None:
                doc.image(rel(path, sweep.path), f"criteria against {dim}",
                          f"Mean of each judged criterion against {dim}, the bars its 95 % confidence interval "
                          "over seeds, a line per setting of the other parameters; the dashed line is the target.")
                written.append(path)
    return written
