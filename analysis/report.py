"""summary.json, plots, report.md and report.html of a run or a sweep (comparisons: analysis.compare)."""

from __future__ import annotations

from pathlib import Path

from analysis import plots
from analysis.attacks import attack_section
from analysis.criteria import judged, judges_scaling
from analysis.definitions import (
    DELIVERY_CRITERIA,
    DELIVERY_DEFINITION,
    FORMATION_DEFINITION,
    RUN_CRITERIA,
    SPECS,
    clock,
)
from analysis.formats import (
    MCP_PLOTS,
    MISSING,
    PUBSUB_NOTE,
    PUBSUB_PLOTS,
    PUBSUB_STATS,
    STATS,
    caption,
    fmt,
    fmt_micro,
    given,
    plots_section,
    rel,
    target_text,
    time_covered,
    title,
    verdict_text,
)
from analysis.load import Run, load_run, setting
from analysis.mcp import mcp_section
from analysis.model import model_lines
from analysis.nat import nat_comparison, nat_section
from analysis.render import Doc, write_doc
from analysis.stats import run_has_pubsub
from analysis.summary import summarise, write_summary
from analysis.sweep import grid_section, write_table
from analysis.transition import transition_section

# A statistic group whose count is zero (no lookups, puts or gets in the workload) is left out.
_GROUPS = {"lookups": "lookup_", "puts": "put_", "gets": "get_", "user_lookups": "user_lookup_",
           "find_peers": "find_peer_", "provides": "provide_", "find_providers": "find_providers_"}


def _measured(stats: dict) -> dict:
    skipped = [prefix for count, prefix in _GROUPS.items() if stats.get(count) == 0]
    return {key: value for key, value in stats.items()
            if not any(key == count or key.startswith(prefix) for count, prefix in _GROUPS.items()
                       if prefix in skipped)}


def _criteria_table(doc: Doc, summary: dict) -> None:
    rows = [[c["name"], fmt(c["value"], c["unit"]), target_text(c), "PASS" if c["pass"] else "FAIL"]
            for c in summary.get("criteria") or []]
    if rows:
        doc.table(["criterion", "value", "target", "result"], rows)


def write_report(directory: str | Path, points: bool = True) -> tuple[dict, list[Path]]:
    """Regenerate summary.json, the plots, report.md and report.html of a run or sweep directory in place
    (and of a sweep's points unless ``points`` is false).

    Returns the summary and the paths written (summary.json, report.md, report.html, then the PNGs).
    """
    run = load_run(directory)
    if run.is_sweep:
        return _write_sweep_report(run, points)
    return _write_run_report(run)


def _write_run_report(run: Run) -> tuple[dict, list[Path]]:
    summary = summarise(run)
    summary_path = write_summary(run, summary)
    pngs = plots.run_plots(run)
    doc = Doc(f"Report — {title(summary)}")
    passed, text = verdict_text(summary)
    doc.verdict(passed, text)
    _criteria_table(doc, summary)
    notes = _notes(run)
    if notes:
        doc.bullets(notes)
    doc.heading("Statistics")
    doc.para(time_covered(run.runtime, summary.get("simulated_seconds")))
    stats = _measured(summary["stats"])
    if "pubsub" in summary and stats.get("formation_time") is None:
        stats.pop("formation_time", None)  # formation is a DHT matter; a pub-sub run may not join the DHT
    doc.table(["statistic", "value"], [[STATS[key][0], fmt(value, STATS[key][1])] for key, value in stats.items()])
    if "pubsub" in summary:
        _pubsub_section(doc, run, summary["pubsub"], {n: p for n, p in pngs.items() if n in PUBSUB_PLOTS})
    if "mcp" in summary:
        mcp_section(doc, run, summary["mcp"], {n: p for n, p in pngs.items() if n in MCP_PLOTS})
    transition_section(doc, run.path, run.events)
    nat_pngs = nat_section(doc, run.path, run.events)
    plots_section(doc, {n: p for n, p in pngs.items() if n not in PUBSUB_PLOTS + MCP_PLOTS}, run.path,
                  run.runtime)
    _definitions(doc, run, sweep=False)
    _run_info(doc, run)
    return summary, [summary_path, *write_doc(doc, run.path), *pngs.values(), *nat_pngs]


def _delivery_window(scenario: dict) -> str:
    measure = scenario.get("measure")
    return (f"In this scenario `delivery_settle` is {given(setting(measure, 'delivery_settle'), ' s')} and "
            f"`delivery_deadline` is {given(setting(measure, 'delivery_deadline'), ' s')}.")


def _pubsub_section(doc: Doc, run: Run, stats: dict, pngs: dict[str, Path]) -> None:
    doc.heading("Pub-sub delivery")
    doc.quote(DELIVERY_DEFINITION)
    doc.para(_delivery_window(run.scenario))
    doc.table(["statistic", "value"],
              [[PUBSUB_STATS[key][0], fmt(value, PUBSUB_STATS[key][1])] for key, value in stats.items()])
    doc.para(PUBSUB_NOTE)
    for name, path in pngs.items():
        doc.image(rel(path, run.path), name.replace("_", " "), caption(name, run.runtime))


def _notes(run: Run) -> list[str]:
    notes = []
    status = run.manifest.get("status")
    if status not in (None, "completed"):
        notes.append(f"The run did not complete (status: {status}): the figures cover only the "
                     f"{clock(run.runtime)} time before it stopped.")
    perf = run.manifest.get("perf")
    saturated = perf.get("host_cpu_saturated_seconds") if isinstance(perf, dict) else None
    if isinstance(saturated, int | float) and saturated > 0:
        notes.append(f"The host's CPUs were saturated (at least {perf.get('host_cpu_saturated_at_percent')} % busy) "
                     f"for {saturated:g} s of "
                     f"the run, the last time at {perf.get('host_cpu_saturated_last_at')} s: real nodes then "
                     "waited for a CPU, so latencies and timeouts in that time are partly the host's, not the "
                     "network's. Fewer nodes or more cores give cleaner figures.")
    notes += [f"Damaged results: {line}." for line in run.damage]
    if run.missing_points:
        notes.append("Sweep points listed but not found (not run, or still running): "
                     + ", ".join(run.missing_points) + ".")
    return notes


