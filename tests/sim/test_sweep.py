"""Sweeps on a cluster engine: a grid on a LocalCluster gives each run the summary.json of the same run made
alone; the sweep's table, grid statistics and report; a run that fails is reported, not fatal; a worker without
the run directory sends the run's files back."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import pytest

from experiment.scenario import load_scenario
from experiment.scenario.grid import expand
from sim import sweep as sim_sweep
from sim.cli import main as simulate

BASE = """\
name: grid
seed: 5
warmup: 10
duration: 10
nodes: {count: 8, bootstrap: 2, join_over: 5}
workload: {lookup: 2.0, put: 0.5, get: 1.0, value_size: 64}
measure: {formation_sample: 10}
criteria: {lookup_p99: {}, lookup_success: {}}
"""
GRID = BASE + "sweep:\n  dht.alpha: [2, 4]\n  seeds: 2\n"


def run(scenario: Path, out: Path, *extra: str) -> Path:
    assert simulate([str(scenario), "--out", str(out), *extra]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow
def test_a_grid_on_a_local_cluster_gives_each_run_the_summary_of_the_run_alone(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    scenario = tmp_path / "grid.yaml"
    scenario.write_text(GRID)
    told = set()  # the runs whose progress reached the terminal from the workers
    update = sim_sweep.Running.update
    monkeypatch.setattr(sim_sweep.Running, "update", lambda self, name, now, stop: (
        told.add(name), update(self, name, now, stop)))
    sweep_dir = run(scenario, tmp_path / "sweep", "--workers", "2")
    manifest = json.loads((sweep_dir / "manifest.json").read_text())
    assert manifest["engine"] == "on a local Dask cluster of 2 worker processes"
    assert manifest["status"] == "completed"
    entries = manifest["sweep"]
    assert [(e["params"], e["seed"], e["status"]) for e in entries] == [
        ({"dht.alpha": 2}, 5, "completed"), ({"dht.alpha": 2}, 6, "completed"),
        ({"dht.alpha": 4}, 5, "completed"), ({"dht.alpha": 4}, 6, "completed")]
    assert told <= {e["dir"] for e in entries} and told  # events are best effort: one may come after its end
    for entry in entries:  # the same point written as a scenario of its own, run alone
        alone = tmp_path / f"alone-{entry['dir']}.yaml"
        alone.write_text(BASE.replace("seed: 5", f"seed: {entry['seed']}")
                         + f"dht: {{alpha: {entry['params']['dht.alpha']}}}\n")
        alone_dir = run(alone, tmp_path / f"alone-{entry['dir']}")
        assert summary(sweep_dir / entry["dir"]) == summary(alone_dir), entry["dir"]
    with open(sweep_dir / "sweep.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["dir"], r["dht.alpha"], r["seed"], r["status"]) for r in rows] == [
        (e["dir"], str(e["params"]["dht.alpha"]), str(e["seed"]), "completed") for e in entries]
    assert {r["lookup_p99"] for r in rows} == {
        str(next(c["value"] for c in summary(sweep_dir / r["dir"])["criteria"] if c["name"] == "lookup_p99"))
        for r in rows}
    grid = summary(sweep_dir)["grid"]
    assert [(g["settings"], g["runs"], g["criteria"]["lookup_p99"]["n"]) for g in grid] == [
        ({"dht.alpha": 2}, 2, 2), ({"dht.alpha": 4}, 2, 2)]
    assert (sweep_dir / "sweep_dht_alpha.png").is_file()
    assert "Grid: mean and 95 % confidence interval per point" in (sweep_dir / "report.html").read_text()


def test_a_run_that_fails_is_reported_and_the_sweep_goes_on_and_is_resumed(tmp_path, monkeypatch, capsys):
    scenario = tmp_path / "grid.yaml"
    scenario.write_text(BASE + "sweep:\n  dht.alpha: [2, 4]\n")
    real = sim_sweep.simulate_into

    def simulate_into(point, run_dir, *args, **extra):
        if point.dht.alpha == 4:
            raise RuntimeError("the simulator broke")
        return real(point, run_dir, *args, **extra)

    monkeypatch.setattr(sim_sweep, "simulate_into", simulate_into)
    sweep_dir = run(scenario, tmp_path / "out", "--workers", "1")
    entries = json.loads((sweep_dir / "manifest.json").read_text())["sweep"]
    assert [(e["dir"], e["status"]) for e in entries] == [("n8-dht.alpha-2", "completed"),
                                                          ("n8-dht.alpha-4", "failed")]
    assert entries[1]["error"].startswith("RuntimeError: the simulator broke (at test_sweep.py:")
    result = summary(sweep_dir)
    assert result["failed"] == [{"dir": "n8-dht.alpha-4", "label": "grid [8, dht.alpha=4]",
                                 "error": entries[1]["error"]}]
    assert [p["dir"] for p in result["points"]] == ["n8-dht.alpha-2"]  # left out of the figures
    assert [(g["settings"], g["runs"], g["failed"]) for g in result["grid"]] == [
        ({"dht.alpha": 2}, 1, 0), ({"dht.alpha": 4}, 0, 1)]
    with open(sweep_dir / "sweep.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["status"], r["error"] == entries[1].get("error", "")) for r in rows] == [
        ("completed", False), ("failed", True)]
    assert rows[1]["lookup_p99"] == ""
    page = (sweep_dir / "report.md").read_text()
    assert "### Failed runs" in page and "RuntimeError: the simulator broke" in page

    # --resume runs again what failed and keeps what finished
    monkeypatch.setattr(sim_sweep, "simulate_into", real)
    kept = (sweep_dir / "n8-dht.alpha-2" / "events.csv").stat().st_mtime_ns
    assert simulate([str(scenario), "--resume", str(sweep_dir), "--workers", "1"]) == 0
    entries = json.loads((sweep_dir / "manifest.json").read_text())["sweep"]
    assert [e["status"] for e in entries] == ["completed", "completed"]
    assert (sweep_dir / "n8-dht.alpha-2" / "events.csv").stat().st_mtime_ns == kept
    assert [p["dir"] for p in summary(sweep_dir)["points"]] == ["n8-dht.alpha-2", "n8-dht.alpha-4"]
    assert "failed" not in summary(sweep_dir)
    with open(sweep_dir / "sweep.csv", newline="") as file:
        assert [r["status"] for r in csv.DictReader(file)] == ["completed", "completed"]
    # only with the scenario it ran
    assert simulate([str(scenario), "--seed", "6", "--resume", str(sweep_dir)]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "a sweep of another scenario or other values; resume it with the scenario file and --seed it ran with")


def test_a_worker_without_the_run_directory_sends_the_files_back(tmp_path):
    scenario = tmp_path / "grid.yaml"
    scenario.write_text(BASE + "sweep:\n  seeds: 1\n")
    (first,) = expand(load_scenario(scenario))
    result = sim_sweep.run_point(first, str(tmp_path / "elsewhere" / first.dir), "simulate grid.yaml")
    assert result["status"] == "completed" and not (tmp_path / "elsewhere").exists()
    files = result["files"]
    assert {"manifest.json", "events.csv", "summary.json", "report.html"} <= set(files)
    assert json.loads(files["manifest.json"])["command"] == "simulate grid.yaml"
    assert json.loads(files["summary.json"])["seed"] == 5


def test_engine_options_need_a_sweep_and_a_scheduler_in_reach(tmp_path, capsys, monkeypatch):
    scenario = tmp_path / "one.yaml"
    scenario.write_text(BASE)
    assert simulate([str(scenario), "--out", str(tmp_path), "--workers", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        "simulate: --workers, --dask and --resume are for a scenario with a sweep (and without --nodes)")
    scenario.write_text(GRID)
    assert simulate([str(scenario), "--out", str(tmp_path), "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == "simulate: --workers must be at least 1"
    assert not list(tmp_path.glob("grid-*"))
    pytest.importorskip("distributed")
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr("experiment.sweep.CONNECT_TIMEOUT", 1.0)
    assert simulate([str(scenario), "--out", str(tmp_path), "--dask", f"tcp://127.0.0.1:{port}"]) == 2
    assert capsys.readouterr().err.startswith(f"simulate: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}: ")
    assert not list(tmp_path.glob("grid-*"))
