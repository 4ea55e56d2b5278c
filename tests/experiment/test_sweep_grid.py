"""A sweep's grid: dotted paths checked against the schema, each value validated with the file's line, the
combinations, seeds, and the runs' order, names and labels."""

from __future__ import annotations

import textwrap

import pytest

from experiment.scenario import ScenarioError, parse_scenario
from experiment.scenario.grid import MAX_RUNS, expand


def parse(text: str):
    return parse_scenario(textwrap.dedent(text), source="s.yaml")


def error(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse(text)
    return str(info.value)


def test_a_grid_over_dotted_paths_and_seeds_expands_in_order():
    s = parse("""\
        name: g
        seed: 7
        churn: {}
        sweep:
          dht.alpha: [3, 8]
          churn.session.scale: [600, 1800.5]
          seeds: 2
    """)
    runs = expand(s)
    assert [r.dir for r in runs][:3] == ["n1000-dht.alpha-3-churn.session.scale-600-seed7",
                                         "n1000-dht.alpha-3-churn.session.scale-600-seed8",
                                         "n1000-dht.alpha-3-churn.session.scale-1800.5-seed7"]
    assert len(runs) == 8 and len({r.dir for r in runs}) == 8
    assert [(r.scenario.dht.alpha, r.scenario.churn.session.scale, r.scenario.seed) for r in runs[-2:]] == [
        (8, 1800.5, 7), (8, 1800.5, 8)]
    assert runs[0].label == "g [1000, dht.alpha=3, churn.session.scale=600, seed 7]"
    assert runs[-1].entry() == {"nodes": 1000, "scoring": None, "label": runs[-1].label, "dir": runs[-1].dir,
                                "params": {"dht.alpha": 8, "churn.session.scale": 1800.5}, "seed": 8}
    # every run keeps the rest of the scenario, its source (relative files) and the sweep itself
    assert all(r.scenario.source == s.source and r.scenario.sweep == s.sweep and r.scenario.dht.k == 20
               for r in runs)
    assert s.sweep_points()[0] == (runs[0].dir, runs[0].scenario)
    assert s.to_dict()["sweep"]["dht.alpha"] == [3, 8]


def test_the_older_keys_combine_with_the_grid():
    s = parse("name: g\npubsub: {}\nsweep: {nodes: [10, 20], scoring: [true, false], pubsub.router.d: [4, 6]}\n")
    runs = expand(s)
    assert [r.dir for r in runs[:3]] == ["n10-scoring-on-pubsub.router.d-4", "n10-scoring-on-pubsub.router.d-6",
                                         "n10-scoring-off-pubsub.router.d-4"]
    assert [(r.nodes, r.scoring, r.scenario.pubsub.router.d) for r in runs[-1:]] == [(20, False, 6)]


def test_values_that_are_not_plain_words_are_named_by_index():
    s = parse("name: g\nsweep:\n  network.latency.access: [[0.001, 0.002], [0.01, 0.02]]\n  description: [a b, c]\n")
    assert [r.dir for r in expand(s)] == ["n1000-network.latency.access-v0-description-v0",
                                          "n1000-network.latency.access-v0-description-v1",
                                          "n1000-network.latency.access-v1-description-v0",
                                          "n1000-network.latency.access-v1-description-v1"]
    assert expand(s)[1].label == 'g [1000, network.latency.access=[0.001, 0.002], description=c]'


def test_a_bad_path_names_the_field_and_line():
    assert error("name: x\nsweep:\n  dht.alpah: [3, 5]\n").startswith(
        "s.yaml:3: sweep.dht.alpah: dht has no field 'alpah'; expected one of: k, alpha, disjoint_paths, ")
    assert error("name: x\nsweep:\n  seeds: 2\n  dht.alpha.x: [3]\n") == (
        "s.yaml:4: sweep.dht.alpha.x: dht.alpha is a single value, not a section (sweep dht.alpha itself)")
    assert error("name: x\nsweep:\n  name: [a, b]\n") == "s.yaml:3: sweep.name: name cannot be swept"
    assert error("name: x\nchurn: {}\nsweep:\n  churn.session.shap: [1]\n").startswith(
        "s.yaml:4: sweep.churn.session.shap: churn.session has no field 'shap'; expected one of: distribution, mean")


def test_each_value_is_validated_at_its_line():
    assert error("name: x\nsweep:\n  dht.alpha:\n    - 3\n    - 50000\n") == (
        "s.yaml:5: sweep.dht.alpha[1]: must be <= 64, got 50000")
    assert error("name: x\nsweep:\n  dht.alpha: [3, '5']\n") == (
        "s.yaml:3: sweep.dht.alpha[1]: expected an integer, got '5'")
    # a whole section swept: the problem inside it is named from the swept path on
    assert error("name: x\nsweep:\n  dht: [{alpha: 3}, {alpah: 3}]\n").startswith(
        "s.yaml:3: sweep.dht[1]: alpah: unknown field; expected one of: k, alpha, disjoint_paths, request_timeout, ")
    # a value that breaks another field's rule says which
    assert error("name: x\nnodes: {join_over: 30}\nsweep:\n  warmup: [10, 60]\n") == (
        "s.yaml:4: sweep.warmup[0]: with this value, nodes.join_over: 30 exceeds warmup (10)")


def test_the_shape_of_the_lists():
    assert error("name: x\nsweep:\n  dht.alpha: 3\n") == "s.yaml:3: sweep.dht.alpha: expected a list of values, got 3"
    assert error("name: x\nsweep:\n  dht.alpha: []\n") == "s.yaml:3: sweep.dht.alpha: expected at least 1 item, got 0"
    assert error("name: x\nsweep:\n  dht.alpha: [3, 5, 3]\n") == "s.yaml:3: sweep.dht.alpha[2]: 3 is given twice"
    assert error("name: x\nsweep:\n  seeds: 0\n") == "s.yaml:3: sweep.seeds: must be >= 1, got 0"
    assert error("name: x\nsweep:\n  seeds: 2\n  seed: [1, 2]\n") == (
        "s.yaml:3: sweep.seeds: give seeds (a count) or seed (a list of seeds), not both")
    assert error("name: x\nseed: 9223372036854775806\nsweep:\n  seeds: 3\n") == (
        "s.yaml:4: sweep.seeds: seeds 9223372036854775806 .. 9223372036854775808 pass the largest seed, 2**63 - 1")
    many = ", ".join(str(i) for i in range(1, 101))
    assert error(f"name: x\nsweep:\n  seeds: 1000\n  dht.k: [{many}]\n") == (
        f"s.yaml:2: sweep: 100000 runs; at most {MAX_RUNS}")


def test_a_combination_refused_is_said_at_the_sweep():
    text = "name: x\nwarmup: 10\nnodes: {join_over: 5}\nsweep:\n  warmup: [4, 30]\n  nodes.join_over: [5, 20]\n"
    assert error(text) == ("s.yaml:5: sweep.warmup[0]: with this value, nodes.join_over: 5 exceeds warmup (4)\n"
                           "s.yaml:6: sweep.nodes.join_over[1]: 20 exceeds warmup (10)")
    text = "name: x\nwarmup: 10\nnodes: {join_over: 5}\nsweep:\n  warmup: [8, 30]\n  nodes.join_over: [5, 9]\n"
    assert error(text) == (
        "s.yaml:4: sweep: the point x [1000, warmup=8, nodes.join_over=9] is refused: nodes.join_over: "
        "9 exceeds warmup (8)")


def test_seeds_alone_and_seed_as_a_grid_field():
    s = parse("name: x\nseed: 3\nsweep: {seeds: 3}\n")
    assert [(r.dir, r.scenario.seed, r.seed) for r in expand(s)] == [
        ("n1000-seed3", 3, 3), ("n1000-seed4", 4, 4), ("n1000-seed5", 5, 5)]
    s = parse("name: x\nsweep: {seed: [11, 2]}\n")
    assert [(r.dir, r.scenario.seed) for r in expand(s)] == [("n1000-seed-11", 11), ("n1000-seed-2", 2)]
