"""summary.json, plots, report.md and report.html for a run, a sweep, or a comparison of two runs."""

from __future__ import annotations

import os
from pathlib import Path

from analysis import plots
from analysis.criteria import (
    FORMATION_DEFINITION,
    RUN_CRITERIA,
    SPECS,
    judged,
    summarise,
    verdict,
    write_summary,
)
from analysis.load import AnalysisError, Run, load_run
from analysis.render import Doc, to_html, to_markdown

MISSING = "—"

# summary["stats"] key -> (label, format)
STATS = {
    "lookups": ("lookups", "count"),
    "lookup_latency_p50": ("lookup latency p50", "s"),
    "lookup_latency_p90": ("lookup latency p90", "s"),
    "lookup_latency_p99": ("lookup latency p99", "s"),
    "lookup_latency_mean": ("lookup latency mean", "s"),
    "lookup_hops_mean": ("lookup hops, mean", "number"),
    "lookup_hops_p50": ("lookup hops, median", "number"),
    "lookup_rpcs_mean": ("RPCs per lookup, mean", "number"),
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

CAPTIONS = {
    "lookup_cdf": "Share of lookups finished within a given latency, with the median, the 99th percentile "
                  "and the target marked.",
    "lookup_success": "Share of lookups per time bin that found the closest live peer, against the target "
                      "(grey bars: lookups per bin).",
    "get_success": "Share of gets per time bin that returned the newest stored version, against the target "
                   "(grey bars: gets per bin).",
    "live_nodes": "Live nodes over simulated time, with joins and rejoins (up) and departures (down) "
                  "counted per time bin below.",
    "formation": "Routing-table completeness: share of checked live nodes whose every bucket holds "
                 "min(k, live peers in its range) live peers; dots mark lookup checks that agreed, lines "
                 "the formation time and its target.",
    "scaling": "Wall-clock time per simulated message at each node count; the dashed line is the scaling "
               "target relative to the smallest point.",
    "sweep_cdf": "Lookup latency CDF of every sweep point on one axes.",
    "compare_cdf": "Lookup latency CDFs of both runs on one axes.",
}


def fmt(value: object, unit: str) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
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


def _criteria_table(doc: Doc, summary: dict) -> None:
    rows = [[c["name"], fmt(c["value"], c["unit"]), target_text(c), "PASS" if c["pass"] else "FAIL"]
            for c in summary.get("criteria") or []]
    if rows:
        doc.table(["criterion", "value", "target", "result"], rows)


def _write(doc: Doc, out_dir: Path) -> list[Path]:
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(to_markdown(doc), encoding="utf-8")
    page.write_text(to_html(doc), encoding="utf-8")
    return [md, page]


def _title(summary: dict) -> str:
    nodes = summary.get("nodes")
    nodes = ", ".join(str(n) for n in nodes) if isinstance(nodes, list) else nodes
    return f"{summary['scenario']}: seed {summary.get('seed')}, {nodes} nodes, {summary.get('runtime')}"


def write_report(directory: str | Path) -> tuple[dict, list[Path]]:
    """Regenerate summary.json, the plots, report.md and report.html of a run or sweep directory in place.

    Returns the summary and the paths written (summary.json, report.md, report.html, then the PNGs).
    """
    run = load_run(directory)
    if run.is_sweep:
        return _write_sweep_report(run)
    return _write_run_report(run)


def _write_run_report(run: Run) -> tuple[dict, list[Path]]:
    summary = summarise(run)
    summary_path = write_summary(run, summary)
    pngs = plots.run_plots(run)
    doc = Doc(f"Report — {_title(summary)}")
    passed, text = verdict_text(summary)
    doc.verdict(passed, text)
    _criteria_table(doc, summary)
    notes = _notes(run)
    if notes:
        doc.bullets(notes)
    doc.heading("Statistics")
    simulated = summary.get("simulated_seconds")
    doc.para(f"Simulated time covered by events: {fmt(simulated, 's')}.")
    doc.table(["statistic", "value"],
              [[STATS[key][0], fmt(value, STATS[key][1])] for key, value in summary["stats"].items()])
    _plots_section(doc, pngs, run.path)
    _definitions(doc, run, sweep=False)
    _run_info(doc, run)
    return summary, [summary_path, *_write(doc, run.path), *pngs.values()]


def _notes(run: Run) -> list[str]:
    notes = []
    status = run.manifest.get("status")
    if status not in (None, "completed"):
        notes.append(f"The run did not complete (status: {status}): the figures cover only the simulated time "
                     "before it stopped.")
    if run.partial_line_dropped:
        notes.append("events.csv ended with an incomplete line (the run stopped mid-write); it was ignored.")
    if run.missing_points:
        notes.append("Sweep points listed but not found (not run, or still running): "
                     + ", ".join(run.missing_points) + ".")
    return notes


def _plots_section(doc: Doc, pngs: dict[str, Path], base: Path) -> None:
    doc.heading("Plots")
    if not pngs:
        doc.para("No plots: the events hold no data to plot.")
    for name, path in pngs.items():
        doc.image(_rel(path, base), name.replace("_", " "), CAPTIONS[name])


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _write_sweep_report(sweep: Run) -> tuple[dict, list[Path]]:
    for point in sweep.points:
        _write_run_report(point)
    summary = summarise(sweep)
    summary_path = write_summary(sweep, summary)
    pngs = plots.sweep_plots(sweep)
    doc = Doc(f"Sweep report — {_title(summary)}")
    passed, text = verdict_text(summary)
    doc.verdict(passed, text)
    _criteria_table(doc, summary)
    notes = _notes(sweep)
    if notes:
        doc.bullets(notes)
    doc.heading("Points")
    rows = []
    for p in summary["points"]:
        rows.append([
            fmt(p["nodes"], "count"), fmt(p["wall_seconds"], "s"), fmt(p["messages"], "count"),
            fmt(p["messages_per_wall_second"], "count"),
            MISSING if p["us_per_message"] is None else f"{fmt_micro(p['us_per_message'])} µs",
            MISSING if p["peak_rss_mb"] is None else f"{p['peak_rss_mb']:.0f} MB",
            fmt(p["lookup_p99"], "s"), fmt(p["lookup_success"], "share"),
            MISSING if p["pass"] is None else ("PASS" if p["pass"] else "FAIL"),
        ])
    doc.table(["nodes", "wall", "messages", "msg/s", "per message", "peak RSS", "lookup p99",
               "lookup success", "point criteria"], rows)
    doc.links([(f"{p['nodes']} nodes: {p['dir']}/report.html", f"{p['dir']}/report.html")
               for p in summary["points"]])
    _plots_section(doc, pngs, sweep.path)
    _definitions(doc, sweep, sweep=True)
    _run_info(doc, sweep)
    return summary, [summary_path, *_write(doc, sweep.path), *pngs.values()]


# --- Model and definitions -------------------------------------------------------------------------------


def _definitions(doc: Doc, run: Run, sweep: bool) -> None:
    doc.heading("Model and definitions")
    doc.heading("Criteria", 3)
    judged_names = dict(judged(run.scenario, sweep))
    names = ("scaling", *RUN_CRITERIA) if sweep else RUN_CRITERIA
    items = []
    for name in names:
        spec = SPECS[name]
        target = judged_names.get(name, spec.target)
        state = "judged" if name in judged_names else "not judged in this scenario"
        worst = "Worst over the sweep points. " if sweep and name != "scaling" else ""
        items.append(f"`{name}` ({spec.op} {fmt(target, spec.unit)}, {state}): {worst}{spec.description}")
    doc.bullets(items)
    doc.para("Formation, as defined in docs/results.md:")
    doc.quote(FORMATION_DEFINITION)
    if not sweep:
        doc.para("Percentiles interpolate linearly between the sorted samples; shares count rows with "
                 "`ok == 1` among all rows of that kind. Messages and bytes are the last `traffic` sample.")
    doc.heading("Network model", 3)
    doc.bullets(model_lines(run.scenario))


def _get(section: object, key: str) -> object:
    return section.get(key) if isinstance(section, dict) else None


def _given(value: object, suffix: str = "") -> str:
    if value is None:
        return "not given"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value}{suffix}"


