"""`report DIR [DIR2] [--out OUT]`: regenerate a run's report, or compare two runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from analysis.compare import compare_runs, run_labels
from analysis.definitions import SPECS
from analysis.fidelity import Fidelity, distance_text, p_text, tolerance_text
from analysis.formats import PUBSUB_STATS, fmt, fmt_micro, node_counts, target_text, verdict_text
from analysis.load import AnalysisError
from analysis.report import write_report
from analysis.sweep import mean_text, setting_text

MAX_POINT_ROWS = 20  # a grid's runs beyond this are in sweep.csv and the report, not on the terminal

PROG = "report"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message, exit code 2
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Regenerate a results directory's summary.json and report, "
                                            "or compare two runs side by side.")
    parser.add_argument("dir", help="a run or sweep results directory")
    parser.add_argument("dir2", nargs="?", help="a second run to compare with the first")
    parser.add_argument("--out", help="where to write the comparison (default: DIR/compare-<basename DIR2>)")
    return parser


def _result(passed: bool) -> str:
    return "[bold green]PASS[/]" if passed else "[bold red]FAIL[/]"


def print_verdict(summary: dict, console: Console) -> None:
    """Print the criteria of a summary (and a sweep's points) as a rich table with the overall verdict."""
    table = Table(title=f"{summary.get('scenario')} (seed {summary.get('seed')}, {node_counts(summary)} nodes)",
                  title_justify="left")
    table.add_column("criterion")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("result")
    for c in summary.get("criteria") or []:
        table.add_row(c["name"], fmt(c["value"], c["unit"]), target_text(c), _result(c["pass"]))
    if table.row_count:
        console.print(table)
    grid = summary.get("grid")
    if grid:
        print_grid(grid, console)
    points = summary.get("points")
    if points and (not grid or len(points) <= MAX_POINT_ROWS):
        sweep = Table(title="sweep points", title_justify="left")
        sweep.add_column("point")
        pubsub = any("pubsub" in p for p in points)
        lookups = any(p["lookup_p99"] is not None for p in points)
        columns = ("nodes", "wall", "messages", "µs/message")
        columns += ("lookup p99", "lookup success") if lookups else ()
        columns += ("delivery rate", "delivery p99") if pubsub else ()
        for column in columns:
            sweep.add_column(column, justify="right")
        for p in points:
            per_message = "—" if p["us_per_message"] is None else fmt_micro(p["us_per_message"])
            cells = [fmt(p["nodes"], "count"), fmt(p["wall_seconds"], "s"), fmt(p["messages"], "count"), per_message]
            if lookups:
                cells += [fmt(p["lookup_p99"], "s"), fmt(p["lookup_success"], "share")]
            if pubsub:
                delivery = p.get("pubsub", {})
                cells += [fmt(delivery.get("delivery_rate"), "share"), fmt(delivery.get("delivery_latency_p99"), "s")]
            sweep.add_row(p.get("dir") or p["label"], *cells)
        console.print(sweep)
    passed, text = verdict_text(summary)
    style = {True: "bold green", False: "bold red"}.get(passed, "bold")
    console.print(text, style=style)


def print_grid(grid: list[dict], console: Console) -> None:
    """A sweep's grid: each point's settings and each criterion's mean ± 95 % interval over its seeds."""
    table = Table(title="sweep grid (mean ± 95 % interval over seeds)", title_justify="left")
    dims = list(grid[0]["settings"])
    names = list(grid[0]["criteria"])
    for column in (*dims, "runs", "failed", *names):
        table.add_column(column, justify="left" if column in dims else "right")
    for point in grid:
        failed = f"[red]{point['failed']}[/]" if point["failed"] else "0"
        table.add_row(*(setting_text(point["settings"][d]) for d in dims), str(point["runs"]), failed,
                      *(mean_text(point["criteria"][n], SPECS[n].unit) for n in names))
    console.print(table)


def warn_damage(summary: dict, directory: Path) -> None:
    """Damaged results (analysis.load) on stderr as well as in the report: a figure from a damaged file is
    never shown as if nothing were wrong."""
    for line in summary.get("damage", []):
        print(f"{PROG}: warning: {directory}: {line}", file=sys.stderr)


def report_run(directory: Path, console: Console, points: bool = True) -> dict:
    """Write a run's summary.json and report and print its verdict: what ``report DIR`` does, and what
    ``simulate`` and ``emulate`` do at the end of a run (a sweep's points' reports too unless ``points`` is
    false: a sweep writes each as its run ends)."""
    summary, _ = write_report(directory, points=points)
    warn_damage(summary, directory)
    print_verdict(summary, console)
    console.print(f"report: {directory / 'report.html'}", highlight=False, soft_wrap=True)
    return summary


def print_fidelity(fidelity: Fidelity, labels: list[str], console: Console) -> None:
    """The fidelity figures of a comparison as a rich table, then what was compared and the agreement line."""
    table = Table(title="fidelity", title_justify="left")
    for column in ("figure", *labels, "distance", "p", "tolerance", "result"):
        table.add_column(column, justify="left" if column in ("figure", "result") else "right")
    for figure in fidelity.figures:
        values = [fmt(value, figure.unit) for value in (figure.a, figure.b)]
        result = "—" if figure.agrees is None else ("[green]agrees[/]" if figure.agrees else "[red]differs[/]")
        table.add_row(figure.label, *values, distance_text(figure), p_text(figure),
                      tolerance_text(figure), result)
    if table.row_count:
        console.print(table)
    console.print(fidelity.compares, highlight=False)
    style = {True: "bold green", False: "bold red"}.get(fidelity.agrees, "bold")
    console.print(fidelity.verdict, style=style, highlight=False)


def print_comparison(summaries: list[dict], labels: list[str], console: Console) -> None:
    table = Table(title="comparison", title_justify="left")
    table.add_column("criterion")
    table.add_column("target", justify="right")
    for label in labels:
        table.add_column(label, justify="right")
    names = []
    for summary in summaries:
        names += [c["name"] for c in summary["criteria"] if c["name"] not in names]
    for name in names:
        cells, target = [], ""
        for summary in summaries:
            c = next((c for c in summary["criteria"] if c["name"] == name), None)
            if c is None:
                cells.append("—")
            else:
                target = target or target_text(c)
                cells.append(f"{fmt(c['value'], c['unit'])} {_result(c['pass'])}")
        table.add_row(name, target, *cells)
    console.print(table)
    if any("pubsub" in summary for summary in summaries):
        delivery = Table(title="pub-sub delivery", title_justify="left")
        delivery.add_column("statistic")
        for label in labels:
            delivery.add_column(label, justify="right")
        for key, (name, unit) in PUBSUB_STATS.items():
            delivery.add_row(name, *(fmt(summary.get("pubsub", {}).get(key), unit) for summary in summaries))
        console.print(delivery)
    for label, summary in zip(labels, summaries, strict=True):
        passed, text = verdict_text(summary)
        console.print(f"{label}: {text}", style={True: "green", False: "red"}.get(passed, ""))


def main(argv: list[str] | None = None) -> int:
    console = Console()
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        if args.dir2 is None:
            if args.out:
                raise AnalysisError("--out is only for comparing two directories")
            report_run(Path(args.dir), console)
        else:
            out = Path(args.out) if args.out else Path(args.dir) / f"compare-{Path(args.dir2).resolve().name}"
            summaries, fidelity, paths = compare_runs(args.dir, args.dir2, out)
            for summary, directory in zip(summaries, (args.dir, args.dir2), strict=True):
                warn_damage(summary, Path(directory))
            labels = list(run_labels(Path(args.dir), Path(args.dir2)))
            print_comparison(summaries, labels, console)
            print_fidelity(fidelity, labels, console)
            console.print(f"comparison: {out / 'report.html'}", highlight=False, soft_wrap=True)
    except AnalysisError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
