"""summary.json, plots, report.md and report.html for a run, a sweep, or a comparison of two runs."""

from __future__ import annotations

import os
from pathlib import Path

from analysis import plots
from analysis.criteria import (
    DELIVERY_CRITERIA,
    DELIVERY_DEFINITION,
    FORMATION_DEFINITION,
    RUN_CRITERIA,
    SPECS,
    judged,
    judges_scaling,
    run_has_pubsub,
    setting,
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
    "live_nodes": "Live nodes over simulated time, with joins and rejoins (up) and departures (down) "
                  "counted per time bin below.",
    "formation": "Routing-table completeness: share of checked live nodes whose every bucket holds "
                 "min(k, live peers in its range) live peers; dots mark lookup checks that agreed, lines "
                 "the formation time and its target.",
    "scaling": "Wall-clock time per simulated message at each node count; the dashed line is the scaling "
               "target relative to the smallest point.",
    "sweep_cdf": "Lookup latency CDF of every sweep point on one axes.",
    "compare_cdf": "Lookup latency CDFs of both runs on one axes.",
    "delivery_cdf": "Share of deliveries (first receptions at subscribers up since `delivery_settle` before "
                    "the publish) within a given latency of the publish, with the median, the 99th "
                    "percentile and the target marked.",
    "delivery_rate": "Delivery rate of the messages published in each time bin (eligible subscribers reached "
                     "within the deadline over eligible subscribers), against the target; grey: live nodes.",
    "mesh_degree": "Mean mesh degree of the live subscribed nodes over all their topics, with the router's "
                   "d, d_lo and d_hi; grey: nodes whose mesh for some topic is below d_lo.",
    "sweep_delivery_cdf": "Delivery latency CDF of every sweep point on one axes.",
    "compare_delivery_cdf": "Delivery latency CDFs of both runs on one axes.",
}


# A statistic group whose count is zero (no lookups, puts or gets in the workload) is left out.
_GROUPS = {"lookups": "lookup_", "puts": "put_", "gets": "get_"}


def _measured(stats: dict) -> dict:
    skipped = [prefix for count, prefix in _GROUPS.items() if stats.get(count) == 0]
    return {key: value for key, value in stats.items()
            if not any(key == count or key.startswith(prefix) for count, prefix in _GROUPS.items()
                       if prefix in skipped)}


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


def node_counts(summary: dict) -> object:
    """The node count of a run, or the distinct node counts of a sweep's points ("1000, 2000")."""
    nodes = summary.get("nodes")
    return ", ".join(str(n) for n in dict.fromkeys(nodes)) if isinstance(nodes, list) else nodes


def _title(summary: dict) -> str:
    nodes = node_counts(summary)
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
    stats = _measured(summary["stats"])
    if "pubsub" in summary and stats.get("formation_time") is None:
        stats.pop("formation_time", None)  # formation is a DHT matter; a pub-sub run may not join the DHT
    doc.table(["statistic", "value"], [[STATS[key][0], fmt(value, STATS[key][1])] for key, value in stats.items()])
    if "pubsub" in summary:
        _pubsub_section(doc, run, summary["pubsub"], {n: p for n, p in pngs.items() if n in PUBSUB_PLOTS})
    _plots_section(doc, {n: p for n, p in pngs.items() if n not in PUBSUB_PLOTS}, run.path)
    _definitions(doc, run, sweep=False)
    _run_info(doc, run)
    return summary, [summary_path, *_write(doc, run.path), *pngs.values()]


def _delivery_window(scenario: dict) -> str:
    measure = scenario.get("measure")
    return (f"In this scenario `delivery_settle` is {_given(setting(measure, 'delivery_settle'), ' s')} and "
            f"`delivery_deadline` is {_given(setting(measure, 'delivery_deadline'), ' s')}.")