def _distribution(spec: object) -> str:
    if not isinstance(spec, dict):
        return _given(spec)
    params = ", ".join(f"{key} {_given(value)}" for key, value in spec.items() if key != "distribution")
    return f"{spec.get('distribution', '?')} ({params})" if params else str(spec.get("distribution"))


def _shares(spec: object) -> str:
    if not isinstance(spec, dict) or not spec:
        return _given(spec)
    return ", ".join(f"{key} {value:.0%}" if isinstance(value, int | float) else f"{key} {value}"
                     for key, value in spec.items())


def model_lines(scenario: dict) -> list[str]:
    """Human-readable network model assumptions from a resolved scenario."""
    nodes, network, dht = scenario.get("nodes"), scenario.get("network"), scenario.get("dht")
    latency, churn, workload = _get(network, "latency"), scenario.get("churn"), scenario.get("workload")
    model = _get(latency, "model")
    latency_text = _given(model)
    if model == "matrix":
        latency_text += f" (RTT matrix {_given(_get(latency, 'matrix'))})"
    elif model == "regions":
        latency_text += f" (built-in RTT table; regions: {_shares(_get(nodes, 'regions'))})"
    access = _get(latency, "access")
    if isinstance(access, list | tuple) and len(access) == 2:
        access_text = (f"uniform between {access[0] * 1000:g} and {access[1] * 1000:g} ms one-way, "
                       "drawn once per node")
    else:
        access_text = _given(access)
    lines = [
        f"Nodes: {_given(_get(nodes, 'count'))} ({_given(_get(nodes, 'bootstrap'))} bootstrap, joining "
        f"uniformly over the first {_given(_get(nodes, 'join_over'), ' s')}); warm-up "
        f"{_given(scenario.get('warmup'), ' s')}, measured duration "
        f"{_given(scenario.get('duration'), ' s')}.",
        f"Latency model: {latency_text}.",
        f"Jitter: {_given(_get(latency, 'jitter'))} (relative standard deviation of each message's one-way "
        "latency).",
        f"Access latency: {access_text}.",
        f"Loss: {_given(_get(network, 'loss'))} (probability that a message is lost).",
    ]
    if isinstance(churn, dict) and churn:
        lines.append(
            f"Churn: session lengths {_distribution(churn.get('session'))}, offline times "
            f"{_distribution(churn.get('offline'))}, graceful share of departures "
            f"{_given(churn.get('graceful'))} (the rest crash silently); times in seconds."
        )
    else:
        lines.append("Churn: none (static network).")
    dht_parts = [f"k = {_given(_get(dht, 'k'))}", f"alpha = {_given(_get(dht, 'alpha'))}",
                 f"d = {_given(_get(dht, 'disjoint_paths'))} disjoint paths"]
    for key, label, unit in (("request_timeout", "request timeout", " s"),
                             ("slow_after", "lookups stop waiting for a peer after", " s"),
                             ("record_ttl", "record TTL", " s"),
                             ("republish_interval", "republish every", " s"),
                             ("refresh_interval", "refresh every", " s"), ("wire", "wire", "")):
        if _get(dht, key) is not None:
            dht_parts.append(f"{label} {_get(dht, key)}{unit}")
    lines.append("DHT: " + ", ".join(dht_parts) + ".")
    if isinstance(workload, dict):
        lines.append(
            f"Workload per live node per simulated minute: {_given(workload.get('lookup'))} lookups, "
            f"{_given(workload.get('put'))} puts, {_given(workload.get('get'))} gets; values of "
            f"{_given(workload.get('value_size'), ' bytes')}."
        )
    nat = [f"{key} {_shares(_get(nodes, key))}" for key in ("nat", "address_families", "transition")
           if _get(nodes, key)]
    if nat:
        lines.append("Addressing: " + "; ".join(nat) + ".")
    return lines


