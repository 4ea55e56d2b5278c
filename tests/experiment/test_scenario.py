"""The scenario loader: the three shipped scenarios, defaults, and errors that name line and path."""

from __future__ import annotations

import dataclasses
import json
import random
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiment.criteria import DEFAULT_TARGETS
from experiment.scenario import (
    Exponential,
    Lognormal,
    Router,
    Scenario,
    ScenarioError,
    Score,
    Weibull,
    load_scenario,
    parse_scenario,
    validate_regions,
)
from p2pnode.config import GossipConfig, ScoreConfig

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
# The latency model's region names (experiment.latency.REGIONS); spelled out so these tests do not depend on it.
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
    assert (s.measure.delivery_settle, s.measure.delivery_deadline) == (10.0, 30.0)
    assert s.network.idle_timeout == 30.0
    assert s.pubsub is None
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
        "s.yaml:5: churn.session.shape: must be >= 0.1, got 0",
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
    assert errors("name: x\nnodes:\n  regions: {na-east: 1.5, eu-west: -0.5}\n") == [
        "s.yaml:3: nodes.regions.eu-west: must be >= 0, got -0.5",
        "s.yaml:3: nodes.regions.na-east: must be <= 1, got 1.5",
    ]
    # within the tolerance
    parse("name: x\nnodes:\n  regions: {na-east: 0.3333333, eu-west: 0.3333333, oceania: 0.3333334}\n")


