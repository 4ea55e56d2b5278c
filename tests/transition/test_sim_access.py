"""The simulator's access-network model: assignment, each node's selection, reachability and delay, and a
small run whose report has the per-mechanism table."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from experiment.access import operated
from experiment.plan import spread as _spread
from experiment.scenario import ScenarioError, parse_scenario
from sim.access import AccessNetworks, select
from sim.cli import main as simulate

ALL = {"native": 0.2, "dslite": 0.1, "teredo": 0.1, "6to4": 0.1, "isatap": 0.1, "6over4": 0.1, "map-e": 0.1,
       "map-t": 0.1, "464xlat": 0.05, "6rd": 0.05}


def networks(blackhole: float, count: int = 100) -> AccessNetworks:
    half_rtt = [[0.005, 0.04], [0.04, 0.005]]
    rng = random.Random(1)
    kinds = ["native"] * 2 + _spread(ALL, count - 2, rng)
    dropped = [i >= 2 and operated(k) and rng.random() < blackhole for i, k in enumerate(kinds)]
    return AccessNetworks(kinds, dropped, [i % 2 for i in range(count)], half_rtt)


def test_every_node_selects_what_its_network_offers():
    access = networks(0.0)
    assert [a.network for a in access.nodes[:2]] == ["native", "native"]  # bootstrap nodes
    assert all(a.mechanism == a.network and a.fallbacks == 0 for a in access.nodes)
    assert sum(a.network == "dslite" for a in access.nodes) == 10  # shares of the 98 others, rounded
    for a, unreachable, detour in zip(access.nodes, access.unreachable, access.detour, strict=True):
        assert unreachable == (a.mechanism in ("dslite", "464xlat"))
        assert (detour > 0.004) == (a.mechanism in ("6to4", "teredo"))  # public relays in region 0


def test_blackholed_operator_elements_fall_down_the_cascade():
    access = networks(1.0)
    by_network = {a.network: a for a in access.nodes[2:]}
    assert by_network["6rd"].mechanism == "teredo" and by_network["6rd"].fallbacks == 1
    assert by_network["isatap"].mechanism == "teredo"
    assert by_network["dslite"].mechanism == "native"  # IPv6 alone
    assert by_network["teredo"].mechanism == "teredo"  # a public server is never blackholed here
    assert by_network["6rd"].selection_time == pytest.approx(0.25 + 0.016, abs=0.05)  # staggered start


def test_selection_takes_the_probe_round_trip():
    assert select("dslite", 0.01, False) == ("dslite", 0, pytest.approx(0.01))
    assert select("native", 0.0, False) == ("native", 0, 0.0)


def test_schema_accepts_every_mechanism_and_names_a_wrong_one():
    text = "name: t\nnodes:\n  count: 10\n  transition: {native: 0.5, teredo: 0.5}\n  transition_blackhole: 0.2\n"
    scenario = parse_scenario(text)
    assert scenario.nodes.transition == {"native": 0.5, "teredo": 0.5}
    with pytest.raises(ScenarioError, match="gre"):
        parse_scenario("name: t\nnodes:\n  count: 10\n  transition: {gre: 1.0}\n")
    with pytest.raises(ScenarioError, match="transition_blackhole"):
        parse_scenario("name: t\nnodes:\n  count: 10\n  transition_blackhole: 1.5\n")


def test_a_small_run_reports_per_mechanism(tmp_path: Path):
    scenario = tmp_path / "t.yaml"
    scenario.write_text("name: t\nseed: 3\nwarmup: 20\nduration: 40\nnodes:\n  count: 30\n  bootstrap: 3\n"
                        "  join_over: 5\n  transition: {native: 0.4, dslite: 0.3, teredo: 0.3}\n"
                        "workload: {lookup: 6.0, put: 0.0, get: 0.0}\n")
    assert simulate([str(scenario), "--out", str(tmp_path)]) == 0
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    access = json.loads((run / "access.json").read_text())
    assert {n["mechanism"] for n in access["nodes"]} == {"native", "dslite", "teredo"}
    assert access["mechanisms"]["teredo"]["rtt_ms"] > access["mechanisms"]["teredo"]["rtt_native_ms"]
    report = (run / "report.md").read_text()
    assert "## Transition mechanisms" in report and "| dslite |" in report


def test_emulate_refuses_transition_mixes_by_name():
    from emulator.cli import unsupported

    scenario = parse_scenario("name: t\nnodes:\n  count: 10\n  transition: {native: 0.5, dslite: 0.5}\n")
    assert any(p.startswith("nodes.transition:") for p in unsupported(scenario))
    assert unsupported(parse_scenario("name: t\nnodes:\n  count: 10\n")) == []