def _run_info(doc: Doc, run: Run) -> None:
    manifest = run.manifest
    doc.heading("Run", 3)
    items = [f"Directory: {run.path.name}"]
    for key in ("started_at", "host", "versions"):
        if key in manifest:
            value = manifest[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            items.append(f"{key.replace('_', ' ').capitalize()}: {value}")
    perf = manifest.get("perf")
    if isinstance(perf, dict) and perf:
        by_type = perf.get("messages_by_type")
        items.append("Performance (wall clock, not part of summary.json): "
                     + ", ".join(f"{key} {value}" for key, value in perf.items() if key != "messages_by_type"))
        if isinstance(by_type, dict) and by_type:
            items.append("Messages by type: " + ", ".join(f"{kind} {count:,}" for kind, count in by_type.items()))
    doc.bullets(items)


# --- Comparison ------------------------------------------------------------------------------------------


def run_labels(a: Path, b: Path) -> tuple[str, str]:
    if a.resolve().name != b.resolve().name:
        return a.resolve().name, b.resolve().name
    pa, pb = a.resolve(), b.resolve()
    la, lb = f"{pa.parent.name}/{pa.name}", f"{pb.parent.name}/{pb.name}"
    return (la, lb) if la != lb else ("A", "B")


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _delta(a: object, b: object, unit: str) -> str:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float) \
            or not isinstance(b, int | float):
        return MISSING
    diff = b - a
    sign = "+" if diff >= 0 else "-"
    if unit == "share":
        return f"{sign}{abs(diff) * 100:.2f} pp"
    return sign + fmt(abs(diff), unit)