def test_missing_required_field_uses_the_parent_line():
    assert only_error("seed: 1\nwarmup: 10\n") == "s.yaml:1: name: required field is missing"
    assert only_error("""\
        name: x
        sweep:
          node: [10, 20]
    """) == ("s.yaml:3: sweep.node: unknown field; expected one of: nodes, scoring, nat, malicious, "
             "disjoint_paths, puzzles, seeds, or a scenario field's dotted path (dht.alpha)")


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
        (
            "address_families",
            "ipv4",
            "'ipv4' is not modelled yet (only 'dual' or 'ipv6' until IPv4-only support lands)",
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
    assert only_error("name: x\nsweep:\n  nodes: []\n") == (
        "s.yaml:3: sweep.nodes: expected at least 1 item, got 0"
    )
    assert only_error("name: x\nsweep: {}\n") == (
        "s.yaml:2: sweep: needs nodes, scoring, nat, malicious, disjoint_paths, puzzles, seeds or a field's "
        "dotted path with values (what to run the scenario with)"
    )
    assert only_error("name: x\nsweep:\n  nodes:\n  scoring:\n") == (
        "s.yaml:2: sweep: needs nodes, scoring, nat, malicious, disjoint_paths, puzzles, seeds or a field's "
        "dotted path with values (what to run the scenario with)"
    )
    assert parse("name: x\nsweep:\n").sweep is None


def test_sweep_scoring():
    s = parse("name: x\npubsub: {}\nsweep:\n  scoring: [false, true]\n")
    assert (s.sweep.nodes, s.sweep.scoring) == (None, [False, True])
    assert only_error("name: x\npubsub: {}\nsweep:\n  scoring:\n    - true\n    - true\n") == (
        "s.yaml:6: sweep.scoring[1]: true is given twice"
    )
    assert only_error("name: x\npubsub: {}\nsweep:\n  scoring: [true, false, true]\n") == (
        "s.yaml:4: sweep.scoring: expected at most 2 items, got 3"
    )
    assert only_error("name: x\npubsub: {}\nsweep:\n  scoring: []\n") == (
        "s.yaml:4: sweep.scoring: expected at least 1 item, got 0"
    )
    assert only_error("name: x\npubsub: {}\nsweep:\n  scoring: ['off']\n") == (
        "s.yaml:4: sweep.scoring[0]: expected true or false, got 'off'"
    )
    assert only_error("name: x\nsweep:\n  scoring: [true]\n") == (
        "s.yaml:3: sweep.scoring: needs a pubsub section"
    )
    # the scaling criterion still needs two node counts
    assert only_error("name: x\npubsub: {}\ncriteria: {scaling: }\nsweep: {scoring: [true, false]}\n") == (
        "s.yaml:3: criteria.scaling: needs a sweep over at least two node counts (sweep.nodes)"
    )
    parse("name: x\npubsub: {}\ncriteria: {scaling: }\nsweep: {nodes: [10, 20], scoring: [true, false]}\n")


def test_sweep_points_over_nodes():
    s = parse("name: x\nnodes: {count: 50, bootstrap: 8}\nsweep:\n  nodes: [5, 100]\n")
    points = s.sweep_points()
    assert [(name, p.nodes.count, p.nodes.bootstrap) for name, p in points] == [("n5", 5, 5), ("n100", 100, 8)]
    assert all(p.pubsub is None and p.source == s.source for _, p in points)
    assert parse("name: x\n").sweep_points() == []


def test_sweep_points_over_scoring():
    s = parse("name: x\nnodes: {count: 50}\npubsub: {scoring: false}\nsweep: {scoring: [true, false]}\n")
    points = s.sweep_points()
    assert [(name, p.nodes.count, p.pubsub.scoring) for name, p in points] == [
        ("n50-scoring-on", 50, True),
        ("n50-scoring-off", 50, False),
    ]
    assert s.pubsub.scoring is False  # the original is unchanged


def test_sweep_points_are_the_product():
    s = parse("""\
        name: x
        nodes:
          regions: {na-east: 1.0}
        pubsub:
          topics: 3
        sweep:
          nodes: [10, 20]
          scoring: [false, true]
    """)
    points = s.sweep_points()
    assert [name for name, _ in points] == [
        "n10-scoring-off",
        "n10-scoring-on",
        "n20-scoring-off",
        "n20-scoring-on",
    ]
    assert [(p.nodes.count, p.pubsub.scoring) for _, p in points] == [
        (10, False),
        (10, True),
        (20, False),
        (20, True),
    ]
    assert all(p.pubsub.topics == 3 and p.sweep == s.sweep for _, p in points)
    with pytest.raises(ScenarioError, match=r"^s\.yaml:3: nodes\.regions\.na-east: "):
        validate_regions(points[-1][1], ["eu-west"])  # the points keep the lines


def test_with_scoring():
    s = parse("name: x\npubsub:\n  peers: 10\n")
    t = s.with_scoring(False)
    assert t.pubsub.scoring is False and s.pubsub.scoring is True
    assert t.pubsub.peers == 10 and t.source == s.source
    assert t.with_scoring(True) == s
    with pytest.raises(ValueError, match="pubsub section"):
        parse("name: x\n").with_scoring(True)


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


def test_dht_preset_and_the_new_workload_rates():
    s = parse("name: x\ndht: {preset: go-libp2p-kad-dht}\n"
              "workload: {find_peer: 0.5, provide: 0.1, find_providers: 2}\n")
    assert s.dht.preset == "go-libp2p-kad-dht" and s.workload.user_lookups()
    assert not parse("name: x\nworkload: {get: 0}\n").workload.user_lookups()
    assert errors("name: x\ndht: {preset: go}\n") == [
        "s.yaml:2: dht.preset: 'go' is not one of p2pnode, go-libp2p-kad-dht"]
    assert errors("name: x\nworkload: {find_providers: 1}\n") == [
        "s.yaml:2: workload.find_providers: needs providers to find (workload.provide > 0)"]


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


# ---- pubsub --------------------------------------------------------------------------------------


def test_pubsub_defaults():
    p = parse("name: x\npubsub: {}\n").pubsub
    assert (p.topics, p.subscribers, p.publishers, p.rate, p.arrivals, p.message_size) == (
        1,
        1.0,
        0.05,
        1.0,
        "poisson",
        1024,
    )
    assert (p.discovery, p.peers, p.max_peers, p.scoring, p.attackers) == ("dht", 20, 40, True, 0.0)
    assert p.topic_names() == ["topic-0"]
    r = p.router
    assert (r.d, r.d_lo, r.d_hi, r.d_lazy, r.d_score, r.d_out) == (6, 4, 12, 6, 4, 2)
    assert (r.heartbeat_interval, r.history_length, r.history_gossip, r.gossip_factor) == (1.0, 5, 3, 0.25)
    sc = p.score
    assert (sc.gossip_threshold, sc.publish_threshold, sc.graylist_threshold) == (-10.0, -50.0, -80.0)
    assert (sc.accept_px_threshold, sc.opportunistic_graft_threshold) == (1.0, 1.0)
    # a null section means no pub-sub; null sub-sections mean their defaults
    assert parse("name: x\npubsub:\n").pubsub is None
    assert parse("name: x\npubsub:\n  router:\n  score:\n").pubsub == p
    assert parse("name: x\npubsub: {topics: 3}\n").pubsub.topic_names() == ["topic-0", "topic-1", "topic-2"]


def test_router_fields_are_gossip_config_fields():
    config = [(f.name, f.default) for f in dataclasses.fields(GossipConfig)]
    assert [(name, field.default) for name, field in Router.model_fields.items()] == config
    router = parse("name: x\npubsub:\n  router: {d: 8, d_hi: 16, flood_publish: false}\n").pubsub.router
    assert GossipConfig(**router.model_dump()) == GossipConfig(d=8, d_hi=16, flood_publish=False)


def test_score_fields_are_score_config_fields():
    config = {f.name: f.default for f in dataclasses.fields(ScoreConfig)}
    for name, field in Score.model_fields.items():
        assert name in config and field.default == config[name], name
    score = parse("name: x\npubsub:\n  score: {gossip_threshold: -5}\n").pubsub.score
    assert ScoreConfig(**score.model_dump()).gossip_threshold == -5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("router:\n    d: 5\n    d_lo: 6", "s.yaml:5: pubsub.router.d_lo: 6 exceeds d (5)"),
        ("router:\n    d_hi: 5\n    d: 6", "s.yaml:4: pubsub.router.d_hi: 5 is below d (6)"),
        ("router:\n    d_lo: 2\n    d_out: 2", "s.yaml:5: pubsub.router.d_out: 2 must be below d_lo (2)"),
        (
            "router:\n    d: 5\n    d_out: 3",
            "s.yaml:5: pubsub.router.d_out: 3 exceeds half of d (5 // 2 = 2)",
        ),
        ("router:\n    d_score: 7", "s.yaml:4: pubsub.router.d_score: 7 exceeds d (6)"),
        (
            "router:\n    history_gossip: 6",
            "s.yaml:4: pubsub.router.history_gossip: 6 exceeds history_length (5)",
        ),
        ("router:\n    d_lo: 0", "s.yaml:4: pubsub.router.d_lo: must be >= 1, got 0"),
        ("router:\n    gossip_factor: 1.5", "s.yaml:4: pubsub.router.gossip_factor: must be <= 1, got 1.5"),
        (
            "score:\n    publish_threshold: -5",
            "s.yaml:4: pubsub.score.publish_threshold: -5 exceeds gossip_threshold (-10)",
        ),
        (
            "score:\n    graylist_threshold: -50",
            "s.yaml:4: pubsub.score.graylist_threshold: -50 must be below publish_threshold (-50)",
        ),
        ("score:\n    gossip_threshold: 1", "s.yaml:4: pubsub.score.gossip_threshold: must be <= 0, got 1"),
        (
            "score:\n    accept_px_threshold: -1",
            "s.yaml:4: pubsub.score.accept_px_threshold: must be >= 0, got -1",
        ),
        (
            "score:\n    opportunistic_graft_threshold: -0.5",
            "s.yaml:4: pubsub.score.opportunistic_graft_threshold: must be >= 0, got -0.5",
        ),
        ("peers: 5", "s.yaml:3: pubsub.peers: 5 is below router.d (6)"),
        ("router: {d: 8, d_hi: 12}\n  peers: 7", "s.yaml:4: pubsub.peers: 7 is below router.d (8)"),
        ("peers: 30\n  max_peers: 29", "s.yaml:4: pubsub.max_peers: 29 is below peers (30)"),
        ("subscribers: 0", "s.yaml:3: pubsub.subscribers: must be > 0, got 0"),
        ("publishers: 1.5", "s.yaml:3: pubsub.publishers: must be <= 1, got 1.5"),
        ("attackers: 1", "s.yaml:3: pubsub.attackers: must be < 1, got 1"),
        ("rate: 0", "s.yaml:3: pubsub.rate: must be > 0, got 0"),
        ("topics: 0", "s.yaml:3: pubsub.topics: must be >= 1, got 0"),
        ("message_size: 1048577", "s.yaml:3: pubsub.message_size: must be <= 1048576, got 1048577"),
        ("arrivals: burst", "s.yaml:3: pubsub.arrivals: 'burst' is not one of poisson, periodic"),
        ("discovery: mdns", "s.yaml:3: pubsub.discovery: 'mdns' is not one of dht, random"),
        ("scoring: 1", "s.yaml:3: pubsub.scoring: expected true or false, got 1"),
    ],
)
def test_pubsub_errors_name_the_field_and_line(text, expected):
    assert only_error(f"name: x\npubsub:\n  {text}\n") == expected


