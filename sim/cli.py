"""``simulate SCENARIO [--seed N] [--nodes N] [--out DIR] [--workers N] [--dask ADDRESS] [--resume DIR]``: run a
scenario in the SimPy runtime; a scenario with a sweep runs every run of its grid (sim.sweep)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rich.console import Console

from analysis.cli import report_run
from experiment.command import UsageError, add_run_arguments, run_dir_under, scenario_to_run, sigterm_as_interrupt
from experiment.feasibility import check_simulation
from experiment.latency import MatrixError, scenario_matrix
from experiment.scenario import ScenarioError
from sim.run import run_once
from sim.sweep import finished_runs, run_sweep


def main(argv: list[str] | None = None) -> int:
    with sigterm_as_interrupt():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="simulate", description="Run a scenario in the SimPy simulator.")
    add_run_arguments(parser, "scenario YAML file (see docs/scenarios.md)")
    parser.add_argument("--workers", type=int, help="a sweep's runs at once on this machine (default: one per "
                                                    "core, as memory allows; 1 runs them in this process)")
    parser.add_argument("--dask", metavar="ADDRESS", help="run a sweep on the Dask cluster whose scheduler is at "
                                                          "ADDRESS (tcp://host:8786); needs p2pnode[sweep]")
    parser.add_argument("--resume", metavar="DIR", type=Path, help="go on with the sweep in DIR (a crash, Ctrl-C "
                                                                   "or failed runs): its finished runs are kept")
    args = parser.parse_args(argv)
    console = Console()

    def complain(message: str) -> None:
        print(f"simulate: {message}", file=sys.stderr)  # plain print: one line, never re-wrapped

    run_dir: Path | None = None
    sweep = False
    try:
        scenario = scenario_to_run(args)
        sweep = scenario.sweep is not None and args.nodes is None
        if not sweep and (args.workers is not None or args.dask is not None or args.resume is not None):
            raise UsageError("--workers, --dask and --resume are for a scenario with a sweep (and without --nodes)")
        if args.workers is not None and args.workers < 1:
            raise UsageError("--workers must be at least 1")
        scenario_matrix(scenario)  # the latency model's files: read and checked before anything is made
        check_simulation(scenario)
        finished = finished_runs(scenario, args.resume) if args.resume is not None else None
        run_dir = args.resume if args.resume is not None else run_dir_under(args.out, scenario.name)
        console.print(f"run directory: {run_dir}")
        if sweep:
            run_sweep(scenario, run_dir, console, args.dask, args.workers, finished)
            report_run(run_dir, console, points=False)  # each run's report was written as it ended
        else:
            run_once(scenario, run_dir, console)
            report_run(run_dir, console)
        return 0
    except (ScenarioError, MatrixError, UsageError) as exc:
        complain(str(exc))
        if run_dir is not None and args.resume is None and not any(p.is_dir() for p in run_dir.iterdir()):
            shutil.rmtree(run_dir, ignore_errors=True)  # a scheduler out of reach: no run began, no directory
        return 2
    except KeyboardInterrupt:
        if run_dir is None:
            complain("interrupted before the run started")
            return 130
        complain(f"interrupted; events written so far are kept in {run_dir}")
        try:
            report_run(run_dir, console, points=False)  # a report of what was measured before the interruption
        except Exception as exc:  # noqa: BLE001 - the events are safe; the report is a bonus
            complain(f"no report for the partial run: {exc}")
        return 130


if __name__ == "__main__":
    sys.exit(main())
