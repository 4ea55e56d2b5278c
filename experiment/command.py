"""What the command line of every run shares (``simulate`` and ``emulate``): the scenario and its overrides,
the run directory, and SIGTERM ending a run as Ctrl-C does; a mistake is one line naming the option."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from experiment.rundir import new_run_dir
from experiment.scenario import load_scenario


class UsageError(Exception):
    """A command-line mistake; the message is one line for the user."""


def add_run_arguments(parser: argparse.ArgumentParser, scenario_help: str) -> None:
    parser.add_argument("scenario", type=Path, help=scenario_help)
    parser.add_argument("--seed", type=int, help="random seed (overrides the scenario's)")
    parser.add_argument("--nodes", type=int, help="node count (overrides the scenario's)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="where run directories go")


def scenario_to_run(args: argparse.Namespace) -> Any:
    """The scenario file with the command line's --seed and --nodes. Raises UsageError or ScenarioError."""
    if args.nodes is not None and args.nodes < 2:
        raise UsageError("--nodes must be at least 2")
    if args.seed is not None and args.seed < 0:
        raise UsageError("--seed must be >= 0")
    overrides = {"seed": args.seed} if args.seed is not None else None
    scenario = load_scenario(args.scenario, overrides=overrides)
    return scenario.with_nodes(args.nodes) if args.nodes is not None else scenario


def run_dir_under(out: Path, name: str) -> Path:
    """A new run directory ``out/<name>-<timestamp>``. Raises UsageError if it cannot be made."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        return new_run_dir(out, name)
    except OSError as exc:
        raise UsageError(f"cannot create a run directory under {out}: {exc.strerror}") from exc


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM (``kill``, a batch system's time limit, systemd) ends a run as Ctrl-C does: the
    manifest says interrupted, the events so far are kept and reported. It raises SIGINT, so whichever handler
    is in force takes it: Python's KeyboardInterrupt, or asyncio.run's (which cancels its main task first)."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
