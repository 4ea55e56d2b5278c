"""Fuzz target: scenario YAML. Any bytes end in a Scenario whose cost can be estimated, or in a ScenarioError
whose lines are short and printable; anything else (another exception, a hang) is a bug."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiment.feasibility import simulation_cost  # noqa: E402
from experiment.scenario import ScenarioError, parse_scenario  # noqa: E402
from fuzz._runner import target  # noqa: E402
from p2pnode.userinput import InputFileError, decode  # noqa: E402


@target("scenario_yaml")
def check(data: bytes) -> None:
    try:
        scenario = parse_scenario(decode(data), source="f.yaml")
    except InputFileError:
        return
    except ScenarioError as exc:
        for line in str(exc).splitlines():
            assert line.startswith("f.yaml") and len(line) <= 300 and line.isprintable(), line
        return
    cost = simulation_cost(scenario)
    assert math.isfinite(cost.total) and math.isfinite(cost.memory)
