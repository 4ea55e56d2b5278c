"""Peer scoring (gossipsub v1.1, ``p2pnode.pubsub.score``) against hand-computed values, on a fake clock.

Each test switches on only the weights it checks, so every expected value is one term of the score
function: P1..P4 per topic, P5..P7 globally, the topic weight and cap, decay (lazy, per whole
``decay_interval``), ``decay_to_zero``, and what is kept of a disconnected peer.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pnode.config import ScoreConfig, TopicScoreParams
from p2pnode.pubsub.score import PeerScore

T = "topic"
SILENT = TopicScoreParams(time_in_mesh_weight=0.0, first_message_deliveries_weight=0.0,
                          mesh_message_deliveries_weight=0.0, mesh_failure_penalty_weight=0.0,
                          invalid_message_deliveries_weight=0.0)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def scorer(topic: dict | None = None, **config) -> tuple[PeerScore, Clock]:
    """A PeerScore whose default topic has only the ``topic`` parameters' weights (all others zero)."""
    clock = Clock()
    return PeerScore(ScoreConfig(default_topic=replace(SILENT, **(topic or {})), **config), clock), clock


def test_p1_time_in_mesh():
    w1 = 0.01
    score, clock = scorer({"time_in_mesh_weight": w1, "time_in_mesh_quantum": 1.0, "time_in_mesh_cap": 3600.0})
    score.add_peer("p")
    score.graft("p", T)
    clock.t = 120.0
    assert score.score("p") == pytest.approx(120 * w1)
    clock.t = 5000.0
    assert score.score("p") == pytest.approx(3600 * w1)  # capped
    score.prune("p", T)
    assert score.score("p") == 0.0  # only while in the mesh


def test_p1_quantum():
    score, clock = scorer({"time_in_mesh_weight": 0.5, "time_in_mesh_quantum": 4.0, "time_in_mesh_cap": 100.0})
    score.add_peer("p")
    clock.t = 10.0
    score.graft("p", T)
    clock.t = 130.0
    assert score.score("p") == pytest.approx(120 / 4 * 0.5)


def test_p2_first_deliveries_decay():
    w2 = 0.7
    score, clock = scorer({"first_message_deliveries_weight": w2, "first_message_deliveries_decay": 0.9,
                           "first_message_deliveries_cap": 10.0})
    score.add_peer("p")
    clock.t = 0.5
    for _ in range(3):
        score.first_delivery("p", T)
    assert score.score("p") == pytest.approx(3 * w2)
    clock.t = 5.5  # five decay intervals later
    assert score.score("p") == pytest.approx(3 * 0.9**5 * w2)
    clock.t = 5.99
    assert score.score("p") == pytest.approx(3 * 0.9**5 * w2)  # decay happens per whole interval


def test_p2_cap_applies_at_increment():
    score, clock = scorer({"first_message_deliveries_weight": 1.0, "first_message_deliveries_cap": 10.0})
    score.add_peer("p")
    for _ in range(15):
        score.first_delivery("p", T)
    assert score.score("p") == pytest.approx(10.0)
    clock.t = 1.0
    score.first_delivery("p", T)  # 10 * 0.9 + 1
    assert score.score("p") == pytest.approx(10.0)


P3 = {"mesh_message_deliveries_weight": -2.0, "mesh_message_deliveries_threshold": 2.5,
      "mesh_message_deliveries_activation": 10.0, "mesh_message_deliveries_decay": 0.9,
      "mesh_message_deliveries_cap": 40.0, "mesh_failure_penalty_weight": -3.0, "mesh_failure_penalty_decay": 0.8}


def test_p3_deficit_squared_once_active():
    score, clock = scorer(P3)
    score.add_peer("p")
    score.graft("p", T)
    clock.t = 0.5
    score.first_delivery("p", T)  # a mesh delivery
    clock.t = 9.5
    assert score.score("p") == 0.0  # not active yet
    clock.t = 10.5
    assert score.score("p") == pytest.approx((2.5 - 0.9**10) ** 2 * -2.0)
    clock.t = 100.5
    assert score.score("p") == pytest.approx(2.5**2 * -2.0)  # the delivery decayed to zero


