"""Per-peer round-trip estimates against RFC 6298's formulas, their bounds and their memory limit."""

from __future__ import annotations

import pytest

from p2pnode.kad.rtt import RttEstimates


def test_first_sample_then_the_rfc_6298_updates():
    rtt = RttEstimates()
    rtt.sample(1, 0.2)  # SRTT = R, RTTVAR = R/2
    assert rtt.peers[1] == pytest.approx((0.2, 0.1))
    assert rtt.rto(1, 0.0, 10.0) == pytest.approx(0.2 + 4 * 0.1)
    rtt.sample(1, 0.4)  # RTTVAR = 3/4 * 0.1 + 1/4 * |0.2 - 0.4|, then SRTT = 7/8 * 0.2 + 1/8 * 0.4
    assert rtt.peers[1] == pytest.approx((0.225, 0.125))
    assert rtt.srtt_of(1) == pytest.approx(0.225)


def test_the_rto_is_bounded_and_defaults_to_the_estimate_over_all_peers():
    rtt = RttEstimates()
    assert rtt.rto(7, 0.1, 1.0) == 1.0  # nothing measured yet: the ceiling
    rtt.sample(1, 0.010)
    assert rtt.rto(1, 0.1, 1.0) == 0.1  # 30 ms, raised to the floor
    rtt.sample(2, 0.5)
    assert rtt.rto(2, 0.1, 1.0) == 1.0  # 1.5 s, cut to the ceiling
    assert not rtt.known(7)
    srtt, rttvar = rtt.srtt, rtt.rttvar  # both samples, in order
    assert (srtt, rttvar) == pytest.approx((0.010 + (0.5 - 0.010) / 8, 0.005 + (0.49 - 0.005) / 4))
    assert rtt.rto(7, 0.0, 10.0) == pytest.approx(srtt + 4 * rttvar)
    assert rtt.srtt_of(7) == pytest.approx(srtt)


def test_a_zero_rtt_is_a_sample():
    rtt = RttEstimates()
    rtt.sample(1, 0.0)
    assert rtt.rto(2, 0.05, 1.0) == 0.05


def test_only_the_most_recently_measured_peers_are_kept():
    rtt = RttEstimates(capacity=3)
    for peer in (1, 2, 3):
        rtt.sample(peer, 0.1)
    rtt.sample(1, 0.1)  # measured again: now the most recent
    rtt.sample(4, 0.1)
    assert sorted(rtt.peers) == [1, 3, 4]
