"""Scenario files (docs/scenarios.md): the schema (`schema`), its problems as one-line errors with the file's
line (`errors`, with the YAML line mapping in `yaml_lines`), and reading files and text (`load`)."""

from experiment.scenario.errors import ScenarioError
from experiment.scenario.fields import ADDRESS_FAMILIES, DISTRIBUTIONS
from experiment.scenario.load import load_scenario, parse_scenario
from experiment.scenario.schema import (
    Churn,
    Criterion,
    Dht,
    Exponential,
    Latency,
    Lognormal,
    Measure,
    Network,
    Nodes,
    Pubsub,
    Router,
    Scenario,
    Score,
    Sweep,
    Weibull,
    Workload,
    validate_regions,
)
from experiment.scenario.yaml_lines import Problem
from p2pnode.nodeconfig import TRANSITION_MECHANISMS as TRANSITIONS
from p2pnode.transition.profiles import NAT_TYPES

__all__ = [
    "ADDRESS_FAMILIES",
    "DISTRIBUTIONS",
    "NAT_TYPES",
    "TRANSITIONS",
    "Churn",
    "Criterion",
    "Dht",
    "Exponential",
    "Latency",
    "Lognormal",
    "Measure",
    "Network",
    "Nodes",
    "Problem",
    "Pubsub",
    "Router",
    "Scenario",
    "ScenarioError",
    "Score",
    "Sweep",
    "Weibull",
    "Workload",
    "load_scenario",
    "parse_scenario",
    "validate_regions",
]