def _pubsub_section(doc: Doc, run: Run, stats: dict, pngs: dict[str, Path]) -> None:
    doc.heading("Pub-sub delivery")
    doc.quote(DELIVERY_DEFINITION)
    doc.para(_delivery_window(run.scenario))
    doc.table(["statistic", "value"],
              [[PUBSUB_STATS[key][0], fmt(value, PUBSUB_STATS[key][1])] for key, value in stats.items()])
    doc.para(PUBSUB_NOTE)
    for name, path in pngs.items():
        doc.image(_rel(path, run.path), name.replace("_", " "), CAPTIONS[name])


def _notes(run: Run) -> list[str]:
    notes = []
    status = run.manifest.get("status")
    if status not in (None, "completed"):
        notes.append(f"The run did not complete (status: {status}): the figures cover only the simulated time "
                     "before it stopped.")
    perf = run.manifest.get("perf")
    saturated = perf.get("host_cpu_saturated_seconds") if isinstance(perf, dict) else None
    if isinstance(saturated, int | float) and saturated > 0:
        notes.append(f"The host's CPUs were saturated (at least {perf.get('host_cpu_saturated_at_percent')} % busy) "
                     f"for {saturated:g} s of "
                     f"the run, the last time at {perf.get('host_cpu_saturated_last_at')} s: real nodes then "
                     "waited for a CPU, so latencies and timeouts in that time are partly the host's, not the "
                     "network's. Fewer nodes or more cores give cleaner figures.")
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
    doc.links([(f"{p['label']}: {p['dir']}/report.html", f"{p['dir']}/report.html")
               for p in summary["points"]])
    _plots_section(doc, pngs, sweep.path)
    _definitions(doc, sweep, sweep=True)
    _run_info(doc, sweep)
    return summary, [summary_path, *_write(doc, sweep.path), *pngs.values()]


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


# --- Model and definitions -------------------------------------------------------------------------------


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
        items.append(f"`{name}` ({spec.op} {fmt(target, spec.unit)}, {state}): {worst}{spec.description}")
    doc.bullets(items)
    doc.para("Formation, as defined in docs/results.md:")
    doc.quote(FORMATION_DEFINITION)
    if not sweep:
        doc.para("Percentiles interpolate linearly between the sorted samples; shares count rows with "
                 "`ok == 1` among all rows of that kind. Messages and bytes are the last `traffic` sample.")
    doc.heading("Network model", 3)
    doc.bullets(model_lines(run.scenario))


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
    latency, churn, workload = setting(network, "latency"), scenario.get("churn"), scenario.get("workload")
    model = setting(latency, "model")
    latency_text = _given(model)
    if model == "matrix":
        latency_text += f" (RTT matrix {_given(setting(latency, 'matrix'))})"
    elif model == "regions":
        latency_text += f" (built-in RTT table; regions: {_shares(setting(nodes, 'regions'))})"
    access = setting(latency, "access")
    if isinstance(access, list | tuple) and len(access) == 2:
        access_text = (f"uniform between {access[0] * 1000:g} and {access[1] * 1000:g} ms one-way, "
                       "drawn once per node")
    else:
        access_text = _given(access)
    lines = [
        f"Nodes: {_given(setting(nodes, 'count'))} ({_given(setting(nodes, 'bootstrap'))} bootstrap, joining "
        f"uniformly over the first {_given(setting(nodes, 'join_over'), ' s')}); warm-up "
        f"{_given(scenario.get('warmup'), ' s')}, measured duration "
        f"{_given(scenario.get('duration'), ' s')}.",
        f"Latency model: {latency_text}.",
        f"Jitter: {_given(setting(latency, 'jitter'))} (relative standard deviation of each message's one-way "
        "latency).",
        f"Access latency: {access_text}.",
        f"Loss: {_given(setting(network, 'loss'))} (probability that a message is lost).",
    ]
    if isinstance(churn, dict) and churn:
        lines.append(
            f"Churn: session lengths {_distribution(churn.get('session'))}, offline times "
            f"{_distribution(churn.get('offline'))}, graceful share of departures "
            f"{_given(churn.get('graceful'))} (the rest crash silently); times in seconds."
        )
    else:
        lines.append("Churn: none (static network).")
    dht_parts = [f"k = {_given(setting(dht, 'k'))}", f"alpha = {_given(setting(dht, 'alpha'))}",
                 f"d = {_given(setting(dht, 'disjoint_paths'))} disjoint paths"]
    for key, label, unit in (("request_timeout", "request timeout", " s"),
                             ("slow_after", "lookups stop waiting for a peer after", " s"),
                             ("record_ttl", "record TTL", " s"),
                             ("republish_interval", "republish every", " s"),
                             ("refresh_interval", "refresh every", " s"), ("wire", "wire", "")):
        if setting(dht, key) is not None:
            dht_parts.append(f"{label} {setting(dht, key)}{unit}")
    lines.append("DHT: " + ", ".join(dht_parts) + ".")
    if isinstance(workload, dict):
        lines.append(
            f"Workload per live node per simulated minute: {_given(workload.get('lookup'))} lookups, "
            f"{_given(workload.get('put'))} puts, {_given(workload.get('get'))} gets; values of "
            f"{_given(workload.get('value_size'), ' bytes')}."
        )
    pubsub = scenario.get("pubsub")
    if isinstance(pubsub, dict):
        lines.append(_pubsub_line(pubsub))
    nat = [f"{key} {_shares(setting(nodes, key))}" for key in ("nat", "address_families", "transition")
           if setting(nodes, key)]
    if nat:
        lines.append("Addressing: " + "; ".join(nat) + ".")
    return lines


