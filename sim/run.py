"""One simulated run into its run directory (docs/results.md): the manifest, events as they happen, and the
access and NAT sections; `run_once` shows its progress on a console, `simulate_into` reports it to a callback
(a sweep's worker)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from experiment import rundir
from experiment.rundir import write_json
from p2pnode.eventlog import EventWriter
from sim.simulation import Simulation

PACKAGES = ("simpy", "cryptography", "protobuf")  # whose versions the manifest records


def manifest(scenario: Any, status: str, perf: dict | None = None, **extra: Any) -> dict[str, Any]:
    return rundir.manifest(scenario, "sim", "simulate", status, PACKAGES, perf=perf, **extra)


def simulate_into(scenario: Any, run_dir: Path, update: Callable[[float, float], None] | None = None,
                  **extra: Any) -> dict[str, Any]:
    """Run one scenario into ``run_dir``; returns its perf figures. ``update(now, stop)`` is told the simulated
    time as it goes; ``extra`` goes into the manifest (a sweep's command line)."""
    run_manifest = manifest(scenario, "running", **extra)
    write_json(run_dir / "manifest.json", run_manifest)
    events = EventWriter(run_dir / "events.csv")
    status = "interrupted"
    perf = None
    try:
        sim = Simulation(scenario, events, update or (lambda now, stop: None))
        if sim.access is not None:
            write_json(run_dir / "access.json", sim.access.summary(scenario.duration, sim.network.latency.base_rtt))
        perf = sim.run()
        if sim.nat is not None:
            write_json(run_dir / "nat.json", sim.nat.summary())
        status = "completed"
    except Exception:
        status = "failed"
        raise
    finally:
        events.close()
        run_manifest.update(status=status, perf=perf)
        write_json(run_dir / "manifest.json", run_manifest)
    return perf


def run_once(scenario: Any, run_dir: Path, console: Console, label: str = "") -> dict[str, Any]:
    """Run one scenario into ``run_dir`` with a progress bar on ``console``; returns its perf figures."""
    columns = (TextColumn(f"[bold]{label or scenario.name}[/] {scenario.nodes.count} nodes"), BarColumn(),
               TextColumn("{task.fields[sim]:>7.1f}/{task.total:.0f} s simulated"), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("sim", total=1.0, sim=0.0)

        def update(now: float, stop: float) -> None:
            progress.update(task, completed=now, total=stop, sim=now)

        return simulate_into(scenario, run_dir, update)
