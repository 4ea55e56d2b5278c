"""``simulate SCENARIO [--seed N] [--nodes N] [--out DIR]``: run a scenario in the SimPy runtime."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from analysis.cli import report_run
from experiment import rundir
from experiment.command import UsageError, add_run_arguments, run_dir_under, scenario_to_run, sigterm_as_interrupt
from experiment.feasibility import check_simulation
from experiment.latency import MatrixError, scenario_matrix
from experiment.rundir import write_json
from experiment.scenario import ScenarioError
from p2pnode.eventlog import EventWriter
from sim.simulation import Simulation

PACKAGES = ("simpy", "cryptography", "protobuf")  # whose versions the manifest records


def _manifest(scenario: Any, status: str, perf: dict | None = None, **extra: Any) -> dict[str, Any]:
    return rundir.manifest(scenario, "sim", "simulate", status, PACKAGES, perf=perf, **extra)


def run_once(scenario: Any, run_dir: Path, console: Console, label: str = "") -> dict[str, Any]:
    """Run one scenario into ``run_dir``; returns its perf figures. Events are on disk as they happen."""
    manifest = _manifest(scenario, "running")
    write_json(run_dir / "manifest.json", manifest)
    events = EventWriter(run_dir / "events.csv")
    columns = (TextColumn(f"[bold]{label or scenario.name}[/] {scenario.nodes.count} nodes"), BarColumn(),
               TextColumn("{task.fields[sim]:>7.1f}/{task.total:.0f} s simulated"), TimeElapsedColumn(),
               TimeRemainingColumn())
    status = "interrupted"
    perf = None
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("sim", total=1.0, sim=0.0)

            def update(now: float, stop: float) -> None:
                progress.update(task, completed=now, total=stop, sim=now)

            sim = Simulation(scenario, events, update)
            if sim.access is not None:
                write_json(run_dir / "access.json", sim.access.summary(scenario.duration, sim.network.latency.base_rtt))
            perf = sim.run()
            if sim.nat is not None:
                write_json(run_dir / "nat.json", sim.nat.summary())
        status = "completed"
    finally:
        events.close()
        manifest.update(status=status, perf=perf)
        write_json(run_dir / "manifest.json", manifest)
    return perf


def main(argv: list[str] | None = None) -> int:
    with sigterm_as_interrupt():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="simulate", description="Run a scenario in the SimPy simulator.")
    add_run_arguments(parser, "scenario YAML file (see docs/scenarios.md)")
    args = parser.parse_args(argv)
    console = Console()

    def complain(message: str) -> None:
        print(f"simulate: {message}", file=sys.stderr)  # plain print: one line, never re-wrapped

    run_dir: Path | None = None
    points: list[dict[str, Any]] | None = None  # a sweep's points run so far
    try:
        scenario = scenario_to_run(args)
        scenario_matrix(scenario)  # the latency model's files: read and checked before anything is made
        check_simulation(scenario)
        run_dir = run_dir_under(args.out, scenario.name)
        console.print(f"run directory: {run_dir}")
        if scenario.sweep is not None and args.nodes is None:
            points = []
            for name, point in scenario.sweep_points():
                n = point.nodes.count
                scoring = point.pubsub.scoring if point.pubsub is not None else None
                if scenario.sweep.scoring is None:
                    label = f"{scenario.name} [{n}]"
                else:
                    label = f"{scenario.name} [{n}, scoring {'on' if scoring else 'off'}]"
                point_dir = run_dir / name
                point_dir.mkdir()
                perf = run_once(point, point_dir, console, label=label)
                report_run(point_dir, console)
                points.append({"nodes": n, "scoring": scoring, "label": label, "dir": point_dir.name,
                               "perf": perf})
            write_json(run_dir / "manifest.json", _manifest(scenario, "completed", sweep=points))
        else:
            run_once(scenario, run_dir, console)
        report_run(run_dir, console)
        return 0
    except (ScenarioError, MatrixError, UsageError) as exc:
        complain(str(exc))
        return 2
    except KeyboardInterrupt:
        if run_dir is None:
            complain("interrupted before the run started")
            return 130
        complain(f"interrupted; events written so far are kept in {run_dir}")
        if points is not None:  # the sweep's manifest lists the points that ran (each has its own report)
            write_json(run_dir / "manifest.json", _manifest(scenario, "interrupted", sweep=points))
        else:
            try:
                report_run(run_dir, console)  # a report of what was measured before the interruption
            except Exception as exc:  # noqa: BLE001 - the events are safe; the report is a bonus
                complain(f"no report for the partial run: {exc}")
        return 130


if __name__ == "__main__":
    sys.exit(main())
