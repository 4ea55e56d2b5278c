"""The data-plane benchmark runs (endpoint mode, tiny size), so it cannot break unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_tunnels.py"


def test_bench_tunnels_endpoint_mode_runs():
    out = subprocess.run([sys.executable, str(BENCH), "--rounds", "1", "--packets", "50"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line.split()[0] for line in out.stdout.splitlines()[2:]]
    assert sorted(set(rows)) == sorted(["6to4", "6rd", "isatap", "6over4", "teredo", "dslite", "map-e", "map-t",
                                        "464xlat"])
