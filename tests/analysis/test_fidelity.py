"""The fidelity verdict of `report RUN_A RUN_B`: KS distances between latency distributions, formation-time
and success-rate differences against the stated tolerances, and what the comparison compares."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from test_report import SCENARIO, write_run  # noqa: E402
from test_report_pubsub import PUBSUB_ROWS, PUBSUB_SCENARIO, _in_file_order  # noqa: E402

from analysis.cli import print_fidelity  # noqa: E402
from analysis.compare import compare_runs  # noqa: E402
from analysis.fidelity import chance_distance, ks_distance  # noqa: E402

# --- the KS distance on known distributions ----------------------------------------------------------------


def test_identical_samples_are_at_distance_zero():
    sample = np.array([0.1, 0.2, 0.2, 0.5, 1.0])
    distance, p_value, _ = ks_distance(sample, sample.copy())
    assert distance == 0.0 and p_value == 1.0


def test_disjoint_samples_are_at_distance_one():
    distance, p_value, where = ks_distance(np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0]))
    # exact two-sided p: of the C(5, 2) = 10 equally likely splits, only the two disjoint ones are this far apart
    assert distance == 1.0 and where == 0.3 and p_value == pytest.approx(0.2)


def test_a_shifted_uniform_grid_is_at_the_shift():
    grid = np.arange(1000) / 1000  # uniform on [0, 1): shifting it by 0.3 moves 30 % of the mass past the other
    distance, p_value, where = ks_distance(grid, grid + 0.3)
    assert distance == pytest.approx(0.3, abs=0.002) and p_value < 1e-30  # 0.301: the grid's step
    assert 0.0 <= where <= 1.3


def test_two_normal_samples_of_one_distribution_are_close_and_the_chance_gap_says_how_close():
    rng = np.random.default_rng(1)
    distance, p_value, _ = ks_distance(rng.normal(1.0, 0.2, 2000), rng.normal(1.0, 0.2, 2000))
    chance = chance_distance(2000, 2000)
    assert chance == pytest.approx(1.3581 * (2 / 2000) ** 0.5, rel=1e-3)  # Kolmogorov's 95 % point
    assert distance < chance and p_value > 0.05
    # Means 0.1 standard deviations apart: sup |Φ(x) − Φ(x − 0.1)| = 2Φ(0.05) − 1 ≈ 0.040.
    distance, _, _ = ks_distance(rng.normal(0.0, 1.0, 20000), rng.normal(0.1, 1.0, 20000))
    assert distance == pytest.approx(0.040, abs=0.012)


# --- runs ----------------------------------------------------------------------------------------------------


def lookup_rows(latencies, ok=None, formation_at: float | None = 3.0, gets=(1, 1, 1, 1)) -> list[str]:
    """up/live rows, one formation check (reached at formation_at, or a failed check), a lookup per latency
    (ok 1 unless told) and gets with the given ok values."""
    rows = ["0.000000,up,0,,,,1,", "0.000000,up,1,,,,1,", "1.000000,live,,,,,10,",
            "1.000000,formation,,,,,0.500000,8"]
    if formation_at is None:
        rows.append("2.000000,formation,,,,0,0.500000,8")
    else:
        rows.append(f"{formation_at:.6f},formation,,,,1,1.000000,8")
    ok = ok or [1] * len(latencies)
    for i, (latency, good) in enumerate(zip(latencies, ok, strict=True)):
        rows.append(f"{10 + i * 0.01:.6f},lookup,{i % 8 + 2},{latency:.6f},3,{good},1.000000,8")
    for i, good in enumerate(gets):
        rows.append(f"{30 + i:.6f},get,{i + 2},0.100000,2,{good},,4")
    return rows


LATENCIES = [0.05 + 0.9 * i / 199 for i in range(200)]  # 200 lookups, 50 .. 950 ms


def fidelity_of(tmp_path: Path, a: Path, b: Path) -> dict:
    compare_runs(a, b, tmp_path / "cmp")
    return json.loads((tmp_path / "cmp" / "fidelity.json").read_text())


def figures(fidelity: dict) -> dict:
    return {figure["name"]: figure for figure in fidelity["figures"]}


def test_identical_runs_agree(tmp_path):
    a = write_run(tmp_path / "a", lookup_rows(LATENCIES))
    b = write_run(tmp_path / "b", lookup_rows(LATENCIES))
    fidelity = fidelity_of(tmp_path, a, b)
    found = figures(fidelity)
    assert set(found) == {"lookup_latency_ks", "formation_time", "lookup_success", "put_get_success"}
    assert found["lookup_latency_ks"]["value"] == 0.0 and found["lookup_latency_ks"]["a"] == 200
    assert found["formation_time"]["value"] == 0.0 and found["lookup_success"]["value"] == 0.0
    assert all(figure["agrees"] for figure in found.values())
    assert fidelity["agrees"] is True
    assert fidelity["verdict"] == "The two runs agree within the stated tolerances (4 of 4 figures)."
    assert fidelity["tolerances"] == {"ks_distance": 0.1, "formation_relative": 0.2, "success_difference": 0.02}
    assert "Two simulated runs of scenario tiny" in fidelity["compares"]
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert "## Agreement of the two runs" in md
    assert "| lookup latency: KS distance | n = 200 | n = 200 | 0.000 | 1 | 0.136 | ≤ 0.1 | agrees |" in md
    assert "it agrees when at most 0.1" in md and "within ±20 %" in md and "within ±2 pp" in md
    html = (tmp_path / "cmp" / "report.html").read_text()
    assert "The two runs agree within the stated tolerances" in html and "compare_lookup_cdf.png" in html


def test_a_shifted_run_disagrees(tmp_path):
    a = write_run(tmp_path / "a", lookup_rows(LATENCIES))
    b = write_run(tmp_path / "b", lookup_rows([x + 0.2 for x in LATENCIES]))  # every lookup 200 ms slower
    fidelity = fidelity_of(tmp_path, a, b)
    ks = figures(fidelity)["lookup_latency_ks"]
    # 0.2 s of a 0.9 s wide uniform grid: 2/9 of the mass (the grid step makes it 45 or 46 samples of 200)
    assert ks["value"] == pytest.approx(0.2 / 0.9, abs=0.01) and ks["agrees"] is False
    assert ks["cdf_a"] - ks["cdf_b"] == pytest.approx(ks["value"])
    assert ks["p_value"] < 0.001
    assert fidelity["agrees"] is False
    assert fidelity["verdict"].startswith("The two runs do not agree: 1 of 4 figures outside tolerance "
                                          "(lookup latency KS distance 0.225 (tolerance ≤ 0.1))")


def test_the_model_against_the_emulation(tmp_path):
    sim = write_run(tmp_path / "sim", lookup_rows(LATENCIES, formation_at=20.0))
    ok = [1] * 190 + [0] * 10  # 95 % lookup success against 100 %: −5 pp
    emu = write_run(tmp_path / "emu", lookup_rows(LATENCIES, ok=ok, formation_at=25.0), runtime="emulation")
    fidelity = fidelity_of(tmp_path, sim, emu)
    found = figures(fidelity)
    assert found["formation_time"]["value"] == 0.25 and found["formation_time"]["agrees"] is False
    assert found["lookup_success"]["value"] == -0.05 and found["lookup_success"]["agrees"] is False
    assert found["lookup_latency_ks"]["agrees"] and found["put_get_success"]["agrees"]
    assert fidelity["compares"] == ("The model against real processes: sim (simulated, seed 7) and emu (emulated, "
                                    "seed 7), of scenario tiny.")
    assert fidelity["verdict"] == (
        "The model (sim) does not agree with the emulation: 2 of 4 figures outside tolerance (formation time "
        "relative difference +25.0 % (tolerance ±20 %); lookup success difference -5.00 pp (tolerance ±2 pp)).")
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert "## Fidelity: model against emulation" in md
    console = Console(record=True, width=200)
    print_fidelity(compare_runs(sim, emu, tmp_path / "cmp")[1], ["sim", "emu"], console)
    text = console.export_text()
    assert "differs" in text and "The model (sim) does not agree with the emulation" in text


def test_within_tolerance_the_model_agrees_with_the_emulation(tmp_path):
    emu = write_run(tmp_path / "emu", lookup_rows(LATENCIES, formation_at=24.0, gets=(1, 1, 1, 1) * 25),
                    runtime="emulation")
    sim = write_run(tmp_path / "sim", lookup_rows([x + 0.01 for x in LATENCIES], formation_at=20.0,
                                                  gets=(1, 1, 1, 1) * 24 + (1, 1, 0, 1)))
    fidelity = fidelity_of(tmp_path, emu, sim)  # the emulated run first: formation relative to it
    found = figures(fidelity)
    assert found["formation_time"]["value"] == pytest.approx(-1 / 6, abs=1e-6)
    assert found["put_get_success"]["value"] == -0.01
    assert fidelity["verdict"] == "The model (sim) agrees with the emulation within the stated tolerances " \
                                  "(4 of 4 figures)."


def test_formation_reached_in_one_run_only_disagrees(tmp_path):
    a = write_run(tmp_path / "a", lookup_rows(LATENCIES, formation_at=20.0))
    b = write_run(tmp_path / "b", lookup_rows(LATENCIES, formation_at=None))
    formation = figures(fidelity_of(tmp_path, a, b))["formation_time"]
    assert formation["agrees"] is False and formation["note"] == "formation reached in a only"


def test_different_scenarios_and_settings_say_what_they_compare(tmp_path):
    a = write_run(tmp_path / "a", lookup_rows(LATENCIES))
    other = write_run(tmp_path / "other", lookup_rows(LATENCIES), scenario={**SCENARIO, "name": "other"},
                      runtime="emulation")
    fidelity = fidelity_of(tmp_path, a, other)
    assert fidelity["compares"].startswith("Runs of different scenarios, tiny and other: a (simulated, seed 7) "
                                           "and other (emulated, seed 7).")
    assert "a fidelity verdict needs one scenario run in both runtimes" in fidelity["compares"]
    bigger = write_run(tmp_path / "bigger", lookup_rows(LATENCIES), nodes=20,
                       scenario={**SCENARIO, "nodes": {**SCENARIO["nodes"], "count": 20}}, runtime="emulation")
    fidelity = fidelity_of(tmp_path, a, bigger)
    assert fidelity["compares"] == ("The model against real processes: a (simulated, seed 7) and bigger (emulated, "
                                    "seed 7), of scenario tiny. Their settings differ in `nodes`, "
                                    "`scenario.nodes.count` (see the differences below).")


def test_pubsub_runs_compare_delivery_latency(tmp_path):
    rows = _in_file_order(PUBSUB_ROWS)
    a = write_run(tmp_path / "a", rows, scenario=PUBSUB_SCENARIO)
    slower = [row.replace("122.000000,deliver,4,2.000000", "122.000000,deliver,4,0.400000") for row in rows]
    b = write_run(tmp_path / "b", slower, scenario=PUBSUB_SCENARIO, runtime="emulation")
    found = figures(fidelity_of(tmp_path, a, b))
    ks = found["delivery_latency_ks"]
    # 11 receptions each; one moves from 2.0 s to 0.4 s: at 0.4 s the CDFs are 10/11 and 11/11 apart
    assert (ks["a"], ks["b"]) == (11, 11) and ks["value"] == pytest.approx(1 / 11, abs=1e-6) and ks["agrees"]
    assert found["delivery_rate"]["value"] == 0.0
    assert "lookup_latency_ks" not in found  # no lookups in either run
    assert (tmp_path / "cmp" / "compare_delivery_cdf.png").exists()
