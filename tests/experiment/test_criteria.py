"""The criteria a scenario can name are the ones the analysis judges, with one default target each."""

from analysis.definitions import SPECS
from experiment.criteria import CRITERIA, DEFAULT_TARGETS, PUBSUB_CRITERIA, SHARE_CRITERIA


def test_the_analysis_judges_every_criterion_a_scenario_can_name():
    assert tuple(SPECS) == CRITERIA == tuple(DEFAULT_TARGETS)


def test_the_analysis_judges_by_the_default_targets():
    assert {name: spec.target for name, spec in SPECS.items()} == DEFAULT_TARGETS


def test_shares_are_judged_as_shares():
    assert {name for name, spec in SPECS.items() if spec.unit == "share"} == set(SHARE_CRITERIA)
    assert set(PUBSUB_CRITERIA) <= set(CRITERIA)
