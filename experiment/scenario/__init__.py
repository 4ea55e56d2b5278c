"""Scenario files (docs/scenarios.md): the schema (`schema`), its problems as one-line errors with the file's
line (`errors`, with the YAML line mapping in `yaml_lines`), and reading files and text (`load`)."""

from experiment.scenario.errors import ScenarioError
from experiment.scenario.load import load_scenario, parse_scenario
from experiment.scenario.schema import (
    ADDRESS_FAMILIES,
    DISTRIBUTIONS,
    NAT_TYPES,
    TRANSITIONS,
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
