"""The simulator benchmark still runs: it imports the runtime in a child process, which no other test does."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_sim_runs_two_small_sizes_against_a_tree(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_sim.py"), "--nodes", "30", "60", "--duration", "20",
         "--out", str(tmp_path), "--against", str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    rows = [line.split() for line in lines if line.split()[:1] in (["old"], ["new"])]
    assert [row[:2] for row in rows] == [["old", "30"], ["new", "30"], ["old", "60"], ["new", "60"]]
    assert all(int(row[4].replace(",", "")) > 0 for row in rows)  # messages were simulated
    assert sum("speed-up: wall" in line for line in lines) == 2
    assert lines[-2].startswith("scaling: wall time per message at 60 nodes / at 30 nodes")
    assert lines[-1].startswith("scaling: cpu time per message at 60 nodes / at 30 nodes")
    assert len(list(tmp_path.glob("*/events.csv"))) == 4
