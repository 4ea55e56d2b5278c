"""The scenario loader: the three shipped scenarios, defaults, and errors that name line and path."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.scenario import (
    DEFAULT_TARGETS,
    Exponential,
    Lognormal,
    Scenario,
    ScenarioError,
    Weibull,
    load_scenario,
    parse_scenario,
    validate_regions,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
# The latency model's region names (sim.latency.REGIONS); spelled out so these tests do not depend on it.
REGIONS = (
    "na-east",
    "na-west",
    "sa-east",
    "eu-west",
    "eu-central",
    "ap-northeast",
    "ap-southeast",
    "oceania",
    "africa",
)


def parse(text: str, **kwargs) -> Scenario:
    return parse_scenario(textwrap.dedent(text), source="s.yaml", **kwargs)


def errors(text: str, **kwargs) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse(text, **kwargs)
    return str(info.value).splitlines()


def only_error(text: str, **kwargs) -> str:
    lines = errors(text, **kwargs)
    assert len(lines) == 1, lines
    return lines[0]


# ---- the shipped scenarios ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["formation", "churn", "scale"])
def test_shipped_scenarios_load(name):
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    assert scenario.name == name
    assert scenario.source == SCENARIOS / f"{name}.yaml"
    assert scenario.nodes.join_over <= scenario.warmup
    if scenario.nodes.regions is not None:
        assert set(scenario.nodes.regions) <= set(REGIONS)
        assert sum(scenario.nodes.regions.values()) == pytest.approx(1.0)
    validate_regions(scenario, REGIONS)


def test_formation_scenario():
    s = load_scenario(SCENARIOS / "formation.yaml")
    assert (s.nodes.count, s.nodes.bootstrap, s.nodes.join_over) == (100, 4, 10)
    assert (s.warmup, s.duration) == (10, 50)
    assert s.churn is None and s.sweep is None
    assert (s.workload.lookup, s.workload.put, s.workload.get) == (1.0, 0, 0)
    assert s.measure.formation_sample == 100
    assert {k: c.target for k, c in s.criteria.items()} == {
        "formation_time": 30,
        "lookup_p99": DEFAULT_TARGETS["lookup_p99"],
        "lookup_success": DEFAULT_TARGETS["lookup_success"],
    }


def test_churn_scenario():
    s = load_scenario(SCENARIOS / "churn.yaml")
    assert (s.nodes.count, s.nodes.bootstrap, s.nodes.join_over, s.warmup, s.duration) == (
        1000,
        8,
        60,
        120,
        600,
    )
    assert set(s.nodes.regions) == set(REGIONS)
    assert isinstance(s.churn.session, Weibull) and s.churn.session.shape < 1
    assert isinstance(s.churn.offline, Exponential) and s.churn.offline.mean == 600
    assert s.churn.graceful == 0.0
    assert (s.workload.lookup, s.workload.put, s.workload.get) == (1.0, 0.1, 0.5)
    assert set(s.criteria) == {"lookup_p99", "lookup_success", "put_get_success"}


def test_scale_scenario_matches_churn():
    churn = load_scenario(SCENARIOS / "churn.yaml")
    scale = load_scenario(SCENARIOS / "scale.yaml")
    assert scale.duration == 300
    assert scale.sweep.nodes == [1000, 2000, 5000, 10000]
    assert scale.churn == churn.churn and scale.workload == churn.workload
    assert scale.nodes.regions == churn.nodes.regions
    assert scale.criteria["scaling"].target == 1.5
    assert set(scale.criteria) == {"scaling", "lookup_p99", "lookup_success"}


# ---- defaults ------------------------------------------------------------------------------------


def test_defaults():
    s = parse("name: minimal\n")
    assert (s.seed, s.warmup, s.duration, s.description) == (0, 60, 600, "")
    n = s.nodes
    assert (n.count, n.bootstrap, n.join_over, n.regions) == (1000, 4, 30, None)
    assert (n.nat, n.address_families, n.transition) == ({"none": 1.0}, {"dual": 1.0}, {"native": 1.0})
    lat = s.network.latency
    assert (lat.model, lat.matrix, lat.jitter, lat.access, s.network.loss) == (
        "regions",
        None,
        0.1,
        (0.002, 0.02),
        0,
    )
    d = s.dht
    assert (d.k, d.alpha, d.disjoint_paths, d.request_timeout) == (20, 5, 1, 2.0)
    assert (d.record_ttl, d.republish_interval, d.refresh_interval, d.wire) == (3600, 1800, 600, "objects")
    assert s.churn is None and s.sweep is None and s.criteria is None
    w = s.workload
    assert (w.lookup, w.put, w.get, w.value_size) == (1.0, 0.1, 0.5, 256)
    assert (s.measure.sample_interval, s.measure.formation_sample) == (1.0, 200)
    assert s.source == Path("s.yaml")


def test_empty_sections_and_churn_defaults():
    s = parse("name: x\ndht:\nnetwork:\nchurn: {}\ncriteria: {lookup_p99: , lookup_success: {}}\n")
    assert s.dht.k == 20 and s.network.loss == 0
    assert isinstance(s.churn.session, Weibull) and isinstance(s.churn.offline, Exponential)
    assert s.criteria["lookup_p99"].target == 0.5 and s.criteria["lookup_success"].target == 0.99


def test_ints_are_accepted_for_floats_and_distributions_sample():
    s = parse("""\
        name: x
        warmup: 100
        churn:
          session: {distribution: lognormal, mu: 7, sigma: 1}
          offline: {distribution: exponential, mean: 60}
    """)
    assert isinstance(s.warmup, float) and s.warmup == 100.0
    assert isinstance(s.churn.session, Lognormal)
    rng = random.Random(1)
    assert all(s.churn.session.sample(rng) > 0 for _ in range(100))
    assert s.churn.offline.expected == 60


def test_scenario_is_frozen():
    s = parse("name: x\n")
    with pytest.raises(ValueError):
        s.seed = 3
    with pytest.raises(ValueError):
        s.nodes.count = 3


def test_region_shares_default_evenly():
    s = parse("name: x\n")
    shares = s.nodes.region_shares(REGIONS)
    assert set(shares) == set(REGIONS) and sum(shares.values()) == pytest.approx(1)


def test_merge_keys_and_anchors():
    s = parse("""\
        name: x
        churn:
          session: &dist {distribution: exponential, mean: 60}
          offline:
            <<: *dist
            mean: 30
    """)
    assert s.churn.session.mean == 60 and s.churn.offline.mean == 30


# ---- errors: line and path -----------------------------------------------------------------------


def test_unknown_key_at_depth():
    line = only_error("""\
        name: x
        network:
          latency:
            model: regions
            jiter: 0.1
    """)
    assert line.startswith("s.yaml:5: network.latency.jiter: unknown field; expected one of: model, matrix,")


def test_unknown_top_level_key_and_source_is_not_settable():
    assert only_error("name: x\nsource: y.yaml\n").startswith("s.yaml:2: source: unknown field")


def test_wrong_type():
    assert (
        only_error("name: x\nnodes:\n  count: abc\n")
        == "s.yaml:3: nodes.count: expected an integer, got 'abc'"
    )
    assert only_error("name: x\nseed: 1.5\n") == "s.yaml:2: seed: expected an integer, got 1.5"
    assert only_error("name: x\nwarmup: '10'\n") == "s.yaml:2: warmup: expected a number, got '10'"
    assert only_error("name: x\nduration: true\n") == "s.yaml:2: duration: expected a number, got true"
    assert only_error("name: x\ndht: [1]\n") == "s.yaml:2: dht: expected a mapping, got a list"


def test_out_of_range():
    assert only_error("name: x\nnetwork:\n  loss: 1\n") == "s.yaml:3: network.loss: must be < 1, got 1"
    assert only_error("name: x\nnodes:\n  count: 1\n") == "s.yaml:3: nodes.count: must be >= 2, got 1"
    assert only_error("name: x\nduration: .inf\n") == "s.yaml:2: duration: expected a finite number, got inf"


def test_unknown_distribution():
    line = only_error("""\
        name: x
        churn:
          session: {distribution: weibul, shape: 0.6, scale: 1800}
    """)
    assert (
        line == "s.yaml:3: churn.session.distribution: 'weibul' is not one of exponential, weibull, lognormal"
    )


def test_distribution_parameters():
    lines = errors("""\
        name: x
        churn:
          session:
            distribution: weibull
            shape: 0
          offline:
            mean: 5
    """)
    assert lines == [
        "s.yaml:3: churn.session.scale: required field is missing",
        "s.yaml:5: churn.session.shape: must be > 0, got 0",
        "s.yaml:6: churn.offline.distribution: "
        "required field is missing (one of exponential, weibull, lognormal)",
    ]
    assert only_error("""\
        name: x
        churn:
          offline: {distribution: exponential, mean: 5, shape: 1}
    """).startswith("s.yaml:3: churn.offline.shape: unknown field; expected one of: distribution, mean")


def test_shares_must_sum_to_one():
    line = only_error("""\
        name: x
        nodes:
          regions:
            na-east: 0.5
            eu-west: 0.4
    """)
    assert line == "s.yaml:3: nodes.regions: shares sum to 0.9, not 1"
    line = only_error("name: x\nnodes:\n  regions: {na-east: 1.5, eu-west: -0.5}\n")
    assert line == "s.yaml:3: nodes.regions.eu-west: must be >= 0, got -0.5"
    # within the tolerance
    parse("name: x\nnodes:\n  regions: {na-east: 0.3333333, eu-west: 0.3333333, oceania: 0.3333334}\n")


def test_missing_required_field_uses_the_parent_line():
    assert only_error("seed: 1\nwarmup: 10\n") == "s.yaml:1: name: required field is missing"
    lines = errors("""\
        name: x
        sweep:
          node: [10, 20]
    """)
    assert lines == [
        "s.yaml:2: sweep.nodes: required field is missing",
        "s.yaml:3: sweep.node: unknown field; expected one of: nodes",
    ]
    lines = errors("""\
        name: x
        sweep: {}
    """)
    assert lines == ["s.yaml:2: sweep.nodes: required field is missing"]


def test_duplicate_key():
    lines = errors("""\
        name: x
        dht:
          k: 20
          alpha: 3
          k: 10
    """)
    assert lines == ["s.yaml:5: dht.k: duplicate key (first given on line 3)"]


def test_yaml_syntax_error():
    line = only_error("name: x\nnodes:\n  count: [1, 2\n  bootstrap: 3\n")
    assert line.startswith("s.yaml:4: invalid YAML:")
    assert only_error("name: x\n\tseed: 1\n").startswith("s.yaml:2: invalid YAML:")


def test_unknown_region():
    line = only_error("name: x\nnodes:\n  regions:\n    na-east: 0.5\n    mars: 0.5\n")
    assert line.startswith("s.yaml:5: nodes.regions.mars: 'mars' is not one of na-east, ")


def test_validate_regions_with_given_names():
    # With a latency matrix the region names come from the CSV header: loading does not check them,
    # the simulator calls validate_regions with the header's names.
    text = (
        "name: x\nnodes:\n  regions:\n    lab-a: 0.5\n    lab-b: 0.5\n"
        "network:\n  latency: {model: matrix, matrix: m.csv}\n"
    )
    with pytest.raises(ScenarioError) as info:
        validate_regions(_with_matrix(text), ["lab-a", "lab-c"])
    assert str(info.value).endswith("5: nodes.regions.lab-b: 'lab-b' is not one of lab-a, lab-c")
    validate_regions(_with_matrix(text), ["lab-a", "lab-b"])


def _with_matrix(text: str) -> Scenario:
    import tempfile

    tmp = Path(tempfile.mkdtemp())
    (tmp / "m.csv").write_text("region,lab-a,lab-b\nlab-a,1,2\nlab-b,2,1\n")
    (tmp / "s.yaml").write_text(text)
    return load_scenario(tmp / "s.yaml")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nat", "symmetric", "'symmetric' is not modelled yet (only 'none' until NAT traversal lands)"),
        (
            "address_families",
            "ipv4",
            "'ipv4' is not modelled yet (only 'dual' or 'ipv6' until IPv4-only support lands)",
        ),
        (
            "transition",
            "teredo",
            "'teredo' is not modelled yet (only 'native' until IPv6 transition support lands)",
        ),
    ],
)
def test_reserved_known_but_unmodelled(field, value, message):
    line = only_error(f"name: x\nnodes:\n  {field}:\n    {value}: 1.0\n")
    assert line == f"s.yaml:4: nodes.{field}.{value}: {message}"


def test_reserved_unknown_value_lists_the_allowed_ones():
    line = only_error("name: x\nnodes:\n  nat: {full-cones: 1.0}\n")
    assert line == (
        "s.yaml:3: nodes.nat.full-cones: 'full-cones' is not one of none, full-cone, restricted, "
        "port-restricted, symmetric"
    )
    parse("name: x\nnodes:\n  address_families: {dual: 0.5, ipv6: 0.5}\n")


def test_matrix_file_missing(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nnetwork:\n  latency:\n    model: matrix\n    matrix: rtt.csv\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}:5: network.latency.matrix: file not found: {tmp_path / 'rtt.csv'}"
    (tmp_path / "rtt.csv").write_text("region,a\na,1\n")
    s = load_scenario(path)  # resolved against the scenario's directory, not the working directory
    assert s.matrix_path == tmp_path / "rtt.csv"


def test_matrix_model_needs_and_regions_model_forbids_a_path():
    assert only_error("name: x\nnetwork:\n  latency:\n    model: matrix\n") == (
        "s.yaml:3: network.latency.matrix: required when model is 'matrix' (a CSV file of RTTs in ms)"
    )
    assert only_error("name: x\nnetwork:\n  latency: {matrix: a.csv}\n") == (
        "s.yaml:3: network.latency.matrix: only used with model: matrix (model is 'regions')"
    )


def test_cross_field_checks():
    lines = errors("""\
        name: x
        warmup: 10
        nodes:
          count: 10
          bootstrap: 4
          join_over: 20
        dht:
          alpha: 3
          disjoint_paths: 4
          record_ttl: 100
          republish_interval: 100
    """)
    # join_over against warmup is judged only once every section is valid on its own
    assert lines == [
        "s.yaml:9: dht.disjoint_paths: 4 exceeds alpha (3)",
        "s.yaml:11: dht.republish_interval: 100 must be shorter than record_ttl (100)",
    ]
    assert only_error("name: x\nwarmup: 10\nnodes:\n  join_over: 20\n") == (
        "s.yaml:4: nodes.join_over: 20 exceeds warmup (10)"
    )
    assert only_error("name: x\nnodes:\n  count: 3\n  bootstrap: 4\n") == (
        "s.yaml:4: nodes.bootstrap: 4 bootstrap nodes but only 3 nodes"
    )


def test_criteria():
    assert only_error("name: x\ncriteria:\n  speed: {}\n").startswith(
        "s.yaml:3: criteria.speed: 'speed' is not one of formation_time, lookup_p99,"
    )
    assert only_error("name: x\ncriteria:\n  lookup_success: {target: 2}\n") == (
        "s.yaml:3: criteria.lookup_success.target: 2 is a share and must be in (0, 1]"
    )
    assert only_error("name: x\ncriteria:\n  scaling: {target: 2}\n") == (
        "s.yaml:3: criteria.scaling: needs a sweep over at least two node counts (sweep.nodes)"
    )
    assert only_error("name: x\nworkload: {put: 0}\ncriteria:\n  put_get_success:\n") == (
        "s.yaml:4: criteria.put_get_success: needs puts and gets (workload.put > 0 and workload.get > 0)"
    )
    assert only_error("name: x\ncriteria:\n  lookup_p99: {target: fast}\n") == (
        "s.yaml:3: criteria.lookup_p99.target: expected a number, got 'fast'"
    )


def test_sweep():
    assert only_error("name: x\nsweep:\n  nodes: [10, 20, 20]\n") == (
        "s.yaml:3: sweep.nodes[2]: 20 after 20: must be ascending"
    )
    assert only_error("name: x\nsweep:\n  nodes:\n    - 10\n    - 1\n") == (
        "s.yaml:5: sweep.nodes[1]: must be >= 2, got 1"
    )
    assert only_error("name: x\nsweep:\n  nodes: []\n").startswith("s.yaml:3: sweep.nodes: ")


def test_several_problems_sorted_by_line():
    lines = errors("""\
        name: bad name
        seed: -1
        nodes:
          count: many
        dht:
          wire: json
    """)
    assert [line.split(":")[1] for line in lines] == ["1", "2", "4", "6"]
    assert lines[3] == "s.yaml:6: dht.wire: 'json' is not one of objects, exact"


def test_file_level_problems(tmp_path):
    for text, expected in [
        ("", "s.yaml: the file is empty; expected a mapping with at least 'name'"),
        ("# only a comment\n", "s.yaml: the file is empty; expected a mapping with at least 'name'"),
        ("- name: x\n", "s.yaml:1: expected a mapping of scenario fields at the top level, got a list"),
        (
            "just text\n",
            "s.yaml:1: expected a mapping of scenario fields at the top level, got a single value",
        ),
    ]:
        assert only_error(text) == expected
    assert only_error("name: x\n---\nname: y\n").startswith("s.yaml:2: invalid YAML:")
    assert only_error("name: !!python/object:os.system x\n").startswith("s.yaml:1: name: invalid value:")

    missing = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioError, match=r"nope\.yaml: no such file"):
        load_scenario(missing)
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_scenario(binary)


def test_parse_without_source_labels_string():
    with pytest.raises(ScenarioError, match=r"^<string>:1: seed: "):
        parse_scenario("seed: x\nname: y\n")


# ---- overrides, with_nodes, to_dict ------------------------------------------------------------


def test_overrides():
    s = parse("name: x\nseed: 1\n", overrides={"seed": 7, "nodes.count": 50, "dht": {"k": 10}})
    assert (s.seed, s.nodes.count, s.dht.k, s.dht.alpha) == (7, 50, 10, 5)
    assert only_error("name: x\n", overrides={"seed": -1}) == "s.yaml (override): seed: must be >= 0, got -1"


def test_with_nodes():
    s = load_scenario(SCENARIOS / "churn.yaml")
    t = s.with_nodes(5000)
    assert t.nodes.count == 5000 and t.nodes.bootstrap == 8
    assert s.nodes.count == 1000  # the original is unchanged
    assert t.source == s.source and t.churn == s.churn and t.criteria == s.criteria
    small = s.with_nodes(3)
    assert (small.nodes.count, small.nodes.bootstrap) == (3, 3)
    with pytest.raises(ScenarioError, match=r"nodes\.count: must be >= 2, got 1"):
        s.with_nodes(1)


def test_with_nodes_keeps_lines_for_validate_regions():
    s = parse("name: x\nnodes:\n  regions:\n    na-east: 1.0\n").with_nodes(10)
    with pytest.raises(ScenarioError, match=r"^s\.yaml:4: nodes\.regions\.na-east: "):
        validate_regions(s, ["eu-west"])


@pytest.mark.parametrize("name", ["formation", "churn", "scale"])
def test_to_dict_is_json_and_stable(name):
    s = load_scenario(SCENARIOS / f"{name}.yaml")
    d = s.to_dict()
    text = json.dumps(d)
    assert json.dumps(load_scenario(SCENARIOS / f"{name}.yaml").to_dict()) == text
    assert list(d) == [
        "name",
        "description",
        "seed",
        "warmup",
        "duration",
        "nodes",
        "network",
        "dht",
        "churn",
        "workload",
        "measure",
        "criteria",
        "sweep",
    ]
    assert "source" not in d
    # the dict is itself a valid scenario and round-trips
    assert Scenario.model_validate(json.loads(text)).to_dict() == d


def test_to_dict_sorts_user_maps():
    a = parse("name: x\nnodes:\n  regions: {na-east: 0.5, eu-west: 0.5}\n").to_dict()
    b = parse("name: x\nnodes:\n  regions: {eu-west: 0.5, na-east: 0.5}\n").to_dict()
    assert json.dumps(a) == json.dumps(b)


# ---- robustness ----------------------------------------------------------------------------------


def test_merged_keys_keep_the_explicit_line():
    line = only_error("""\
        name: x
        churn:
          session: &d {distribution: exponential, mean: 5}
          offline:
            <<: *d
            mean: -1
    """)
    assert line == "s.yaml:6: churn.offline.mean: must be > 0, got -1"


def test_hostile_yaml_is_a_scenario_error():
    assert only_error("name: x\na: &x {<<: *x}\n") == "s.yaml:2: a: an alias refers to itself"
    assert only_error("name: x\nc: " + "[" * 3000 + "]" * 3000 + "\n") == (
        "s.yaml: invalid YAML: nested too deeply"
    )
    bomb, prev = "name: x\na: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n", "a"
    for name in "bcdefghi":
        bomb += f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]\n"
        prev = name
    assert "values once aliases are expanded" in only_error(bomb)


def test_scenario_error_pickles():
    import pickle

    with pytest.raises(ScenarioError) as info:
        parse("name: x\nseed: -1\n")
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.problems == info.value.problems


def test_hint_for_exponent_read_as_text():
    assert only_error("name: x\nduration: 1e3\n") == (
        "s.yaml:2: duration: expected a number, got '1e3' "
        "(YAML reads an exponent without '.' and sign as text: write 1.0e+3)"
    )
    assert parse("name: x\nduration: 1.0e+3\n").duration == 1000


def test_access_must_be_a_pair():
    assert only_error("name: x\nnetwork:\n  latency:\n    access: [0.01]\n") == (
        "s.yaml:4: network.latency.access: expected at least 2 items"
    )
    assert only_error("name: x\nnetwork:\n  latency:\n    access: [0.02, 0.01]\n") == (
        "s.yaml:4: network.latency.access: range [0.02, 0.01] has its lower bound above its upper bound"
    )


_VALID = (SCENARIOS / "churn.yaml").read_text()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(_VALID.splitlines()), max_size=40),
    st.integers(0, 2000),
    st.text(alphabet=" :-[]{}&*!#'\"\n\tabc01.e", max_size=30),
)
def test_any_text_gives_a_scenario_or_a_scenario_error(lines, cut, junk):
    """User mistakes never escape as anything but ScenarioError, and every message names the file."""
    for text in ("\n".join(lines), _VALID[:cut] + junk + _VALID[cut:]):
        try:
            parse_scenario(text, source="f.yaml")
        except ScenarioError as exc:
            assert str(exc)
            assert all(line.startswith("f.yaml") for line in str(exc).splitlines())
