"""A grid sweep's report from hand-made runs: each point's mean and 95 % interval against values computed by
hand, sweep.csv, the failed run listed and left out, the plot per swept parameter."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from analysis.load import load_run
from analysis.report import write_report
from analysis.summary import write_summary
from analysis.sweep import interval

SCENARIO = {"name": "g", "seed": 1, "warmup": 0, "duration": 30, "workload": {"lookup": 1.0, "put": 0, "get": 0},
            "criteria": {"lookup_p99": {}, "lookup_success": {}}, "sweep": {"seeds": 3, "dht.alpha": [3, 5]}}
HEADER = "time,kind,node,latency,hops,ok,value,count\n"


def write_run(path: Path, latency: float, seed: int) -> None:
    """Ten lookups of ``latency`` seconds each, nine of them successful."""
    path.mkdir(parents=True)
    rows = [f"{10 + i}.0,lookup,{i},{latency},2,{int(i < 9)},1.0,6" for i in range(10)]
    (path / "events.csv").write_text(HEADER + "".join(row + "\n" for row in rows))
    manifest = {"scenario": SCENARIO, "seed": seed, "nodes": 10, "runtime": "sim", "status": "completed",
                "perf": {"wall_seconds": 2.0, "messages": 100, "peak_rss_mb": 50.0}}
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_interval_is_students_t():
    assert interval([]) == (None, None)
    assert interval([0.5]) == (0.5, None)
    mean, half = interval([0.1, 0.2, 0.3])  # s = 0.1, t(0.975, 2) = 4.302653
    assert mean == pytest.approx(0.2) and half == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-6)


def test_grid_report(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    entries = []
    latencies = {3: [0.1, 0.2, 0.3], 5: [0.4, 0.5, None]}  # None: the run failed
    for alpha, values in latencies.items():
        for seed, latency in zip((1, 2, 3), values, strict=True):
            name = f"n10-dht.alpha-{alpha}-seed{seed}"
            entry = {"nodes": 10, "scoring": None, "label": f"g [10, dht.alpha={alpha}, seed {seed}]", "dir": name,
                     "params": {"dht.alpha": alpha}, "seed": seed, "status": "completed",
                     "perf": {"wall_seconds": 2.0, "messages": 100, "peak_rss_mb": 50.0}}
            if latency is None:
                entry.update(status="failed", error="RuntimeError: broke", perf=None)
            else:
                write_run(sweep / name, latency, seed)
            entries.append(entry)
    (sweep / "manifest.json").write_text(json.dumps({"scenario": SCENARIO, "seed": 1, "runtime": "sim",
                                                     "status": "completed", "sweep": entries}))
    for entry in entries:  # as the workers leave them: each run's summary.json (its report's plots are not needed)
        if entry["status"] == "completed":
            write_summary(load_run(sweep / entry["dir"]))
    summary, paths = write_report(sweep, points=False)

    grid = summary["grid"]
    assert [(g["settings"], g["runs"], g["failed"]) for g in grid] == [
        ({"dht.alpha": 3}, 3, 0), ({"dht.alpha": 5}, 2, 1)]
    p99 = [g["criteria"]["lookup_p99"] for g in grid]
    assert p99[0]["mean"] == pytest.approx(0.2) and p99[0]["n"] == 3
    assert p99[0]["ci95"] == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-6)
    assert p99[1]["mean"] == pytest.approx(0.45)  # s = 0.0707107, t(0.975, 1) = 12.706205
    assert p99[1]["ci95"] == pytest.approx(12.706205 * 0.0707107 / 2 ** 0.5, rel=1e-6)
    assert grid[0]["criteria"]["lookup_success"] == {"mean": pytest.approx(0.9), "ci95": 0.0, "n": 3}
    assert summary["failed"] == [{"dir": "n10-dht.alpha-5-seed3", "label": "g [10, dht.alpha=5, seed 3]",
                                  "error": "RuntimeError: broke"}]
    assert len(summary["points"]) == 5  # the failed run is in no figure
    by_name = {c["name"]: c for c in summary["criteria"]}
    assert by_name["lookup_p99"]["value"] == pytest.approx(0.5)  # the worst run

    with open(sweep / "sweep.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["dir"], r["dht.alpha"], r["seed"], r["status"]) for r in rows] == [
        (e["dir"], str(e["params"]["dht.alpha"]), str(e["seed"]), e["status"]) for e in entries]
    assert [r["lookup_p99"] for r in rows] == ["0.1", "0.2", "0.3", "0.4", "0.5", ""]
    assert rows[-1]["error"] == "RuntimeError: broke" and rows[0]["wall_seconds"] == "2.0"

    assert {p.name for p in paths} >= {"sweep.csv", "sweep_dht_alpha.png", "report.html"}
    page = (sweep / "report.md").read_text()
    assert "| 3 | 3 | 0 | 200 ms ± 248.4 ms | 90.00 % ± 0.00 % |" in page
    assert "| 5 | 2 | 1 | 450 ms ± 635.3 ms | 90.00 % ± 0.00 % |" in page
    assert "| n10-dht.alpha-5-seed3 | RuntimeError: broke |" in page
