"""The adversary section and the attack sweeps: errors name the field and the line; who is malicious follows from
the seed; an eclipse's node IDs sit next to its victim keys."""

from __future__ import annotations

import textwrap

import pytest

from experiment.plan import Plan
from experiment.scenario import ScenarioError, parse_scenario
from p2pnode.identity import kad_key
from p2pnode.security.puzzles import static_bits


def parse(text: str):
    return parse_scenario(textwrap.dedent(text), source="s.yaml")


def only_error(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse(text)
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_defaults_and_behaviours():
    s = parse("name: x\nadversary: {}\n")
    assert (s.adversary.share, s.adversary.behaviours, s.adversary.eclipse) == (0.0, ["collude"], None)
    assert parse("name: x\n").adversary is None
    s = parse("name: x\nadversary: {share: 0.3, behaviours: [collude, stale, forge], eclipse: {}}\n")
    assert (s.adversary.eclipse.keys, s.adversary.eclipse.prefix_bits, s.adversary.eclipse.lookups) == (1, 10, 0.5)


def test_errors_name_the_field_and_line():
    assert only_error("name: x\nadversary:\n  share: 0.95\n") == (
        "s.yaml:3: adversary.share: must be <= 0.9, got 0.95")
    assert only_error("name: x\nadversary:\n  behaviours: [collude, lie]\n") == (
        "s.yaml:3: adversary.behaviours[1]: 'lie' is not one of drop, collude, stale, forge")
    assert only_error("name: x\nadversary:\n  behaviours:\n    - stale\n    - stale\n") == (
        "s.yaml:5: adversary.behaviours[1]: 'stale' is given twice")
    assert only_error("name: x\nadversary:\n  behaviours: [drop, collude]\n") == (
        "s.yaml:3: adversary.behaviours: 'drop' answers nothing, so it combines with no other behaviour")
    assert only_error("name: x\nadversary:\n  eclipse: {prefix_bits: 40}\n") == (
        "s.yaml:3: adversary.eclipse.prefix_bits: must be <= 16, got 40")
    assert only_error("name: x\nnodes: {count: 10, bootstrap: 4}\nadversary:\n  share: 0.9\n") == (
        "s.yaml:4: adversary.share: 0.9 of 10 nodes is more than the 6 that are not bootstrap nodes")


def test_attack_sweeps():
    assert only_error("name: x\nsweep:\n  malicious: [0.1]\n") == (
        "s.yaml:3: sweep.malicious: needs an adversary section")
    assert only_error("name: x\nadversary: {}\nsweep:\n  malicious: [0.2, 0.1]\n") == (
        "s.yaml:4: sweep.malicious[1]: 0.1 after 0.2: must be ascending")
    assert only_error("name: x\ndht: {alpha: 4}\nsweep:\n  disjoint_paths:\n    - 2\n    - 8\n") == (
        "s.yaml:6: sweep.disjoint_paths[1]: 8 exceeds dht.alpha (4)")
    s = parse("name: x\nnodes: {count: 50}\ndht: {alpha: 8}\nadversary: {}\n"
              "sweep: {malicious: [0.0, 0.25], disjoint_paths: [1, 8]}\n")
    points = s.sweep_points()
    assert [name for name, _ in points] == ["n50-m0-d1", "n50-m0-d8", "n50-m25-d1", "n50-m25-d8"]
    assert [(p.adversary.share, p.dht.disjoint_paths) for _, p in points] == [
        (0.0, 1), (0.0, 8), (0.25, 1), (0.25, 8)]
    s = parse("name: x\nnodes: {count: 50}\nadversary: {}\nsweep: {malicious: [0.1], puzzles: [0, 6]}\n")
    assert [(name, p.security.puzzle_static) for name, p in s.sweep_points()] == [
        ("n50-m10-p0", 0), ("n50-m10-p6", 6)]


def test_malicious_nodes_follow_the_seed_and_nest():
    def malicious(share: float, seed: int = 3) -> set[int]:
        plan = Plan(parse(f"name: x\nseed: {seed}\nnodes: {{count: 60, bootstrap: 5}}\n"
                          f"adversary: {{share: {share}}}\n"))
        return {i for i, bad in enumerate(plan.malicious) if bad}

    small, large = malicious(0.1), malicious(0.4)
    assert (len(small), len(large)) == (6, 24)
    assert small < large and min(large) >= 5  # nested; never a bootstrap node
    assert malicious(0.4) == large and malicious(0.4, seed=4) != large
    honest = Plan(parse("name: x\nseed: 3\nnodes: {count: 60, bootstrap: 5}\n"))
    assert Plan(parse("name: x\nseed: 3\nnodes: {count: 60, bootstrap: 5}\nadversary: {share: 0.4}\n")
                ).peer_ids == honest.peer_ids  # the adversary draws from a stream of its own


def shared_bits(a: int, b: int) -> int:
    return 256 - (a ^ b).bit_length()


def test_eclipse_places_ids_next_to_the_victim_keys_unless_puzzles_price_them():
    def placement(puzzle: int) -> tuple[Plan, list[int]]:
        plan = Plan(parse(f"name: x\nnodes: {{count: 40, bootstrap: 2}}\nsecurity: {{puzzle_static: {puzzle}}}\n"
                          "adversary: {share: 0.2, eclipse: {keys: 2, prefix_bits: 8}}\n"))
        bad = [i for i, m in enumerate(plan.malicious) if m]
        targets = [kad_key(key) for key in plan.victim_keys]
        return plan, [shared_bits(plan.kad_ids[i], targets[j % 2]) for j, i in enumerate(bad)]

    plan, free = placement(0)
    assert len(plan.victim_keys) == 2 and len(free) == 8
    assert min(free) >= 5 and sum(free) / len(free) >= 7  # the best of 2^8 draws: about 8 bits
    honest = [shared_bits(plan.kad_ids[i], kad_key(key)) for i in range(40) if not plan.malicious[i]
              for key in plan.victim_keys]
    assert max(honest) < min(free)  # closer to the victims than any honest node
    plan, priced = placement(6)  # the same budget buys 2^(8-6) keys that meet the puzzle
    assert sum(priced) / len(priced) < sum(free) / len(free) - 3
    assert all(static_bits(plan.kad_ids[i]) >= 6 for i in range(40))