def test_p3_no_penalty_at_or_above_threshold():
    score, clock = scorer(P3)
    score.add_peer("p")
    score.graft("p", T)
    for _ in range(10):
        score.first_delivery("p", T)
    clock.t = 10.0
    assert score.score("p") == 0.0  # 10 * 0.9**10 = 3.49 >= 2.5
    clock.t = 20.0
    assert score.score("p") == pytest.approx((2.5 - 10 * 0.9**20) ** 2 * -2.0)


def test_p3_counts_near_first_deliveries_only_in_the_mesh():
    score, clock = scorer(P3)
    score.add_peer("p")
    score.near_first_delivery("p", T, 0.0)  # not in the mesh: ignored
    score.graft("p", T)
    score.near_first_delivery("p", T, 0.0)
    score.near_first_delivery("p", T, 0.0)
    clock.t = 5.0
    score.near_first_delivery("p", T, 0.0)  # outside the 2 s window of the first copy: ignored
    clock.t = 10.0
    assert score.score("p") == pytest.approx((2.5 - 2 * 0.9**10) ** 2 * -2.0)
    assert score.peers["p"].topics[T].mesh_deliveries == pytest.approx(2 * 0.9**10)  # decayed when read


def test_p3b_sticky_after_prune():
    score, clock = scorer(P3)
    score.add_peer("p")
    score.graft("p", T)
    clock.t = 0.5
    score.first_delivery("p", T)
    clock.t = 20.5
    deficit = 2.5 - 0.9**20
    assert score.score("p") == pytest.approx(deficit**2 * -2.0)  # P3 while in the mesh
    score.prune("p", T)
    assert score.peers["p"].topics[T].mesh_failure == pytest.approx(deficit**2)
    assert score.score("p") == pytest.approx(deficit**2 * -3.0)  # P3b from now on, not P3
    clock.t = 23.5
    assert score.score("p") == pytest.approx(deficit**2 * 0.8**3 * -3.0)


def test_p3b_not_charged_before_activation():
    score, clock = scorer(P3)
    score.add_peer("p")
    score.graft("p", T)
    clock.t = 9.0
    score.prune("p", T)
    assert score.peers["p"].topics[T].mesh_failure == 0.0
    assert score.score("p") == 0.0


def test_p4_invalid_messages_squared():
    w4 = -20.0
    score, clock = scorer({"invalid_message_deliveries_weight": w4, "invalid_message_deliveries_decay": 0.99})
    score.add_peer("p")
    clock.t = 0.5
    for _ in range(3):
        score.invalid_delivery("p", T)
    assert score.score("p") == pytest.approx(9 * w4)
    clock.t = 2.5
    assert score.score("p") == pytest.approx((3 * 0.99**2) ** 2 * w4)


def test_p5_application_specific():
    score, _ = scorer(app_specific_weight=2.0)
    score.add_peer("p")
    score.set_app_score("p", -7.0)
    assert score.score("p") == pytest.approx(-14.0)


def test_p6_ip_colocation():
    w6 = -10.0
    score, _ = scorer(ip_colocation_factor_weight=w6, ip_colocation_factor_threshold=3.0)
    for i in range(5):
        score.add_peer(f"sybil{i}", "10.0.0.1")
    score.add_peer("alone", "10.0.0.2")
    score.add_peer("unknown")
    for i in range(5):
        assert score.score(f"sybil{i}") == pytest.approx(2**2 * w6)
    assert score.score("alone") == 0.0 and score.score("unknown") == 0.0
    score.remove_peer("sybil0")
    score.remove_peer("sybil1")
    assert score.score("sybil2") == 0.0  # three left: at the threshold, not above


