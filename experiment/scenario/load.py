"""Reading a scenario: YAML text (with the line of every value) or a file, overrides, then the schema.

Public API: `load_scenario`, `parse_scenario`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from experiment.latency import REGIONS
from experiment.scenario.errors import ScenarioError
from experiment.scenario.grid import apply_overrides, check_values
from experiment.scenario.schema import Scenario, build
from experiment.scenario.yaml_lines import MAX_VALUES, Converter, Problem, TooBig, node_line, source_label, yaml_error
from p2pnode.userinput import InputFileError, read_text, size_text

MAX_SCENARIO_BYTES = 1 << 20  # a scenario is a page of YAML; more is a mistake (or a device, or an attack)


def parse_scenario(
    text: str,
    *,
    source: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Scenario:
    """Parse and validate scenario text; `source` (the file it came from) labels errors and anchors
    relative paths. Raises ScenarioError."""
    source = None if source is None else Path(source)
    label = source_label(source)
    if len(text) > MAX_SCENARIO_BYTES:
        raise ScenarioError([Problem(label, None, "", f"more than {size_text(MAX_SCENARIO_BYTES)} of text")])
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ScenarioError([yaml_error(exc, label)]) from None
    except RecursionError:
        raise ScenarioError([Problem(label, None, "", "invalid YAML: nested too deeply")]) from None
    if root is None:
        raise ScenarioError(
            [Problem(label, None, "", "the file is empty; expected a mapping with at least 'name'")]
        )
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        raise ScenarioError(
            [
                Problem(
                    label,
                    node_line(root),
                    "",
                    f"expected a mapping of scenario fields at the top level, got {kind}",
                )
            ]
        )
    conv = Converter(label)
    try:
        data = conv.convert(root, ())
    except RecursionError:
        raise ScenarioError([Problem(label, None, "", "invalid YAML: nested too deeply")]) from None
    except TooBig as exc:
        message = f"more than {MAX_VALUES} values once aliases are expanded"
        raise ScenarioError([Problem(label, exc.line, "", message)]) from None
    overridden = apply_overrides(data, overrides) if overrides else set()
    scenario = build(
        data,
        source=source,
        label=label,
        lines=conv.lines,
        overridden=overridden,
        known_regions=REGIONS,
        early=conv.problems,
    )
    check_values(scenario)  # every swept value as part of the scenario, at its line in the sweep
    return scenario


def load_scenario(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Read, parse and validate a scenario file. Raises ScenarioError for every user mistake.

    `overrides` replace values before validation: {"nodes.count": 500} or {"nodes": {"count": 500}}.
    """
    path = Path(path)
    try:
        text = read_text(path, MAX_SCENARIO_BYTES)
    except InputFileError as exc:
        raise ScenarioError([Problem(str(path), exc.line, "", exc.reason)]) from None
    return parse_scenario(text, source=path, overrides=overrides)
