"""MCP calls in the simulator: the nodes' sans-IO MCP services over the modelled network (sim/mcp.py),
the scenario's mcp section, mcp events and the MCP criteria."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from experiment.scenario import ScenarioError, load_scenario
from sim.cli import main as simulate

SCENARIO = """
name: mcp-small
seed: 5
warmup: 30
duration: 60
nodes: {count: 24, bootstrap: 2, join_over: 10}
dht: {k: 8, alpha: 3}
churn: {session: {distribution: exponential, mean: 200}, offline: {distribution: exponential, mean: 30}}
workload: {lookup: 0.0, put: 0.0, get: 0.0}
mcp: {providers: 0.3, rate: 3.0, aggregate: 0.2, fanout: 2, service_time: 0.02, attempt_timeout: 0.5,
      timeout: 1.0, service_ttl: 60}
criteria: {mcp_request_p99: {target: 5.0}, mcp_success: {target: 0.9}}
"""


def run(tmp_path: Path) -> tuple[dict, list[dict]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "mcp-small.yaml"
    path.write_text(SCENARIO)
    assert simulate([str(path), "--out", str(tmp_path / "out")]) == 0
    run_dir = next((tmp_path / "out").iterdir())
    with open(run_dir / "events.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"].startswith("mcp")]
    return json.loads((run_dir / "summary.json").read_text()), rows


def test_mcp_calls_are_simulated_and_judged(tmp_path):
    summary, rows = run(tmp_path)
    calls = [r for r in rows if r["kind"] == "mcp"]
    assert len(calls) > 30
    assert sum(r["ok"] == "1" for r in calls) / len(calls) > 0.9
    assert any(r["kind"] == "mcp_discovery" for r in rows)
    judged = {c["name"]: c for c in summary["criteria"]}
    assert set(judged) == {"mcp_request_p99", "mcp_success"}
    assert judged["mcp_success"]["pass"] and judged["mcp_request_p99"]["value"] > 0
    again, rows_again = run(tmp_path / "again")
    assert rows_again == rows  # deterministic for a seed


def test_mcp_criteria_need_an_mcp_section(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ncriteria: {mcp_request_p99: {}}\n")
    with pytest.raises(ScenarioError, match="mcp_request_p99.*needs MCP calls"):
        load_scenario(path)