def test_p7_behaviour_penalty():
    w7 = -10.0
    score, clock = scorer(behaviour_penalty_weight=w7, behaviour_penalty_threshold=1.0,
                          behaviour_penalty_decay=0.9)
    score.add_peer("p")
    score.add_penalty("p")
    assert score.score("p") == 0.0  # at the threshold
    score.add_penalty("p", 2.0)
    assert score.score("p") == pytest.approx((3 - 1) ** 2 * w7)
    clock.t = 2.0
    assert score.score("p") == pytest.approx((3 * 0.9**2 - 1) ** 2 * w7)


def test_topic_weight_and_cap():
    params = replace(SILENT, first_message_deliveries_weight=1.0, first_message_deliveries_cap=100.0)
    config = ScoreConfig(topics=(("a", replace(params, topic_weight=2.0)), ("b", replace(params, topic_weight=0.5))),
                         default_topic=SILENT, topic_score_cap=25.0, app_specific_weight=1.0)
    clock = Clock()
    score = PeerScore(config, clock)
    score.add_peer("p")
    for _ in range(4):
        score.first_delivery("p", "a")  # 4 * 2
        score.first_delivery("p", "b")  # 4 * 0.5
        score.first_delivery("p", "c")  # weight 0 (default topic)
    assert score.score("p") == pytest.approx(10.0)
    for _ in range(20):
        score.first_delivery("p", "a")
    score.set_app_score("p", 3.0)
    assert score.score("p") == pytest.approx(25.0 + 3.0)  # the cap is on the topic part only


def test_a_topic_without_parameters_does_not_count():
    """gossipsub v1.1: "If a topic is not configured, a peer's behavior in that topic will not contribute
    to their score" -- neither P1/P2 credit nor P3/P3b/P4 penalties; P5-P7 still apply."""
    params = TopicScoreParams()  # P3 active after 10 s: a silent mesh peer would fall to -40
    clock = Clock()
    score = PeerScore(ScoreConfig(topics=(("scored", params),), behaviour_penalty_weight=-1.0), clock)
    score.add_peer("p")
    for topic in ("scored", "quiet"):
        score.graft("p", topic)
    clock.t = 30.0
    assert score.score("p") < -30  # the scored topic's P3 deficit
    score.prune("p", "scored")
    clock.t = 300.0  # the sticky P3b has decayed away
    assert score.score("p") == 0.0
    score.invalid_delivery("p", "quiet")
    score.first_delivery("p", "quiet")
    score.prune("p", "quiet")
    assert score.score("p") == 0.0 and set(score.peers["p"].topics) == {"scored"}
    assert score.surely_nonnegative("p", clock.t)
    score.add_penalty("p", 2.0)
    assert score.score("p") == pytest.approx(-4.0)  # P7 is global: it counts whatever the topic


def test_decay_to_zero():
    score, clock = scorer({"first_message_deliveries_weight": 1.0, "first_message_deliveries_decay": 0.5},
                          decay_to_zero=0.1)
    score.add_peer("p")
    score.first_delivery("p", T)
    clock.t = 3.0
    assert score.score("p") == pytest.approx(0.125)
    clock.t = 4.0
    assert score.score("p") == 0.0  # 0.0625 < 0.1
    assert score.peers["p"].topics[T].first_deliveries == 0.0


def test_decay_interval():
    score, clock = scorer({"first_message_deliveries_weight": 1.0, "first_message_deliveries_decay": 0.5},
                          decay_interval=10.0)
    score.add_peer("p")
    score.first_delivery("p", T)
    clock.t = 9.9
    assert score.score("p") == 1.0
    clock.t = 30.0
    assert score.score("p") == pytest.approx(0.125)


# ---- disconnection --------------------------------------------------------------------------------------


