"""The security layer in the simulator: a scenario's security section switches on the node-ID puzzles, the
proof of work and the rate limits of every simulated node, and the network still forms, finds and stores."""

from __future__ import annotations

import json

from sim.cli import main as simulate
from tests.sim.test_simulation import SMALL, run

SECURITY = """security: {puzzle_static: 3, puzzle_dynamic: 4, siblings: 8, pow_difficulty: 6,
           rate_limit_per_peer: 500, total_rate_limit: 50000}
"""


def test_a_run_with_every_defence_on_forms_finds_and_stores(tmp_path):
    path = tmp_path / "secure.yaml"
    path.write_text(SMALL.format(nodes=20, churn="", wire="exact", paths=2) + SECURITY)
    run_dir = run(path, tmp_path / "out")
    judged = {c["name"]: c for c in json.loads((run_dir / "summary.json").read_text())["criteria"]}
    assert judged["lookup_success"]["value"] == 1.0 and judged["put_get_success"]["value"] == 1.0
    assert judged["formation_time"]["pass"]


def test_security_values_are_checked_with_their_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(SMALL.format(nodes=30, churn="", wire="objects", paths=1)
                    + "security: {siblings: 3, pow_difficulty: 40}\n")
    assert simulate([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "security.pow_difficulty" in err and ":12:" in err
