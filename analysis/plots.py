"""Plots of a run as PNG files (matplotlib's Agg canvas; never opens a window).

Every function returns the path of the PNG it wrote, or None (and removes a stale file of that name) when
the run has no data for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from analysis.criteria import judged, judges_scaling
from analysis.definitions import SPECS, clock
from analysis.load import Run, setting
from analysis.stats import DELIVERIES, LOOKUPS, MCP_CALLS, Latencies, formation_time, point_perf
from analysis.summary import point_label

NICE_BINS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
MAX_BINS = 40
MAX_CDF_POINTS = 4000  # larger samples are drawn through evenly spaced order statistics
MAX_OVERLAY = 12  # CDFs on one axes (a sweep's points)
PNG_METADATA = {"Software": None}  # keep matplotlib's version out of the file

LOOKUP_CDF = "lookup_latency_cdf.png"
LOOKUP_SUCCESS = "lookup_success.png"
LIVE_NODES = "live_nodes.png"
FORMATION = "formation.png"
GET_SUCCESS = "get_success.png"
SCALING = "scaling.png"
SWEEP_CDF = "sweep_lookup_cdf.png"
COMPARE_CDF = "compare_lookup_cdf.png"
DELIVERY_CDF = "delivery_latency_cdf.png"
DELIVERY_RATE = "delivery_rate.png"
MESH_DEGREE = "mesh_degree.png"
SWEEP_DELIVERY_CDF = "sweep_delivery_cdf.png"
COMPARE_DELIVERY_CDF = "compare_delivery_cdf.png"
MCP_CDF = "mcp_latency_cdf.png"
COMPARE_MCP_CDF = "compare_mcp_cdf.png"


def _log_seconds(ax) -> None:
    """A log x axis labelled 0.1, 0.2, 0.5, 1, 2, 5 ... (matplotlib's default crowds in 3x10^-1 labels)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _figure(height: float = 3.6) -> tuple[Figure, object]:
    figure = Figure(figsize=(7.5, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata=PNG_METADATA)
    return path


def _skip(path: Path) -> None:
    path.unlink(missing_ok=True)
    return None


def _target(run: Run, name: str) -> float:
    for judged_name, target in judged(run.scenario, scaling=False):
        if judged_name == name:
            return target
    return SPECS[name].target


def bin_width(span: float) -> float:
    """The smallest 'nice' bin width (seconds) that cuts span into at most MAX_BINS bins."""
    for width in NICE_BINS:
        if span / width <= MAX_BINS:
            return float(width)
    return float(NICE_BINS[-1])


def binned(times: pd.Series, values: pd.Series, width: float) -> pd.DataFrame:
    """Per bin [start, start+width): count, mean and sum of values, bins with no rows left out."""
    frame = pd.DataFrame({"bin": np.floor(times.to_numpy(dtype=float) / width) * width,
                          "value": values.to_numpy(dtype=float)})
    grouped = frame.groupby("bin", sort=True)["value"].agg(["count", "mean", "sum"])
    return grouped.reset_index()


def _cdf(latencies: pd.Series) -> tuple[np.ndarray, np.ndarray, dict]:
    """Points of the empirical CDF (thinned for large samples) and n, p50, p99 of the full sample."""
    values = np.sort(latencies.astype("float64").dropna().to_numpy())
    if not len(values):
        return values, values, {"n": 0}
    summary = {"n": len(values), "p50": np.percentile(values, 50), "p99": np.percentile(values, 99)}
    shares = np.arange(1, len(values) + 1) / len(values)
    if len(values) > MAX_CDF_POINTS:
        keep = np.unique(np.linspace(0, len(values) - 1, MAX_CDF_POINTS).astype(int))
        values, shares = values[keep], shares[keep]
    return values, shares, summary


def _seconds(value: float) -> str:
    return f"{value * 1000:.4g} ms" if value < 1 else f"{value:.4g} s"


def _log_friendly(values: np.ndarray) -> bool:
    positive = values[values > 0]
    return len(positive) == len(values) and len(values) > 0 and positive.max() / positive.min() > 20


def _latency_cdf(run: Run, sample: Latencies, path: Path) -> Path | None:
    values, shares, summary = _cdf(sample.rows(run)["latency"])
    if not len(values):
        return _skip(path)
    figure, ax = _figure()
    ax.step(values, shares, where="post", color="tab:blue", label=f"{sample.plural} (n={summary['n']})")
    p50, p99 = summary["p50"], summary["p99"]
    ax.axvline(p50, color="tab:green", linestyle=":", label=f"p50 = {_seconds(p50)}")
    ax.axvline(p99, color="tab:orange", linestyle="--", label=f"p99 = {_seconds(p99)}")
    target = _target(run, sample.criterion)
    ax.axvline(target, color="tab:red", linewidth=1.5, label=f"target {_seconds(target)}")
    if _log_friendly(values):
        _log_seconds(ax)
    ax.set_xlabel(f"{sample.noun} latency (s)")
    ax.set_ylabel(f"share of {sample.plural}")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{run.name}: {sample.noun} latency CDF")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def plot_lookup_cdf(run: Run, out_dir: str | Path | None = None) -> Path | None:
    return _latency_cdf(run, LOOKUPS, Path(out_dir or run.path) / LOOKUP_CDF)


def plot_delivery_cdf(run: Run, out_dir: str | Path | None = None) -> Path | None:
    """Publish-to-first-reception latency at subscribers up since delivery_settle before the publish."""
    return _latency_cdf(run, DELIVERIES, Path(out_dir or run.path) / DELIVERY_CDF)


def plot_mcp_cdf(run: Run, out_dir: str | Path | None = None) -> Path | None:
    """End-to-end latency of local agents' MCP tool calls (analysis.mcp)."""
    return _latency_cdf(run, MCP_CALLS, Path(out_dir or run.path) / MCP_CDF)


def _twin(ax, label: str):
    """A second y axis (grey, integer ticks) on the right, drawn behind the first."""
    twin = ax.twinx()
    twin.set_ylabel(label, color="grey")
    twin.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    return twin


def _share_limits(ax, target: float, lowest: float) -> None:
    """A share axis from a little below the lower of the target and the lowest value up to just above 1."""
    low = max(-0.02, min(target - 0.05, lowest - 0.02))
    ax.set_ylim(low, 1 + (1 - low) * 0.04)


def _success_over_time(run: Run, kind: str, criterion: str, path: Path, title: str) -> Path | None:
    rows = run.of_kind(kind)
    if rows.empty:
        return _skip(path)
    width = bin_width(float(run.events["time"].max()) or 1.0)
    bins = binned(rows["time"], (rows["ok"].fillna(0) == 1).astype(float), width)
    figure, ax = _figure()
    ax.plot(bins["bin"] + width / 2, bins["mean"], "o-", color="tab:blue", markersize=3,
            label=f"share ok per {width:g} s bin")
    target = _target(run, criterion)
    ax.axhline(target, color="tab:red", linewidth=1, linestyle="--", label=f"target {target:g}")
    ax.set_xlabel(f"{clock(run.runtime)} time (s)")
    ax.set_ylabel("share ok")
    _share_limits(ax, target, float(bins["mean"].min()))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    counts = _twin(ax, f"{kind}s per bin")
    counts.bar(bins["bin"], bins["count"], width=width, align="edge", color="grey", alpha=0.15)
    return _save(figure, path)


def plot_lookup_success(run: Run, out_dir: str | Path | None = None) -> Path | None:
    path = Path(out_dir or run.path) / LOOKUP_SUCCESS
    return _success_over_time(run, "lookup", "lookup_success", path, f"{run.name}: lookup success over time")


def plot_get_success(run: Run, out_dir: str | Path | None = None) -> Path | None:
    path = Path(out_dir or run.path) / GET_SUCCESS
    return _success_over_time(run, "get", "put_get_success", path, f"{run.name}: get success over time")


def plot_delivery_rate(run: Run, out_dir: str | Path | None = None) -> Path | None:
    """Delivery rate of the messages published in each time bin, with the live nodes on a second axis."""
    path = Path(out_dir or run.path) / DELIVERY_RATE
    rows = run.of_kind("delivery")
    if rows.empty:
        return _skip(path)
    width = bin_width(float(run.events["time"].max()) or 1.0)
    reached = binned(rows["time"], rows["value"].astype("float64"), width)
    eligible = binned(rows["time"], rows["count"].astype("float64"), width)
    rate = (reached["sum"] / eligible["sum"].where(eligible["sum"] > 0)).to_numpy()
    figure, ax = _figure()
    ax.plot(reached["bin"] + width / 2, rate, "o-", color="tab:blue", markersize=3,
            label=f"delivery rate of the messages published per {width:g} s bin")
    target = _target(run, "delivery_rate")
    ax.axhline(target, color="tab:red", linewidth=1, linestyle="--", label=f"target {target:g}")
    ax.set_xlabel(f"publish time, {clock(run.runtime)} (s)")
    ax.set_ylabel("delivery rate")
    _share_limits(ax, target, float(np.nanmin(rate)) if np.isfinite(rate).any() else target)
    ax.set_title(f"{run.name}: delivery rate over time")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    live = run.of_kind("live")
    if len(live):
        _twin(ax, "live nodes").plot(live["time"], live["value"], color="grey", alpha=0.6, drawstyle="steps-post")
    return _save(figure, path)


def plot_mesh_degree(run: Run, out_dir: str | Path | None = None) -> Path | None:
    """Mean mesh degree of the live subscribed nodes, and how many have a mesh below d_lo, over time."""
    path = Path(out_dir or run.path) / MESH_DEGREE
    rows = run.of_kind("mesh")
    if rows.empty:
        return _skip(path)
    figure, ax = _figure()
    ax.plot(rows["time"], rows["value"], color="tab:blue", drawstyle="steps-post",
            label="mean mesh degree of live subscribed nodes")
    router = setting(run.scenario.get("pubsub"), "router")
    for key, style in (("d", "--"), ("d_lo", ":"), ("d_hi", ":")):
        value = setting(router, key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            ax.axhline(value, color="tab:red", linewidth=1, linestyle=style, label=f"{key} = {value:g}")
    ax.set_xlabel(f"{clock(run.runtime)} time (s)")
    ax.set_ylabel("mesh degree")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{run.name}: mesh degree")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    below = rows[rows["count"].notna()]
    if len(below):
        counts = _twin(ax, "nodes with a mesh below d_lo")
        counts.plot(below["time"], below["count"].astype("float64"), color="grey", alpha=0.6,
                    drawstyle="steps-post")
        counts.set_ylim(bottom=0)
    return _save(figure, path)


def plot_live_nodes(run: Run, out_dir: str | Path | None = None) -> Path | None:
    path = Path(out_dir or run.path) / LIVE_NODES
    live = run.of_kind("live")
    if live.empty:
        return _skip(path)
    figure = Figure(figsize=(7.5, 4.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1.4))
    top.plot(live["time"], live["value"], color="tab:blue", drawstyle="steps-post")
    top.set_ylabel("live nodes")
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_title(f"{run.name}: live nodes")
    top.grid(True, alpha=0.3)
    width = bin_width(float(run.events["time"].max()) or 1.0)
    downs, ups = run.of_kind("down"), run.of_kind("up")
    for rows, sign, colour, label in ((ups, 1, "tab:green", "up"), (downs, -1, "tab:red", "down")):
        if rows.empty:
            continue
        bins = binned(rows["time"], pd.Series(np.ones(len(rows))), width)
        bottom.bar(bins["bin"], sign * bins["count"], width=width, align="edge", color=colour,
                   alpha=0.7, label=f"{label} per {width:g} s")
    bottom.axhline(0, color="black", linewidth=0.5)
    bottom.set_ylabel("events")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_xlabel(f"{clock(run.runtime)} time (s)")
    bottom.grid(True, alpha=0.3)
    if not (ups.empty and downs.empty):
        bottom.legend(loc="upper right", fontsize="small")
    return _save(figure, path)


def plot_formation(run: Run, out_dir: str | Path | None = None) -> Path | None:
    path = Path(out_dir or run.path) / FORMATION
    rows = run.of_kind("formation")
    if rows.empty:
        return _skip(path)
    figure, ax = _figure()
    # Rows without an ok cell are routing-table samples; rows with one also report the lookup check.
    samples = rows[rows["ok"].isna()]
    samples = samples if len(samples) else rows
    ax.plot(samples["time"], samples["value"], color="tab:blue", drawstyle="steps-post",
            label="routing tables complete (share of checked nodes)")
    checks = rows[rows["ok"].notna()]
    for ok, marker, colour, label in ((1, "o", "tab:green", "lookup check agreed"),
                                      (0, "x", "tab:red", "lookup check disagreed")):
        subset = checks[checks["ok"] == ok]
        if len(subset):
            ax.plot(subset["time"], subset["value"], marker, markersize=4, color=colour, label=label)
    reached = formation_time(run)
    if reached is not None:
        ax.axvline(reached, color="tab:green", linestyle="--", label=f"formed at {reached:.1f} s")
    target = _target(run, "formation_time")
    ax.axvline(target, color="tab:red", linewidth=1.5, label=f"target {target:g} s")
    ax.set_xlabel(f"{clock(run.runtime)} time (s)")
    ax.set_ylabel("share of checked nodes")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(f"{run.name}: network formation" + ("" if reached is not None else " (never reached)"))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return _save(figure, path)


def plot_scaling(sweep: Run, out_dir: str | Path | None = None) -> Path | None:
    """Wall time per message against node count, one line per scoring setting (sweeps over node counts)."""
    path = Path(out_dir or sweep.path) / SCALING
    lines: dict[object, tuple[list, list]] = {}
    for point in sweep.points:
        value = point_perf(point)["us_per_message"]
        if value is not None and point.manifest.get("nodes") is not None:
            nodes, per_message = lines.setdefault(point.manifest.get("scoring"), ([], []))
            nodes.append(point.manifest["nodes"])
            per_message.append(value)
    if not lines or not judges_scaling(sweep):
        return _skip(path)
    figure, ax = _figure()
    for scoring, (nodes, per_message) in lines.items():
        suffix = f", scoring {'on' if scoring else 'off'}" if isinstance(scoring, bool) else ""
        ax.plot(nodes, per_message, "o-", label=f"wall time per simulated message{suffix}")
    nodes = sorted({n for line_nodes, _ in lines.values() for n in line_nodes})
    first = next(iter(lines.values()))[1][0]
    per_message = [value for _, values in lines.values() for value in values]
    target = _scaling_target(sweep)
    ax.axhline(first * target, color="tab:red", linestyle="--",
               label=f"target: {target:g} x the smallest point")
    if len(nodes) > 1 and max(nodes) / max(min(nodes), 1) >= 8:
        ax.set_xscale("log")
    ax.set_xlabel("nodes")
    ax.set_ylabel("µs of wall time per message")
    ax.set_ylim(0, max(*per_message, first * target) * 1.1)
    ax.set_xticks(nodes, [str(n) for n in nodes])
    ax.set_title(f"{sweep.name}: simulator scaling")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def _scaling_target(sweep: Run) -> float:
    targets = dict(judged(sweep.scenario, scaling=True))
    return targets.get("scaling", SPECS["scaling"].target)


def plot_cdf_overlay(runs: list[Run], labels: list[str], path: str | Path,
                     title: str = "lookup latency CDF", sample: Latencies = LOOKUPS,
                     gap: tuple[float, float, float] | None = None) -> Path | None:
    """Latency CDFs (lookups unless told otherwise) of several runs on one axes, one labelled curve per run;
    ``gap`` (latency, one CDF there, the other) marks where two CDFs are furthest apart (the KS distance)."""
    path = Path(path)
    pairs = zip(runs, labels, strict=True)
    curves = [(_cdf(sample.rows(run)["latency"]), label) for run, label in pairs]
    curves = [(curve, label) for curve, label in curves if len(curve[0])]
    if not curves:
        return _skip(path)
    figure, ax = _figure(4.0)
    all_values = np.concatenate([values for (values, _, _), _ in curves])
    for (values, shares, summary), label in curves:
        ax.step(values, shares, where="post",
                label=f"{label} (n={summary['n']}, p99 {_seconds(summary['p99'])})")
    target = _target(runs[0], sample.criterion)
    ax.axvline(target, color="tab:red", linewidth=1.5, label=f"target {_seconds(target)}")
    ax.axhline(0.99, color="grey", linewidth=0.8, linestyle=":")
    if gap is not None:
        where, low, high = gap
        ax.vlines(where, min(low, high), max(low, high), color="black", linewidth=2.5,
                  label=f"KS distance {abs(high - low):.3f} at {_seconds(where)}")
    if _log_friendly(all_values):
        _log_seconds(ax)
    ax.set_xlabel(f"{sample.noun} latency (s)")
    ax.set_ylabel(f"share of {sample.plural}")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def run_plots(run: Run, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Every plot of a single run that has data, by name, in a fixed order."""
    makers = (
        ("lookup_cdf", plot_lookup_cdf),
        ("lookup_success", plot_lookup_success),
        ("get_success", plot_get_success),
        ("live_nodes", plot_live_nodes),
        ("formation", plot_formation),
        ("delivery_cdf", plot_delivery_cdf),
        ("delivery_rate", plot_delivery_rate),
        ("mesh_degree", plot_mesh_degree),
        ("mcp_cdf", plot_mcp_cdf),
    )
    paths = {}
    for name, maker in makers:
        path = maker(run, out_dir)
        if path is not None:
            paths[name] = path
    return paths


def sweep_plots(sweep: Run, out_dir: str | Path | None = None) -> dict[str, Path]:
    paths = {}
    scaling = plot_scaling(sweep, out_dir)
    if scaling is not None:
        paths["scaling"] = scaling
    if not sweep.points or len(sweep.points) > MAX_OVERLAY:  # a grid's runs: its plots per parameter instead
        return paths
    labels = [point_label(point) for point in sweep.points]
    out = Path(out_dir or sweep.path)
    for name, file, sample in (("sweep_cdf", SWEEP_CDF, LOOKUPS),
                               ("sweep_delivery_cdf", SWEEP_DELIVERY_CDF, DELIVERIES)):
        overlay = plot_cdf_overlay(sweep.points, labels, out / file,
                                   f"{sweep.name}: {sample.noun} latency CDF per sweep point", sample)
        if overlay is not None:
            paths[name] = overlay
    return paths
