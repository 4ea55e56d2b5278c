"""``simulate`` on a scenario with a sweep: every run of its grid (experiment.scenario.grid) on a cluster engine
(experiment.sweep), each into its own run directory as a normal run with its own report; the sweep's manifest
and its table (sweep.csv, analysis.sweep) are rewritten as each run ends, so a crash loses no finished run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from analysis.load import AnalysisError
from analysis.report import write_report
from analysis.sweep import SweepTable
from experiment.command import UsageError
from experiment.feasibility import available_memory, simulation_cost
from experiment.rundir import write_json
from experiment.scenario.grid import Run, expand
from experiment.sweep import engine, error_line, reporter
from sim.run import manifest, simulate_into


def run_point(run: Run, point_dir: str, command: str, progress: Any = None) -> dict[str, Any]:
    """Simulate one run of a sweep into ``point_dir`` and write its report: what a worker does; its simulated
    time goes to ``progress`` (experiment.sweep.reporter). Returns the run's status, perf figures and error;
    where ``point_dir``'s parent is not on this worker (a cluster without a shared file system) the run is made
    in a temporary directory and its files are returned as well."""
    target = Path(point_dir)
    shared = target.parent.is_dir()
    with tempfile.TemporaryDirectory(prefix="sweep-") if not shared else contextlib.nullcontext() as tmp:
        out = target if shared else Path(tmp) / target.name
        out.mkdir(exist_ok=True)
        result: dict[str, Any] = {"status": "completed"}
        try:
            result["perf"] = simulate_into(run.scenario, out, reporter(progress, run.dir), command=command)
            write_report(out)
        except AnalysisError as exc:
            result.update(status="failed", error=f"report: {exc}")
        except Exception as exc:  # noqa: BLE001 - the run failed; the sweep goes on and says so
            result.update(status="failed", error=error_line(exc))
        if not shared:
            result["files"] = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
                               if p.is_file()}
    return result


class Running:
    """A progress line per run under way, in simulated seconds; updates may come from Dask's event thread."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}
        self.ended: set[str] = set()  # an update may arrive after its run's outcome
        self.lock = threading.Lock()

    def update(self, name: str, now: float, stop: float) -> None:
        with self.lock:
            if name in self.ended:
                return
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(f"  {name}", total=stop, what="s simulated")
            self.progress.update(self.tasks[name], completed=now, total=stop)

    def end(self, name: str) -> None:
        with self.lock:
            self.ended.add(name)
            if name in self.tasks:
                self.progress.remove_task(self.tasks.pop(name))


def default_workers(scenario: Any, runs: list[Run]) -> int:
    """One worker per core, as many as the memory holds at once; one when the sweep judges wall-clock scaling
    (runs side by side would measure each other)."""
    if scenario.criteria is not None and "scaling" in scenario.criteria:
        return 1
    biggest = max(simulation_cost(run.scenario).memory for run in runs)
    return max(1, min(os.cpu_count() or 1, int(available_memory() // biggest), len(runs)))


def finished_runs(scenario: Any, run_dir: Path) -> dict[str, dict[str, Any]]:
    """The runs a sweep's directory already holds complete, by directory name (``simulate --resume``).
    Raises UsageError unless ``run_dir`` is a sweep of this very scenario."""
    try:
        old = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{run_dir}: no sweep manifest to resume ({getattr(exc, 'strerror', None) or exc})") \
            from None
    if not isinstance(old, dict) or not isinstance(old.get("sweep"), list):
        raise UsageError(f"{run_dir}: not a sweep's directory (its manifest lists no runs)")
    if old.get("scenario") != scenario.to_dict():
        raise UsageError(f"{run_dir}: a sweep of another scenario or other values; resume it with the scenario "
                         "file and --seed it ran with")
    return {e["dir"]: e for e in old["sweep"] if isinstance(e, dict) and e.get("status") == "completed"
            and isinstance(e.get("dir"), str) and (run_dir / e["dir"] / "summary.json").is_file()}


def run_sweep(scenario: Any, run_dir: Path, console: Console, address: str | None = None,
              workers: int | None = None, finished: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Run every run of the scenario's sweep into ``run_dir`` but those ``finished`` (a resumed sweep: their
    entries are kept, what other runs left is removed); returns the manifest's entries (each with its status).
    A run that fails is reported and the sweep goes on; Ctrl-C stops it with what finished kept."""
    finished = finished or {}
    runs = expand(scenario)
    entries = [finished.get(run.dir) or {**run.entry(), "status": "pending"} for run in runs]
    todo = [i for i, run in enumerate(runs) if run.dir not in finished]
    table = SweepTable(run_dir / "sweep.csv", scenario.to_dict(), runs)
    for i, run in enumerate(runs):
        if run.dir in finished:
            table.add(entries[i], run_dir / run.dir)
        elif (run_dir / run.dir).exists():
            shutil.rmtree(run_dir / run.dir)  # a run cut short: it runs again from the start
    if workers is None:
        workers = default_workers(scenario, [runs[i] for i in todo]) if todo else 1
    command = " ".join(["simulate", *sys.argv[1:]])
    with engine(address, workers) as eng:
        def save(status: str) -> None:
            write_json(run_dir / "manifest.json", manifest(scenario, status, sweep=entries, engine=eng.description))

        save("running")
        kept = f" ({len(runs) - len(todo)} finished before, kept)" if finished else ""
        console.print(f"{len(todo)} runs {eng.description}{kept}", highlight=False)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[what]}"), TimeElapsedColumn(), TimeRemainingColumn())
        failed = 0
        try:
            with Progress(*columns, console=console, transient=False) as progress:
                task = progress.add_task(f"[bold]{scenario.name}[/] sweep", total=len(todo), what="runs, 0 failed")
                running = Running(progress)
                sink = eng.progress_sink(running.update)
                for i in todo:
                    eng.submit(run_point, runs[i], str(run_dir / runs[i].dir), command, sink)
                for outcome in eng.outcomes():
                    entry = entries[todo[outcome.index]]
                    running.end(entry["dir"])
                    result = outcome.result or {"status": "failed", "error": outcome.error}
                    for name, data in (result.pop("files", None) or {}).items():
                        path = run_dir / entry["dir"] / name
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(data)
                    entry.update(result)
                    table.add(entry, run_dir / entry["dir"])
                    save("running")
                    failed += entry["status"] != "completed"
                    progress.update(task, advance=1, what=f"runs, {failed} failed")
                    if entry["status"] == "completed":
                        progress.console.print(f"  done   {entry['dir']}", highlight=False)
                    else:
                        progress.console.print(f"  FAILED {entry['dir']}: {entry.get('error')}", highlight=False,
                                               style="red")
        except KeyboardInterrupt:
            for entry in entries:
                if entry["status"] == "pending" and (run_dir / entry["dir"]).exists():
                    entry["status"] = "interrupted"
            save("interrupted")
            raise
        save("completed")
    return entries