def test_pubsub_cross_field_errors_together():
    lines = errors("""\
        name: x
        pubsub:
          peers: 2
          max_peers: 1
          router:
            d: 3
            d_lo: 4
            d_hi: 2
            d_score: 5
            history_gossip: 6
            d_out: 1
    """)
    # peers and max_peers are judged only once the router section is valid on its own
    assert lines == [
        "s.yaml:7: pubsub.router.d_lo: 4 exceeds d (3)",
        "s.yaml:8: pubsub.router.d_hi: 2 is below d (3)",
        "s.yaml:9: pubsub.router.d_score: 5 exceeds d (3)",
        "s.yaml:10: pubsub.router.history_gossip: 6 exceeds history_length (5)",
    ]
    assert errors("name: x\npubsub:\n  peers: 5\n  max_peers: 4\n") == [
        "s.yaml:3: pubsub.peers: 5 is below router.d (6)",
        "s.yaml:4: pubsub.max_peers: 4 is below peers (5)",
    ]


def test_pubsub_unknown_keys():
    lines = errors("""\
        name: x
        pubsub:
          topic: 3
          router:
            degree: 6
          score:
            gossip: -1
    """)
    assert lines[0].startswith("s.yaml:3: pubsub.topic: unknown field; expected one of: topics, subscribers,")
    assert lines[1].startswith("s.yaml:5: pubsub.router.degree: unknown field; expected one of: d, d_lo, d_hi,")
    assert lines[2] == (
        "s.yaml:7: pubsub.score.gossip: unknown field; expected one of: gossip_threshold, publish_threshold, "
        "graylist_threshold, accept_px_threshold, opportunistic_graft_threshold"
    )
    assert len(lines) == 3


