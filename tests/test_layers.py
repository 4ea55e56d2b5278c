"""The layers of the house (DESIGN.md): each package imports only from those below it.

    p2pnode/ (the node)  <  experiment/ (scenario, measurement rules)  <  sim/, emulator/ + topologies/ (drivers)

The two drivers never import each other; `analysis/` reads files and takes only names (event kinds and columns,
criteria and their targets) from `experiment/`. Like the sans-IO test, this reads syntax trees and imports
nothing, so lazy imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP = ("p2pnode", "experiment", "sim", "emulator", "topologies", "analysis")
# package -> the first-party packages it must not import (a prefix like "experiment." names modules)
FORBIDDEN = {
    "p2pnode": ("experiment", "sim", "emulator", "topologies", "analysis"),
    "experiment": ("sim", "emulator", "topologies", "analysis"),
    "sim": ("emulator", "topologies"),
    "emulator": ("sim",),
    "topologies": ("sim", "emulator", "analysis"),
    "analysis": ("sim", "emulator", "topologies"),
}
ANALYSIS_MAY_USE = {"experiment.events", "experiment.criteria"}


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, also inside functions and dynamic ones."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if name in ("__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant):
                found.append((node.lineno, str(node.args[0].value)))
    return found


def layer_violations(package: str, source: str, filename: str) -> list[str]:
    out = []
    for line, module in imported_modules(source):
        top = module.split(".")[0]
        if top in FORBIDDEN[package]:
            out.append(f"{filename}:{line}: imports {module}")
        elif package == "analysis" and top == "experiment" and "." in module \
                and ".".join(module.split(".")[:2]) not in ANALYSIS_MAY_USE:
            out.append(f"{filename}:{line}: imports {module} (analysis reads files; only names from "
                       f"{', '.join(sorted(ANALYSIS_MAY_USE))})")
    return out


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", TOP)
def test_package_imports_only_from_layers_below(package):
    assert modules(package), f"{package}/ has no modules"
    problems = []
    for path in modules(package):
        problems += layer_violations(package, path.read_text(), str(path.relative_to(ROOT)))
    assert problems == []


@pytest.mark.parametrize("package, source", [
    ("emulator", "from sim.simulation import drain_seconds"),
    ("emulator", "def f():\n    from sim import latency\n"),
    ("topologies", "import sim.latency"),
    ("p2pnode", "from experiment.events import KINDS"),
    ("experiment", "import importlib\nimportlib.import_module('sim.runtime')"),
    ("analysis", "from experiment.measure import drain_seconds"),
    ("analysis", "from experiment.scenario.schema import Scenario"),
    ("analysis", "from experiment import measure"),
])
def test_the_check_finds_imports_across_layers(package, source):
    assert layer_violations(package, source, "x.py")


def test_analysis_may_read_the_names_it_judges_by():
    source = "from experiment.events import KINDS\nfrom experiment.criteria import DEFAULT_TARGETS\n"
    assert layer_violations("analysis", source, "x.py") == []