def _pubsub_line(pubsub: dict) -> str:
    router = setting(pubsub, "router")
    router_text = ", ".join(f"{key} {_given(setting(router, key))}" for key in ("d", "d_lo", "d_hi", "d_lazy",
                                                                              "heartbeat_interval"))
    scoring, attackers = pubsub.get("scoring"), pubsub.get("attackers")
    other = ", ".join(f"{key} {_given(value)}" for key, value in pubsub.items()
                      if key not in ("scoring", "attackers", "router", "score") and not isinstance(value, dict))
    return (f"Pub-sub (GossipSub): {other}; router {router_text}; peer scoring "
            f"{fmt(scoring, 'flag') if isinstance(scoring, bool) else _given(scoring)}; attackers "
            f"{fmt(attackers, 'share') if isinstance(attackers, int | float) else _given(attackers)} of the nodes.")


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


def _compared(a: dict, b: dict, labels: dict[str, tuple[str, str]]) -> list[list[str]]:
    """Rows of statistic, value in a, value in b, difference."""
    return [[label, fmt(a.get(key), unit), fmt(b.get(key), unit), _delta(a.get(key), b.get(key), unit)]
            for key, (label, unit) in labels.items()]


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
    doc.table(["statistic", la, lb, f"{lb} − {la}"], _compared(a["stats"], b["stats"], STATS))
    if "pubsub" in a or "pubsub" in b:
        doc.heading("Pub-sub delivery")
        doc.table(["statistic", la, lb, f"{lb} − {la}"], _compared(a.get("pubsub", {}), b.get("pubsub", {}),
                                                                 PUBSUB_STATS))
        doc.para(PUBSUB_NOTE)
    overlays = {}
    for name, file, sample in (("compare_cdf", plots.COMPARE_CDF, plots.LOOKUPS),
                               ("compare_delivery_cdf", plots.COMPARE_DELIVERY_CDF, plots.DELIVERIES)):
        overlay = plots.plot_cdf_overlay([first, second], [la, lb], out / file,
                                         f"{sample.noun} latency CDF: {la} vs {lb}", sample)
        if overlay is not None:
            overlays[name] = overlay
    _plots_section(doc, overlays, out)
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
    return [a, b], [*paths, *overlays.values()]
