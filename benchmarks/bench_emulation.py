"""How many real nodes one machine emulates: `emulate scenarios/formation.yaml` at several sizes (root).

For each size it reports the wall time from the first node's start to formation (the simulator's definition:
lookups from every node return the true k closest), the lookup figures, and the CPU and memory per node
process (sampled every second while the run lasts).

Usage: sudo .venv/bin/python benchmarks/bench_emulation.py [--nodes 10 50 100] [--scenario FILE]
       [--topology regions|lan] [--transport quic|tcp]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil


def node_processes() -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "p2pnode.cli" in cmdline and "run" in cmdline:
            out.append(proc)
    return out


def sample(stop: threading.Event, samples: list[tuple[int, float, float]]) -> None:
    """(processes, RSS MiB per process, CPU % of one core per process), every second."""
    seen: dict[int, psutil.Process] = {}
    while not stop.wait(1.0):
        procs = node_processes()
        rss, cpu = [], []
        for proc in procs:
            known = seen.setdefault(proc.pid, proc)
            try:
                rss.append(known.memory_info().rss / 2**20)
                cpu.append(known.cpu_percent(None))
            except psutil.Error:
                continue
        if rss:
            samples.append((len(rss), sum(rss) / len(rss), sum(cpu) / len(cpu)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--scenario", default="scenarios/formation.yaml")
    parser.add_argument("--topology", choices=["regions", "lan"], default="regions")
    parser.add_argument("--transport", choices=["quic", "tcp"], default="quic")
    parser.add_argument("--out", default="results/bench-emulation")
    args = parser.parse_args()
    print(f"{'nodes':>5} {'formation':>10} {'lookups':>8} {'lookup p99':>10} {'success':>8} "
          f"{'RSS/node':>9} {'CPU/node':>9} {'wall':>7}")
    for n in args.nodes:
        out = Path(args.out) / str(n)
        out.mkdir(parents=True, exist_ok=True)
        samples: list[tuple[int, float, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample, args=(stop, samples), daemon=True)
        sampler.start()
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "emulator.cli", args.scenario, "--nodes", str(n),
                                 "--out", str(out), "--topology", args.topology, "--transport", args.transport],
                                capture_output=True, text=True)
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
        if result.returncode != 0:
            print(f"{n:>5} failed: {result.stderr.strip().splitlines()[-1:]}")
            continue
        run = sorted(out.iterdir())[-1]
        summary = json.loads((run / "summary.json").read_text())
        values = {c["name"]: c.get("value") for c in summary.get("criteria", [])}
        lookups = sum(1 for line in (run / "events.csv").read_text().splitlines() if ",lookup," in line)
        full = [s for s in samples if s[0] >= n] or samples
        rss = max((s[1] for s in full), default=float("nan"))
        cpu = sum(s[2] for s in full) / len(full) if full else float("nan")
        formation = values.get("formation_time")
        p99 = values.get("lookup_p99")
        success = values.get("lookup_success")
        formed = f"{formation:.1f} s" if formation is not None else "not formed"
        print(f"{n:>5} {formed:>10} {lookups:>8} "
              f"{p99 * 1000 if p99 is not None else float('nan'):>7.0f} ms "
              f"{success * 100 if success is not None else float('nan'):>7.2f}% {rss:>6.0f} MiB {cpu:>7.1f} % "
              f"{wall:>5.0f} s", flush=True)


if __name__ == "__main__":
    main()
