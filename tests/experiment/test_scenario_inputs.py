"""Hostile and absurd scenario inputs (issue 14): each ends in a ScenarioError of short lines naming the field and
the line, never a traceback, an overflow or a run that never ends; the classes behind them are closed by
checks over the whole schema (every number bounded) and by property tests over arbitrary documents."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiment.feasibility import check_emulation, check_simulation, simulation_cost
from experiment.latency import MatrixError, load_matrix, scenario_matrix
from experiment.scenario import Lognormal, Scenario, ScenarioError, Weibull, load_scenario, parse_scenario
from tests.helpers.bounds import numeric_fields, unbounded

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
BASE = "name: x\nnodes: {count: 30, bootstrap: 3, join_over: 10}\nwarmup: 30\nduration: 60\n"


def refusal(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="s.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    assert len(lines[0]) <= 300
    return lines[0]


@pytest.mark.parametrize(("text", "expected"), [
    ("churn:\n  session: {distribution: weibull, shape: 0.001, scale: 100}\n",
     "s.yaml:6: churn.session.shape: must be >= 0.1, got 0.001"),
    ("churn:\n  session: {distribution: lognormal, mu: 1000, sigma: 1}\n",
     "s.yaml:6: churn.session.mu: must be <= 17, got 1000"),
    ("churn:\n  session: {distribution: lognormal, mu: 1, sigma: 1.0e+200}\n",
     "s.yaml:6: churn.session.sigma: must be <= 4, got 1e+200"),
    ("measure: {sample_interval: 1.0e-9}\n", "s.yaml:5: measure.sample_interval: must be >= 0.01, got 1e-09"),
    ("dht: {refresh_interval: 1.0e-9}\n", "s.yaml:5: dht.refresh_interval: must be >= 1, got 1e-09"),
    ("workload: {lookup: 1.0e+12}\n", "s.yaml:5: workload.lookup: must be <= 600, got 1000000000000.0"),
])
def test_issue_values_name_field_and_line(text, expected):
    assert refusal(BASE + text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("name: x\nwarmup: 1.0e+308\n", "s.yaml:2: warmup: must be <= 3.1536e+07, got 1e+308"),
    ("name: x\nduration: 1.0e+300\n", "s.yaml:2: duration: must be <= 3.1536e+07, got 1e+300"),
    ("name: x\nnodes: {count: 1000000000}\n", "s.yaml:2: nodes.count: must be <= 1000000, got 1000000000"),
])
def test_end_time_and_node_count_are_bounded(text, expected):
    assert refusal(text) == expected


def test_nodes_override_is_bounded():
    scenario = parse_scenario(BASE, source="s.yaml")
    with pytest.raises(ScenarioError) as info:
        scenario.with_nodes(100_000_000_000)
    assert str(info.value) == "s.yaml (override): nodes.count: must be <= 1000000, got 100000000000"


def test_a_key_with_a_newline_and_a_huge_value_give_one_short_line():
    line = refusal('name: x\n"bad\\nkey": 1\n')  # YAML's escape: a real newline in the key
    assert line.startswith("s.yaml:2: 'bad\\nkey': unknown field; expected one of: name,")
    line = refusal("name: x\nnodes: {count: '" + "9" * 1_000_000 + "'}\n")
    assert line.startswith("s.yaml:2: nodes.count: expected an integer, got '999") and line.endswith("...")
    line = refusal("name: x\nseed: " + "9" * 1000 + "\n")
    assert line == "s.yaml:2: seed: must be <= 9223372036854775807, got an integer of about 1000 digits"
    line = refusal("name: x\nseed: " + "9" * 5000 + "\n")
    assert line == "s.yaml:2: seed: invalid value: a number of 5000 characters"
    line = refusal("name: 'a\n\n b" + "c" * 100_000 + "'\n")
    assert line.startswith("s.yaml:1: name: 'a\\nbccc") and len(line) < 150


# ---- files -----------------------------------------------------------------------------------------------------

def load_refusal(path) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    (line,) = str(info.value).splitlines()
    return line


def test_devices_fifos_and_huge_files_are_not_read(tmp_path):
    assert load_refusal("/dev/urandom") == "/dev/urandom: is a character device; expected a regular file"
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    assert load_refusal(fifo) == f"{fifo}: is a FIFO; expected a regular file"  # and does not wait for a writer
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(300 << 20)  # sparse: 300 MB that take no disk
    assert load_refusal(big) == f"{big}: is 300 MiB; at most 1 MiB is read"
    assert load_refusal(tmp_path) == f"{tmp_path}: is a directory, not a file"
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: x\ndescription: caf\xe9\n")
    assert load_refusal(latin) == f"{latin}:2: not UTF-8 text (byte 0xe9 on line 2)"


def matrix_scenario(tmp_path, csv: bytes | str, regions: str = "{a: 0.5, b: 0.5}") -> Scenario:
    path = tmp_path / "rtt.csv"
    path.write_bytes(csv.encode() if isinstance(csv, str) else csv)
    text = BASE + f"nodes: {{count: 30, bootstrap: 3, join_over: 10, regions: {regions}}}\n"
    text = text.replace("nodes: {count: 30, bootstrap: 3, join_over: 10}\n", "")
    scenario_file = tmp_path / "s.yaml"
    scenario_file.write_text(text + "network: {latency: {model: matrix, matrix: rtt.csv}}\n")
    return load_scenario(scenario_file)


def test_matrix_regions_the_header_lacks(tmp_path):
    scenario = matrix_scenario(tmp_path, "region,a,c\na,10,20\nc,20,10\n")
    with pytest.raises(ScenarioError) as info:
        scenario_matrix(scenario)
    assert str(info.value) == f"{tmp_path / 's.yaml'}:4: nodes.regions.b: 'b' is not one of a, c"


def test_matrix_with_an_infinite_rtt_or_a_bad_byte(tmp_path):
    with pytest.raises(MatrixError) as info:
        scenario_matrix(matrix_scenario(tmp_path, "region,a,b\na,10,inf\nb,inf,10\n"))
    assert str(info.value) == f"{tmp_path / 'rtt.csv'}:2: RTT values are milliseconds in [0, 60000], got inf"
    with pytest.raises(MatrixError) as info:
        scenario_matrix(matrix_scenario(tmp_path, b"region,a,b\na,10,20\nb,20,10\n# caf\xe9\n"))
    assert str(info.value) == (f"{tmp_path / 'rtt.csv'}:4: cannot read the latency matrix: "
                               "not UTF-8 text (byte 0xe9 on line 4)")


def test_matrix_lines_count_blank_lines(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("region,a,b\n\na,10,20\n\nb,21,10\n")
    with pytest.raises(MatrixError, match=r"m.csv:5: matrix is not symmetric \('b' <-> 'a'\)"):
        load_matrix(path)


# ---- what a run costs --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIOS.glob("*.yaml")))
def test_shipped_scenarios_are_feasible(name):
    check_simulation(load_scenario(SCENARIOS / f"{name}.yaml"), available=8e9)


def test_memory_refusal_says_the_estimate():
    scenario = parse_scenario("name: x\nnodes:\n  count: 1000000\n", source="s.yaml")
    with pytest.raises(ScenarioError) as info:
        check_simulation(scenario, available=24e9)
    assert str(info.value) == ("s.yaml:3: nodes.count: 1000000 simulated nodes need about 89.3 GB of memory; "
                               "24 GB is available")
    with pytest.raises(ScenarioError, match=r"s.yaml:2: nodes.count: 300 node processes need about 2\d.\d GB"):
        check_emulation(parse_scenario("name: x\nnodes: {count: 300}\n", source="s.yaml"), available=16e9)


def test_time_refusal_names_the_costliest_field():
    text = ("name: x\nduration: 31536000\nnodes: {count: 100000}\n"
            "workload:\n  lookup: 600\n  put: 0\n  get: 0\n")
    scenario = parse_scenario(text, source="s.yaml")
    with pytest.raises(ScenarioError) as info:
        check_simulation(scenario, available=1e12)
    (line,) = str(info.value).splitlines()
    assert line.startswith("s.yaml:5: workload.lookup: about 4.2e+15 messages to simulate (~8.87e+03 years at "
                           "~15,000 messages/s; 100 % from this field); at most 7 days is run")


def test_a_sweep_is_judged_by_all_its_points():
    text = "name: x\nduration: 7200\nworkload: {lookup: 60}\nsweep: {nodes: [1000, 2000, 5000, 10000]}\n"
    scenario = parse_scenario(text, source="s.yaml")
    one = simulation_cost(scenario.with_nodes(10000)).total
    with pytest.raises(ScenarioError, match="workload.lookup: about"):
        check_simulation(scenario, available=1e12)
    assert one / 15_000 < 7 * 86400  # the largest point alone would run


# ---- the classes --------------------------------------------------------------------------------------------------

def test_every_number_in_the_schema_has_a_range():
    assert len(list(numeric_fields(Scenario))) > 80
    assert unbounded(Scenario) == []


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_every_accepted_distribution_draws_finite_times(data):
    weibull = Weibull(distribution="weibull", shape=data.draw(st.floats(0.1, 10)),
                      scale=data.draw(st.floats(1, 3.15e7)))
    lognormal = Lognormal(distribution="lognormal", mu=data.draw(st.floats(0, 17)),
                          sigma=data.draw(st.floats(1e-9, 4)))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    for dist in (weibull, lognormal):
        assert math.isfinite(dist.expected) and dist.expected > 0
        assert all(math.isfinite(dist.sample(rng)) for _ in range(20))


_FIELDS = ["name", "seed", "warmup", "duration", "nodes", "count", "bootstrap", "regions", "network", "latency",
           "model", "matrix", "jitter", "access", "dht", "k", "refresh_interval", "churn", "session",
           "distribution", "weibull", "lognormal", "shape", "scale", "mu", "sigma", "mean", "workload", "lookup",
           "pubsub", "router", "d", "rate", "measure", "sample_interval", "criteria", "lookup_p99", "target",
           "sweep", "mcp", "eu-west", "a\nb", "<<"]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e-300, 1e300, 1e308, -0.0, 5e-324]),
    st.text(max_size=40), st.text(max_size=3).map(lambda t: t * 10_000), st.sampled_from(_FIELDS),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=8),
                                                                inner, max_size=5),
    max_leaves=30,
)
_VALID = (SCENARIOS / "churn.yaml").read_text()


def _check(text: str) -> None:
    try:
        scenario = parse_scenario(text, source="f.yaml")
    except ScenarioError as exc:
        for line in str(exc).splitlines():
            assert line.startswith("f.yaml") and len(line) <= 300 and line.isprintable(), line
        return
    for dist in (scenario.churn.session, scenario.churn.offline) if scenario.churn else ():
        assert math.isfinite(dist.expected)
    cost = simulation_cost(scenario)
    assert math.isfinite(cost.total) and math.isfinite(cost.memory)
    try:
        check_simulation(scenario, available=1e12)
    except ScenarioError as exc:
        assert len(str(exc).splitlines()) == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=10), _VALUES, max_size=8))
def test_any_yaml_document_gives_a_scenario_or_short_lines(document):
    _check(yaml.safe_dump({"name": "x", **document}, allow_unicode=True))
    _check(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sorted({k for k in _FIELDS if k.isidentifier()})), min_size=1, max_size=3), _VALUES)
def test_any_value_anywhere_in_a_valid_scenario(path, value):
    data = yaml.safe_load(_VALID)
    target = data
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value
    _check(yaml.safe_dump(data, allow_unicode=True))