def compare_runs(dir1: str | Path, dir2: str | Path, out_dir: str | Path) -> tuple[list[dict], list[Path]]:
    """Write a side-by-side comparison of two runs into out_dir (report.md, report.html, overlaid CDF).

    Returns the two summaries and the paths written.
    """
    first, second = load_run(dir1), load_run(dir2)
    for run in (first, second):
        if run.is_sweep:
            raise AnalysisError(f"{run.path}: is a sweep; compare two runs (for example two sweep points)")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnalysisError(f"{out}: cannot create ({exc.strerror})") from None
    a, b = summarise(first), summarise(second)
    la, lb = run_labels(first.path, second.path)
    doc = Doc(f"Comparison — {la} vs {lb}")
    doc.bullets([f"{la}: {_title(a)} ({_rel(first.path, out)})",
                 f"{lb}: {_title(b)} ({_rel(second.path, out)})"])
    verdicts = [f"{label}: {verdict_text(s)[1]}" for label, s in ((la, a), (lb, b))]
    doc.verdict(verdict(a) is not False and verdict(b) is not False, " · ".join(verdicts))
    by_name = [{c["name"]: c for c in s["criteria"]} for s in (a, b)]
    names = [name for name in SPECS if name in by_name[0] or name in by_name[1]]
    rows = []
    for name in names:
        ca, cb = by_name[0].get(name), by_name[1].get(name)
        targets = {target_text(c) for c in (ca, cb) if c}
        row = [name, " / ".join(sorted(targets))]
        for c in (ca, cb):
            row += [fmt(c["value"], c["unit"]), "PASS" if c["pass"] else "FAIL"] if c else [MISSING, MISSING]
        rows.append(row)
    if rows:
        doc.table(["criterion", "target", la, "", lb, ""], rows)
    doc.heading("Statistics")
    doc.table(["statistic", la, lb, f"{lb} − {la}"],
              [[label, fmt(a["stats"].get(key), unit), fmt(b["stats"].get(key), unit),
                _delta(a["stats"].get(key), b["stats"].get(key), unit)]
               for key, (label, unit) in STATS.items()])
    overlay = plots.plot_cdf_overlay([first, second], [la, lb], out / plots.COMPARE_CDF,
                                     f"lookup latency CDF: {la} vs {lb}")
    _plots_section(doc, {"compare_cdf": overlay} if overlay else {}, out)
    doc.heading("Differences in scenario and versions")
    flat = [_flatten({"seed": s.manifest.get("seed"), "nodes": s.manifest.get("nodes"),
                      "runtime": s.manifest.get("runtime"), "scenario": s.scenario,
                      "versions": s.manifest.get("versions")}) for s in (first, second)]
    keys = sorted(set(flat[0]) | set(flat[1]))
    diff_rows = [[key, _given(flat[0].get(key)), _given(flat[1].get(key))] for key in keys
                 if flat[0].get(key) != flat[1].get(key)]
    if diff_rows:
        doc.table(["setting", la, lb], diff_rows)
    else:
        doc.para("Same scenario, seed and versions.")
    links = [(f"{label} report", _rel(run.path / "report.html", out)) for label, run in
             ((la, first), (lb, second)) if (run.path / "report.html").exists()]
    if links:
        doc.links(links)
    doc.heading(f"Network model of {la}", 3)
    doc.bullets(model_lines(first.scenario))
    paths = _write(doc, out)
    return [a, b], [*paths, *([overlay] if overlay else [])]