def test_network_and_measure_delivery_fields():
    s = parse("name: x\nnetwork: {idle_timeout: 5}\nmeasure: {delivery_settle: 0, delivery_deadline: 60}\n")
    assert (s.network.idle_timeout, s.measure.delivery_settle, s.measure.delivery_deadline) == (5, 0, 60)
    assert errors("name: x\nnetwork: {idle_timeout: 0}\nmeasure: {delivery_settle: -1, delivery_deadline: 0}\n") == [
        "s.yaml:2: network.idle_timeout: must be > 0, got 0",
        "s.yaml:3: measure.delivery_deadline: must be > 0, got 0",
        "s.yaml:3: measure.delivery_settle: must be >= 0, got -1",
    ]


def test_delivery_criteria():
    s = parse("name: x\npubsub: {}\ncriteria:\n  delivery_rate:\n  delivery_p99: {target: 2}\n")
    assert {k: c.target for k, c in s.criteria.items()} == {"delivery_rate": 0.999, "delivery_p99": 2}
    assert DEFAULT_TARGETS["delivery_rate"] == 0.999 and DEFAULT_TARGETS["delivery_p99"] == 1.0
    assert errors("name: x\ncriteria:\n  delivery_rate:\n  delivery_p99: {}\n") == [
        "s.yaml:3: criteria.delivery_rate: needs a pubsub section",
        "s.yaml:4: criteria.delivery_p99: needs a pubsub section",
    ]
    assert only_error("name: x\npubsub: {}\ncriteria:\n  delivery_rate: {target: 1.5}\n") == (
        "s.yaml:4: criteria.delivery_rate.target: 1.5 is a share and must be in (0, 1]"
    )
    assert only_error("name: x\npubsub: {}\ncriteria:\n  delivery_p99: {target: 0}\n") == (
        "s.yaml:4: criteria.delivery_p99.target: 0 must be > 0"
    )


