"""The sweep report's attack section (analysis/attacks.py), from a real sweep over the malicious share."""

from __future__ import annotations

import csv

import pytest

from analysis.attacks import PNG, attack_points, paper_rule
from analysis.load import load_run
from sim.cli import main as simulate

SWEEP = """
name: tiny-sybil
seed: 2
warmup: 20
duration: 15
nodes: {count: 30, bootstrap: 2, join_over: 10}
dht: {k: 8, alpha: 4, disjoint_paths: 2}
workload: {lookup: 6.0, put: 1.0, get: 3.0, value_size: 32, updates: 0.5}
adversary: {share: 0.3, behaviours: [collude, stale]}
criteria: {lookup_success: {}}
sweep: {malicious: [0.0, 0.3]}
"""


@pytest.mark.slow  # a sweep of two runs and their reports
def test_the_attack_section_reads_each_point(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SWEEP)
    assert simulate([str(scenario), "--out", str(tmp_path / "out")]) == 0
    (run_dir,) = (tmp_path / "out").iterdir()
    table = attack_points(load_run(run_dir))
    assert list(table["dir"]) == ["n30-m0", "n30-m30"] and list(table["share"]) == [0.0, 0.3]
    for row in table.itertuples():
        with open(run_dir / row.dir / "events.csv") as f:
            lookups = [r for r in csv.DictReader(f) if r["kind"] == "lookup"]
        assert row.lookups == len(lookups) > 0
        assert row.lookup_success == sum(r["ok"] == "1" for r in lookups) / len(lookups)
        assert row.records_mean is not None
    assert table.iloc[0]["get_success"] == 1.0  # no stale copies without an adversary
    report = (run_dir / "report.md").read_text()
    assert "Attacks: success against the malicious share" in report and PNG in report
    assert (run_dir / PNG).is_file()


def test_the_papers_rule():
    assert paper_rule(0.0, 3.0, 1) == 1.0
    assert paper_rule(0.2, 1.0, 1) == 0.8
    assert abs(paper_rule(0.2, 2.0, 2) - (1 - (1 - 0.64) ** 2)) < 1e-12
    assert paper_rule(0.2, None, 4) is None
