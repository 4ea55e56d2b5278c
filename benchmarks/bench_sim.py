"""Simulator scaling benchmark: wall time, peak RSS and messages per wall second against node count.

    .venv/bin/python benchmarks/bench_sim.py [--nodes 1000 2000 5000 10000] [--scenario scenarios/churn.yaml]
                                             [--duration S] [--out DIR] [--against TREE]

Each size runs in its own process (so peak RSS is that run's own), one after the other, writing a normal
run directory under --out (default: a temporary directory). Prints a table and the scaling ratio: wall
time per simulated message at the largest size over that at the smallest (target: <= 1.5, linear scaling).
CPU seconds (the run's process time) are printed beside wall seconds: on a shared machine they vary less.

``--against TREE`` runs every size on another checkout too (its own .venv if it has one), right before
this tree's run, and prints this tree's speed-up over it: this machine's speed varies too much between
runs for figures from different days to be compared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
import time
from pathlib import Path
from p2pnode.eventlog import EventWriter
from experiment.rundir import new_run_dir
from experiment.scenario import load_scenario
from sim.simulation import Simulation
scenario = load_scenario({scenario!r}).with_nodes({nodes})
if {duration} is not None:
    scenario = scenario.model_copy(update={{"duration": float({duration})}})
run_dir = new_run_dir(Path({out!r}), scenario.name + "-n{nodes}")
events = EventWriter(run_dir / "events.csv")
simulation = Simulation(scenario, events)
cpu = time.process_time()
perf = simulation.run()
perf["cpu_seconds"] = round(time.process_time() - cpu, 3)
events.close()
perf["run_dir"] = str(run_dir)
perf["simulated_minutes_measured"] = scenario.duration / 60
print(json.dumps(perf))
"""


def run_size(scenario: str, nodes: int, duration: float | None, out: str, root: Path = ROOT) -> dict:
    code = CHILD.format(root=str(root), scenario=scenario, nodes=nodes, duration=duration, out=out)
    python = root / ".venv" / "bin" / "python"
    started = time.perf_counter()
    proc = subprocess.run([str(python) if python.exists() else sys.executable, "-c", code],
                          capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        raise SystemExit(f"run with {nodes} nodes in {root} failed:\n{proc.stderr[-2000:]}")
    perf = json.loads(proc.stdout.strip().splitlines()[-1])
    perf["process_seconds"] = round(time.perf_counter() - started, 1)
    return perf


def in_tree(scenario: str, root: Path) -> str:
    """The same scenario file in another checkout (its schema is that code's), else the file itself."""
    path = Path(scenario).resolve()
    return str(root / path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def line(label: str, nodes: int, perf: dict) -> str:
    wall_us = perf["wall_seconds"] / perf["messages"] * 1e6
    cpu_us = perf["cpu_seconds"] / perf["messages"] * 1e6
    return (f"{label:>5} {nodes:>7} {perf['wall_seconds']:>8.1f} {perf['cpu_seconds']:>8.1f} {perf['messages']:>11,} "
            f"{perf['messages_per_wall_second']:>9,.0f} {wall_us:>7.1f} {cpu_us:>7.1f} {perf['peak_rss_mb']:>8.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "churn.yaml"))
    parser.add_argument("--duration", type=float, help="measured simulated seconds (default: the scenario's)")
    parser.add_argument("--out", help="where run directories go (default: a temporary directory)")
    parser.add_argument("--against", type=Path, help="another checkout to run every size on too, for the speed-up")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="bench-sim-")
    Path(out).mkdir(parents=True, exist_ok=True)

    print(f"scenario {args.scenario}, runs under {out}" + (f", against {args.against}" if args.against else ""))
    print(f"{'code':>5} {'nodes':>7} {'wall s':>8} {'CPU s':>8} {'messages':>11} {'msg/s':>9} {'us/msg':>7} "
          f"{'CPU us':>7} {'RSS MB':>8}")
    rows = []
    for nodes in sorted(args.nodes):
        if args.against is not None:
            old = run_size(in_tree(args.scenario, args.against.resolve()), nodes, args.duration, out,
                           args.against.resolve())
            print(line("old", nodes, old), flush=True)
        perf = run_size(args.scenario, nodes, args.duration, out)
        rows.append((nodes, perf))
        print(line("new", nodes, perf) + (f"  [{perf.get('native', 'pure')}]"), flush=True)
        if args.against is not None:
            per_message = (old["cpu_seconds"] / old["messages"]) / (perf["cpu_seconds"] / perf["messages"])
            print(f"{'':>5} {nodes:>7} speed-up: wall {old['wall_seconds'] / perf['wall_seconds']:.2f}x, CPU "
                  f"{old['cpu_seconds'] / perf['cpu_seconds']:.2f}x, CPU per message {per_message:.2f}x", flush=True)
    if len(rows) >= 2:
        (n0, p0), (n1, p1) = rows[0], rows[-1]
        for what in ("wall_seconds", "cpu_seconds"):
            ratio = (p1[what] / p1["messages"]) / (p0[what] / p0["messages"])
            verdict = "PASS" if ratio <= 1.3 else "FAIL"
            print(f"scaling: {what.split('_')[0]} time per message at {n1} nodes / at {n0} nodes = {ratio:.2f} "
                  f"(target <= 1.3: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