def test_a_negative_score_is_retained_after_disconnect():
    w4 = -20.0
    score, clock = scorer({"invalid_message_deliveries_weight": w4, "invalid_message_deliveries_decay": 0.99,
                           "first_message_deliveries_weight": 1.0}, retain_score=600.0)
    score.add_peer("p")
    clock.t = 0.5
    score.invalid_delivery("p", T)
    score.invalid_delivery("p", T)
    score.first_delivery("p", T)
    clock.t = 1.0
    score.remove_peer("p")
    assert not score.peers["p"].connected
    assert score.peers["p"].topics[T].first_deliveries == 0.0  # P2 does not survive a disconnect
    clock.t = 100.5
    score.add_peer("p")  # back within retain_score: the decayed counters still apply
    assert score.score("p") == pytest.approx((2 * 0.99**100) ** 2 * w4)


def test_a_retained_score_is_forgotten_after_retain_score():
    score, clock = scorer({"invalid_message_deliveries_weight": -20.0}, retain_score=600.0)
    score.add_peer("p")
    score.invalid_delivery("p", T)
    score.remove_peer("p")
    clock.t = 599.0
    score.expire()
    assert "p" in score.peers
    clock.t = 600.0
    score.expire()
    assert "p" not in score.peers
    score.add_peer("p")
    assert score.score("p") == 0.0


def test_a_positive_score_is_forgotten_at_disconnect():
    score, _ = scorer({"first_message_deliveries_weight": 1.0})
    score.add_peer("p")
    score.first_delivery("p", T)
    assert score.score("p") > 0
    score.remove_peer("p")
    assert "p" not in score.peers
    score.add_peer("p")
    assert score.score("p") == 0.0


def test_disconnecting_ends_the_mesh_stint_with_its_failure_penalty():
    score, clock = scorer(P3)
    score.add_peer("p")
    score.graft("p", T)
    clock.t = 15.0
    score.remove_peer("p")  # P3 = 6.25 * -2 < 0: retained, and the deficit becomes sticky
    stats = score.peers["p"].topics[T]
    assert not stats.in_mesh and stats.mesh_failure == pytest.approx(2.5**2)
    clock.t = 16.0
    score.add_peer("p")
    assert score.score("p") == pytest.approx(2.5**2 * 0.8 * -3.0)


def test_unknown_peers_score_zero_and_events_for_them_are_ignored():
    score, _ = scorer({"first_message_deliveries_weight": 1.0})
    for event in (score.graft, score.prune, score.first_delivery, score.invalid_delivery):
        event("ghost", T)
    score.near_first_delivery("ghost", T, 0.0)
    score.add_penalty("ghost")
    score.set_app_score("ghost", -5.0)
    assert score.score("ghost") == 0.0 and "ghost" not in score.peers


# ---- lazy decay equals a sweep every interval -----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 50, allow_nan=False), st.sampled_from(["first", "invalid", "read"])),
                max_size=30),
       st.floats(0, 60, allow_nan=False))
def test_lazy_decay_matches_a_sweep_each_interval(events, end):
    """Counters decayed lazily (when next touched) equal those of a reference that decays every peer at
    every interval boundary, and reading the score in between changes nothing."""
    decay_p2, decay_p4, floor = 0.9, 0.8, 0.01
    score, clock = scorer({"first_message_deliveries_weight": 1.0, "first_message_deliveries_decay": decay_p2,
                           "first_message_deliveries_cap": 5.0, "invalid_message_deliveries_weight": -1.0,
                           "invalid_message_deliveries_decay": decay_p4}, decay_to_zero=floor)
    score.add_peer("p")
    p2 = p4 = 0.0
    tick = 0
    events = sorted(events) + [(max(end, max((t for t, _ in events), default=0.0)), "read")]
    for when, kind in events:
        while tick < int(when):  # the reference: a sweep at each boundary
            tick += 1
            p2 = 0.0 if p2 * decay_p2 < floor else p2 * decay_p2
            p4 = 0.0 if p4 * decay_p4 < floor else p4 * decay_p4
        clock.t = when
        if kind == "first":
            score.first_delivery("p", T)
            p2 = min(p2 + 1, 5.0)
        elif kind == "invalid":
            score.invalid_delivery("p", T)
            p4 += 1
        assert score.score("p") == pytest.approx(p2 - p4 * p4, rel=1e-9, abs=1e-12)