def test_pubsub_to_dict_round_trips():
    s = parse("name: x\npubsub: {topics: 2, router: {d: 8}, score: {gossip_threshold: -1}}\n")
    d = s.to_dict()
    assert d["pubsub"]["router"]["d"] == 8 and d["pubsub"]["score"]["gossip_threshold"] == -1
    assert Scenario.model_validate(json.loads(json.dumps(d))).to_dict() == d
    assert parse("name: x\n").to_dict()["pubsub"] is None


def _fake_runs(monkeypatch):
    """Make simulate's runs (one process: --workers 1) record their points instead of simulating them."""
    from sim import cli, sweep

    ran = []

    def run_point(run, point_dir, command, progress=None):
        scenario = run.scenario
        ran.append((Path(point_dir).name, scenario.nodes.count, scenario.pubsub and scenario.pubsub.scoring,
                    run.label))
        return {"status": "completed", "perf": {"wall_seconds": 1.0}}

    def run_once(scenario, run_dir, console, label=""):
        ran.append((run_dir.name, scenario.nodes.count, scenario.pubsub and scenario.pubsub.scoring, label))

    monkeypatch.setattr(sweep, "run_point", run_point)
    monkeypatch.setattr(cli, "run_once", run_once)
    monkeypatch.setattr(cli, "report_run", lambda run_dir, console, points=True: None)
    return cli, ran


def test_cli_sweep_manifest_over_nodes_and_scoring(tmp_path, monkeypatch):
    cli, ran = _fake_runs(monkeypatch)
    path = tmp_path / "s.yaml"
    path.write_text("name: ps\npubsub: {}\nsweep: {nodes: [10, 20], scoring: [true, false]}\n")
    assert cli.main([str(path), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    assert ran == [
        ("n10-scoring-on", 10, True, "ps [10, scoring on]"),
        ("n10-scoring-off", 10, False, "ps [10, scoring off]"),
        ("n20-scoring-on", 20, True, "ps [20, scoring on]"),
        ("n20-scoring-off", 20, False, "ps [20, scoring off]"),
    ]
    (run_dir,) = (tmp_path / "out").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["engine"] == "in this process, one run after another"
    assert manifest["sweep"][1] == {
        "nodes": 10,
        "scoring": False,
        "label": "ps [10, scoring off]",
        "dir": "n10-scoring-off",
        "status": "completed",
        "perf": {"wall_seconds": 1.0},
    }
    assert [p["dir"] for p in manifest["sweep"]] == [name for name, *_ in ran]


def test_cli_sweep_manifest_over_nodes_only(tmp_path, monkeypatch):
    cli, ran = _fake_runs(monkeypatch)
    path = tmp_path / "s.yaml"
    path.write_text("name: plain\nsweep: {nodes: [10, 20]}\n")
    assert cli.main([str(path), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    (run_dir,) = (tmp_path / "out").iterdir()
    sweep = json.loads((run_dir / "manifest.json").read_text())["sweep"]
    assert [(p["nodes"], p["scoring"], p["label"], p["dir"]) for p in sweep] == [
        (10, None, "plain [10]", "n10"),
        (20, None, "plain [20]", "n20"),
    ]
    # --nodes on a sweep scenario is a single run
    ran.clear()
    assert cli.main([str(path), "--nodes", "15", "--out", str(tmp_path / "single")]) == 0
    assert [(n, label) for _, n, _, label in ran] == [(15, "")]


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
        "pubsub",
        "mcp",
        "adversary",
        "nat",
        "security",
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
    assert line == "s.yaml:6: churn.offline.mean: must be >= 1, got -1"


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
