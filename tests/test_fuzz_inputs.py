"""Smoke runs of the input fuzz targets (fuzz/): the seed corpora and a few hundred mutations of them."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz import node_toml, scenario_yaml
from fuzz._runner import mutations, seeds

TARGETS = {"scenario_yaml": scenario_yaml.check, "node_toml": node_toml.check}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seed_corpus(name):
    assert seeds(name)
    for data in seeds(name):
        TARGETS[name](data)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutations(name):
    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutations(name))
    def run(data):
        TARGETS[name](data)

    run()
