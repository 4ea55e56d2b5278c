"""The run directory (docs/results.md): a fresh ``<name>-<timestamp>/``, its manifest, JSON written atomically.

Events go to ``events.csv`` as the run goes (``p2pnode.eventlog.EventWriter``); ``summary.json`` and the report
are written by ``analysis/`` from the files.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import p2pnode


def new_run_dir(base: Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = base / f"{name}-{stamp}"
    n = 2
    while candidate.exists():
        candidate = base / f"{name}-{stamp}-{n}"
        n += 1
    candidate.mkdir(parents=True)
    return candidate


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Python's, p2pnode's and each named package's version ("missing" when it is not installed)."""
    out = {"python": platform.python_version(), "p2pnode": p2pnode.__version__}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "missing"
    return out


def manifest(scenario: Any, runtime: str, program: str, status: str, packages: tuple[str, ...],
             **extra: Any) -> dict[str, Any]:
    """A run's manifest.json: the scenario as run, where and with what it ran; `extra` is the driver's own."""
    return {
        "scenario": scenario.to_dict(),
        "scenario_file": str(scenario.source) if getattr(scenario, "source", None) else None,
        "seed": scenario.seed,
        "nodes": scenario.nodes.count,
        "runtime": runtime,
        "status": status,
        "versions": versions(packages),
        "host": {"name": platform.node(), "system": platform.system(), "machine": platform.machine(),
                 "kernel": platform.release(), "cpus": os.cpu_count()},
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([program, *sys.argv[1:]]),
        **extra,
    }
