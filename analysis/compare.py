"""A side-by-side comparison of two runs (report.md, report.html and overlaid CDFs in its own directory)."""

from __future__ import annotations

import json
from pathlib import Path

from analysis import plots
from analysis.criteria import verdict
from analysis.definitions import SPECS
from analysis.fidelity import (
    KIND_TEXT,
    MEANINGS,
    Fidelity,
    compare_fidelity,
    distance_text,
    flatten,
    p_text,
    tolerance_text,
)
from analysis.formats import (
    CAPTIONS,
    MISSING,
    PUBSUB_NOTE,
    PUBSUB_STATS,
    STATS,
    fmt,
    given,
    rel,
    target_text,
    title,
    verdict_text,
)
from analysis.load import AnalysisError, load_run
from analysis.mcp import MCP_STATS
from analysis.model import model_lines
from analysis.render import Doc, write_doc
from analysis.stats import CONVERGENCE, DELIVERIES, MCP_CALLS
from analysis.summary import summarise


def run_labels(a: Path, b: Path) -> tuple[str, str]:
    if a.resolve().name != b.resolve().name:
        return a.resolve().name, b.resolve().name
    pa, pb = a.resolve(), b.resolve()
    la, lb = f"{pa.parent.name}/{pa.name}", f"{pb.parent.name}/{pb.name}"
    return (la, lb) if la != lb else ("A", "B")


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


def _fidelity_section(doc: Doc, fidelity: Fidelity, labels: tuple[str, str], overlays: dict[str, Path],
                      out: Path) -> None:
    doc.heading("Fidelity: model against emulation" if fidelity.model_check else "Agreement of the two runs")
    doc.para(fidelity.compares)
    doc.verdict(fidelity.agrees, fidelity.verdict)
    rows = []
    for figure in fidelity.figures:
        unit = figure.unit
        values = [fmt(value, unit) if unit != "count" else f"n = {fmt(value, unit)}" for value in (figure.a, figure.b)]
        result = MISSING if figure.agrees is None else ("agrees" if figure.agrees else "differs")
        chance = MISSING if figure.chance is None else f"{figure.chance:.3f}"
        rows.append([f"{figure.label}: {KIND_TEXT[figure.kind]}", *values, distance_text(figure), p_text(figure),
                     chance, tolerance_text(figure), result])
    if rows:
        doc.table(["figure", *labels, "distance or difference", "p", "chance gap", "tolerance", "result"], rows)
    doc.bullets(list(MEANINGS))
    for name, path in overlays.items():
        doc.image(rel(path, out), name.replace("_", " "), CAPTIONS[name])


def compare_runs(dir1: str | Path, dir2: str | Path, out_dir: str | Path) -> tuple[list[dict], Fidelity, list[Path]]:
    """Write a side-by-side comparison of two runs into out_dir: report.md, report.html, fidelity.json and the
    two runs' latency CDFs overlaid.

    Returns the two summaries, the fidelity figures and the paths written.
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
    doc.bullets([f"{la}: {title(a)} ({rel(first.path, out)})",
                 f"{lb}: {title(b)} ({rel(second.path, out)})"])
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
    fidelity = compare_fidelity(first, second, (la, lb))
    gaps = {figure.name: figure for figure in fidelity.figures if figure.where is not None}
    overlays = {}
    for name, file, sample in (("compare_cdf", plots.COMPARE_CDF, CONVERGENCE),
                               ("compare_delivery_cdf", plots.COMPARE_DELIVERY_CDF, DELIVERIES),
                               ("compare_mcp_cdf", plots.COMPARE_MCP_CDF, MCP_CALLS)):
        gap = gaps.get(f"{sample.noun.lower().replace(' ', '_')}_latency_ks")
        overlay = plots.plot_cdf_overlay([first, second], [la, lb], out / file,
                                         f"{sample.noun} latency CDF of both runs", sample,
                                         gap=None if gap is None else (gap.where, gap.cdf_a, gap.cdf_b))
        if overlay is not None:
            overlays[name] = overlay
    _fidelity_section(doc, fidelity, (la, lb), overlays, out)
    fidelity_path = out / "fidelity.json"
    fidelity_path.write_text(json.dumps(fidelity.as_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    doc.heading("Statistics")
    doc.table(["statistic", la, lb, f"{lb} − {la}"], _compared(a["stats"], b["stats"], STATS))
    if "pubsub" in a or "pubsub" in b:
        doc.heading("Pub-sub delivery")
        doc.table(["statistic", la, lb, f"{lb} − {la}"], _compared(a.get("pubsub", {}), b.get("pubsub", {}),
                                                                 PUBSUB_STATS))
        doc.para(PUBSUB_NOTE)
    if "mcp" in a or "mcp" in b:
        doc.heading("MCP requests")
        doc.table(["statistic", la, lb, f"{lb} − {la}"], _compared(a.get("mcp", {}), b.get("mcp", {}), MCP_STATS))
    doc.heading("Differences in scenario and versions")
    flat = [flatten({"seed": s.manifest.get("seed"), "nodes": s.manifest.get("nodes"),
                      "runtime": s.manifest.get("runtime"), "scenario": s.scenario,
                      "versions": s.manifest.get("versions")}) for s in (first, second)]
    keys = sorted(set(flat[0]) | set(flat[1]))
    diff_rows = [[key, given(flat[0].get(key)), given(flat[1].get(key))] for key in keys
                 if flat[0].get(key) != flat[1].get(key)]
    if diff_rows:
        doc.table(["setting", la, lb], diff_rows)
    else:
        doc.para("Same scenario, seed and versions.")
    links = [(f"{label} report", rel(run.path / "report.html", out)) for label, run in
             ((la, first), (lb, second)) if (run.path / "report.html").exists()]
    if links:
        doc.links(links)
    doc.heading(f"Network model of {la}", 3)
    doc.bullets(model_lines(first.scenario, first.runtime))
    paths = write_doc(doc, out)
    return [a, b], fidelity, [*paths, fidelity_path, *overlays.values()]
