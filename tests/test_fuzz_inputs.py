"""Smoke runs of every fuzz target (fuzz/): its seed corpus (with the inputs that once crashed it), and a few
dozen mutations of the seeds."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz._runner import all_targets, mutations, seeds

TARGETS = all_targets()
EXAMPLES = 40


def test_every_decoder_family_has_a_target():
    assert {"varint", "kad", "pubsub", "identify", "relay", "autonat", "reqresp", "envelope", "multistream",
            "noise", "yamux", "tls_cert", "multiaddr", "jsonrpc", "scenario_yaml", "node_toml"} <= set(TARGETS)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seed_corpus(name):
    assert seeds(name)
    for data in seeds(name):
        TARGETS[name].check(data)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutations(name):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutations(name))
    def run(data):
        TARGETS[name].check(data)

    run()

