"""Simulator scaling benchmark: wall time, peak RSS and messages per wall second against node count.

    .venv/bin/python benchmarks/bench_sim.py [--nodes 1000 2000 5000 10000] [--scenario scenarios/churn.yaml]
                                             [--duration S] [--out DIR]

Each size runs in its own process (so peak RSS is that run's own), one after the other, writing a normal
run directory under --out (default: a temporary directory). Prints a table and the scaling ratio: wall
time per simulated message at the largest size over that at the smallest (target: <= 1.5, linear scaling).
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
perf = Simulation(scenario, events).run()
events.close()
perf["run_dir"] = str(run_dir)
perf["simulated_minutes_measured"] = scenario.duration / 60
print(json.dumps(perf))
"""


def run_size(scenario: str, nodes: int, duration: float | None, out: str) -> dict:
    code = CHILD.format(root=str(ROOT), scenario=scenario, nodes=nodes, duration=duration, out=out)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"run with {nodes} nodes failed:\n{proc.stderr[-2000:]}")
    perf = json.loads(proc.stdout.strip().splitlines()[-1])
    perf["process_seconds"] = round(time.perf_counter() - started, 1)
    return perf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "churn.yaml"))
    parser.add_argument("--duration", type=float, help="measured simulated seconds (default: the scenario's)")
    parser.add_argument("--out", help="where run directories go (default: a temporary directory)")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="bench-sim-")
    Path(out).mkdir(parents=True, exist_ok=True)

    print(f"scenario {args.scenario}, runs under {out}")
    header = f"{'nodes':>7} {'wall s':>8} {'messages':>11} {'msg/s':>9} {'us/msg':>7} {'peak RSS MB':>12}"
    print(header)
    rows = []
    for nodes in sorted(args.nodes):
        perf = run_size(args.scenario, nodes, args.duration, out)
        us = perf["wall_seconds"] / perf["messages"] * 1e6
        rows.append((nodes, perf, us))
        print(f"{nodes:>7} {perf['wall_seconds']:>8.1f} {perf['messages']:>11,} "
              f"{perf['messages_per_wall_second']:>9,.0f} {us:>7.1f} {perf['peak_rss_mb']:>12.1f}", flush=True)
    if len(rows) >= 2:
        (n0, _, us0), (n1, _, us1) = rows[0], rows[-1]
        ratio = us1 / us0
        verdict = "PASS" if ratio <= 1.5 else "FAIL"
        print(f"scaling: wall time per message at {n1} nodes / at {n0} nodes = {ratio:.2f} "
              f"(target <= 1.5: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