def _write_sweep_report(sweep: Run, points: bool = True) -> tuple[dict, list[Path]]:
    for point in sweep.points if points else ():
        _write_run_report(point)
    summary = summarise(sweep)
    summary_path = write_summary(sweep, summary)
    pngs = plots.sweep_plots(sweep)
    doc = Doc(f"Sweep report — {title(summary)}")
    passed, text = verdict_text(summary)
    doc.verdict(passed, text)
    _criteria_table(doc, summary)
    notes = _notes(sweep)
    if notes:
        doc.bullets(notes)
    grid_pngs = grid_section(doc, sweep, summary) if "grid" in summary or "failed" in summary else []
    table = write_table(sweep)
    doc.heading("Points")
    rows = []
    for p in summary["points"]:
        rows.append([
            p["label"], fmt(p["nodes"], "count"), fmt(p["wall_seconds"], "s"), fmt(p["messages"], "count"),
            fmt(p["messages_per_wall_second"], "count"),
            MISSING if p["us_per_message"] is None else f"{fmt_micro(p['us_per_message'])} µs",
            MISSING if p["peak_rss_mb"] is None else f"{p['peak_rss_mb']:.0f} MB",
            fmt(p["lookup_p99"], "s"), fmt(p["lookup_success"], "share"),
            _pass(p["pass"]),
        ])
    doc.table(["point", "nodes", "wall", "messages", "msg/s", "per message", "peak RSS", "lookup p99",
               "lookup success", "point criteria"], rows)
    _delivery_points(doc, sweep, summary["points"])
    nat_comparison(doc, summary["points"])
    attack_pngs = attack_section(doc, sweep)
    doc.links([(f"{p['label']}: {p['dir']}/report.html", f"{p['dir']}/report.html")
               for p in summary["points"]])
    plots_section(doc, pngs, sweep.path, sweep.runtime)
    _definitions(doc, sweep, sweep=True)
    _run_info(doc, sweep)
    return summary, [summary_path, *write_doc(doc, sweep.path), table, *pngs.values(), *grid_pngs, *attack_pngs]


def _pass(passed: bool | None) -> str:
    return MISSING if passed is None else ("PASS" if passed else "FAIL")


def _delivery_points(doc: Doc, sweep: Run, points: list[dict]) -> None:
    """Delivery criteria and statistics of every pub-sub sweep point side by side (e.g. scoring off / on)."""
    points = [p for p in points if "pubsub" in p]
    if not points:
        return
    doc.heading("Pub-sub delivery per point")
    rows = []
    for p in points:
        stats, criteria = p["pubsub"], {c["name"]: c for c in p["criteria"]}
        row = [p["label"], fmt(p["nodes"], "count"), fmt(stats["scoring"], "flag"),
               fmt(stats["attacker_share"], "share"), fmt(stats["messages_published"], "count")]
        for name, key in zip(DELIVERY_CRITERIA, ("delivery_rate", "delivery_latency_p99"), strict=True):
            row += [fmt(stats[key], SPECS[name].unit), _pass(criteria[name]["pass"] if name in criteria else None)]
        row += [fmt(stats["delivery_latency_p50"], "s"), fmt(stats["duplicates_per_delivery"], "number"),
                fmt(stats["control_share"], "share"), fmt(stats["control_bytes_per_delivery"], "bytes"),
                fmt(stats["mesh_degree_end"], "number")]
        rows.append(row)
    doc.table(["point", "nodes", "scoring", "attackers", "published", "delivery rate", "", "delivery p99", "",
               "delivery p50", "duplicates per delivery", "control share", "control per delivery",
               "mesh degree at end"], rows)
    doc.quote(DELIVERY_DEFINITION)
    doc.para(_delivery_window(sweep.scenario))
    doc.para(PUBSUB_NOTE)


def _definitions(doc: Doc, run: Run, sweep: bool) -> None:
    doc.heading("Model and definitions")
    doc.heading("Criteria", 3)
    scaling = sweep and judges_scaling(run)
    judged_names = dict(judged(run.scenario, scaling))
    pubsub = run_has_pubsub(run) or any(run_has_pubsub(point) for point in run.points)
    names = [name for name in RUN_CRITERIA if pubsub or name in judged_names or name not in DELIVERY_CRITERIA]
    names = ["scaling", *names] if sweep else names
    items = []
    for name in names:
        spec = SPECS[name]
        target = judged_names.get(name, spec.target)
        state = "judged" if name in judged_names else "not judged in this scenario"
        if name == "scaling" and not scaling:
            state = "not judged: the sweep has fewer than two node counts"
        worst = "Worst over the sweep points. " if sweep and name != "scaling" else ""
        items.append(f"`{name}` ({spec.op} {fmt(target, spec.unit)}, {state}): {worst}{spec.describe(run.runtime)}")
    doc.bullets(items)
    doc.para("Formation, as defined in docs/results.md:")
    doc.quote(FORMATION_DEFINITION)
    if not sweep:
        doc.para("Percentiles interpolate linearly between the sorted samples; shares count rows with "
                 "`ok == 1` among all rows of that kind. Messages and bytes are the last `traffic` sample.")
    doc.heading("Network model", 3)
    doc.bullets(model_lines(run.scenario, run.runtime))


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
