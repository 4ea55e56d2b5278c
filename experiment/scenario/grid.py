"""A sweep's grid (docs/scenarios.md): any scenario field named by its dotted path with a list of values,
times ``seeds``; the paths checked against the schema, every value validated as the rest of the scenario is
(a problem names ``sweep.<path>[i]`` and its line), and the runs expanded in a fixed order.

Public API: `apply_overrides`, `path_problem`, `grid_problems`, `Run`, `expand`.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from experiment.scenario.errors import Loc, ScenarioError, _members, _unwrap, got
from experiment.scenario.yaml_lines import Problem
from p2pnode.userinput import quote

# the sweep's own keys; any other key is a field path
SHORTHANDS = ("nodes", "scoring", "nat", "malicious", "disjoint_paths", "puzzles", "seeds")
NOT_SWEPT = ("name", "sweep")  # the run directory's name and the sweep itself
MAX_VALUES = 100  # values per swept field
MAX_POINTS = 1000  # combinations of values (each validated when the scenario is read)
MAX_SEEDS = 1000
MAX_RUNS = 10_000  # points x seeds
_SLUG = re.compile(r"[A-Za-z0-9._+-]{1,40}")


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> set[Loc]:
    """Apply {"nodes.count": 500} or {"nodes": {"count": 500}} style overrides in place; returns what was set."""
    touched: set[Loc] = set()

    def put(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
        for i, key in enumerate(path[:-1]):
            nxt = target.get(key)
            if not isinstance(nxt, dict):
                nxt = {}
                target[key] = nxt
                touched.add(path[: i + 1])
            target = nxt
        if isinstance(value, Mapping) and isinstance(target.get(path[-1]), dict):
            for k, v in value.items():
                put(target[path[-1]], (str(k),), v)
                touched.add((*path, str(k)))
            return
        target[path[-1]] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else copy.deepcopy(value)
        touched.add(path)

    for key, value in overrides.items():
        put(data, tuple(str(key).split(".")), value)
    return touched


def path_problem(root: type[BaseModel], path: str) -> str | None:
    """Why ``path`` (``dht.alpha``, ``churn.session.scale``) names no field of ``root``; None when it does."""
    parts = path.split(".")
    if parts[0] in NOT_SWEPT:
        return f"{parts[0]} cannot be swept"
    tp: Any = root
    for i, part in enumerate(parts):
        tp = _unwrap(tp)
        where = ".".join(parts[:i])
        models = [tp] if isinstance(tp, type) and issubclass(tp, BaseModel) else _members(tp)
        if models:
            found = [m.model_fields[part].annotation for m in models if part in m.model_fields]
            if not found:
                names = list(dict.fromkeys(name for m in models for name in m.model_fields))
                if not where:
                    return ("unknown field; expected one of: " + ", ".join(SHORTHANDS)
                            + ", or a scenario field's dotted path (dht.alpha)")
                return f"{where} has no field {quote(part, 30)}; expected one of: {', '.join(names)}"
            tp = found[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]  # a map's key (nodes.regions.eu-west): any name, its value checked later
        else:
            return f"{where} is a single value, not a section (sweep {where} itself)"
    return None


def _distinct(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def grid_problems(grid: Mapping[str, Any], root: type[BaseModel]) -> list[tuple[Loc, str]]:
    """What is wrong with the sweep's field paths and the shape of their value lists (not the values)."""
    items: list[tuple[Loc, str]] = []
    points = 1
    for key, values in grid.items():
        reason = path_problem(root, key)
        if reason is not None:
            items.append(((key,), reason))
        elif not isinstance(values, list):
            items.append(((key,), f"expected a list of values, got {got(values)}"))
        elif not 1 <= len(values) <= MAX_VALUES:
            most = "least 1 item" if not values else f"most {MAX_VALUES} items"
            items.append(((key,), f"expected at {most}, got {len(values)}"))
        else:
            seen = [_distinct(v) for v in values]
            items += [((key, i), f"{got(values[i])} is given twice") for i in range(len(values))
                      if seen[i] in seen[:i]]
            points *= len(values)
    if not items and points > MAX_POINTS:
        items.append(((), f"{points} combinations of values; at most {MAX_POINTS}"))
    return items


@dataclass(frozen=True)
class Run:
    """One run of a sweep: its directory name, label, scenario, and what it sets."""

    dir: str
    label: str
    scenario: Any
    nodes: int
    scoring: bool | None = None  # set when scoring is swept
    nat: bool | None = None  # set when NATs are swept
    params: dict[str, Any] = field(default_factory=dict)  # the grid's dotted paths and their values
    seed: int | None = None  # set when seeds are swept

    def entry(self) -> dict[str, Any]:
        """The run's entry in the sweep's manifest (docs/results.md)."""
        out: dict[str, Any] = {"nodes": self.nodes, "scoring": self.scoring, "label": self.label, "dir": self.dir}
        if self.nat is not None:
            out["nat"] = self.nat
        if self.params:
            out["params"] = dict(self.params)
        if self.seed is not None:
            out["seed"] = self.seed
        return out


def _slugs(values: list[Any]) -> list[str]:
    """Directory-name pieces for a field's values: the values where each is a short plain word or number,
    else their indexes (v0, v1, ...), also when two would read the same."""
    out = [("on" if value else "off") if isinstance(value, bool) else str(value) for value in values]
    plain = all(isinstance(v, bool | int | float | str) and _SLUG.fullmatch(t) for v, t in zip(values, out,
                                                                                             strict=True))
    return out if plain and len(set(out)) == len(out) else [f"v{i}" for i in range(len(values))]


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def seeds_of(scenario: Any) -> list[int] | None:
    sweep = scenario.sweep
    if sweep is None or sweep.seeds is None:
        return None
    return [scenario.seed + i for i in range(sweep.seeds)]


def _axes(scenario: Any, sweep: Any) -> list[tuple[Any, str, list[str], int, bool | None, bool | None]]:
    """The points of the sweep's own keys, in order: (scenario, directory name, label words, nodes, scoring,
    nat); nodes outermost, then scoring, NATs, the malicious share, disjoint paths and the static puzzle."""
    out = []
    for n in sweep.nodes or [scenario.nodes.count]:
        out.append((scenario.with_nodes(n) if sweep.nodes is not None else scenario, f"n{n}", [str(n)], n, None, None))

    def step(values: list | None, apply: Any, name: Any, word: Any, keep: str | None = None) -> None:
        nonlocal out
        if values is not None:
            out = [(apply(s, v), d + name(v), [*w, word(v)], n,
                    v if keep == "scoring" else sc, v if keep == "nat" else nt)
                   for s, d, w, n, sc, nt in out for v in values]

    def onoff(v: bool) -> str:
        return "on" if v else "off"

    step(sweep.scoring, lambda s, v: s.with_scoring(v), lambda v: f"-scoring-{onoff(v)}",
         lambda v: f"scoring {onoff(v)}", "scoring")
    step(sweep.nat, lambda s, v: s.with_nat(v), lambda v: f"-nat-{onoff(v)}", lambda v: f"nat {onoff(v)}", "nat")
    step(sweep.malicious, lambda s, v: s._with({("adversary", "share"): v}), lambda v: f"-m{v * 100:g}",
         lambda v: f"malicious {v * 100:g} %")
    step(sweep.disjoint_paths, lambda s, v: s._with({("dht", "disjoint_paths"): v}), lambda v: f"-d{v}",
         lambda v: f"d {v}")
    step(sweep.puzzles, lambda s, v: s._with({("security", "puzzle_static"): v}), lambda v: f"-p{v}",
         lambda v: f"puzzle {v}")
    return out


def expand(scenario: Any) -> list[Run]:
    """Every run of the scenario's sweep, its own keys outermost (`_axes`), then the grid's fields in the
    file's order, seeds innermost; [] without a sweep. Raises ScenarioError (at the sweep's line) if a
    combination of values, each fine alone, makes a scenario that is not."""
    sweep = scenario.sweep
    if sweep is None:
        return []
    grid = sweep.grid
    keys = list(grid)
    slugs = {key: _slugs(grid[key]) for key in keys}
    seeds = seeds_of(scenario)
    runs: list[Run] = []
    index = 0
    for base, prefix, head, n, score_flag, nat_flag in _axes(scenario, sweep):
        for choice in itertools.product(*(range(len(grid[key])) for key in keys)):
            params = {key: grid[key][i] for key, i in zip(keys, choice, strict=True)}
            name = prefix + "".join(f"-{key}-{slugs[key][i]}" for key, i in zip(keys, choice, strict=True))
            words = head + [f"{key}={_value_text(grid[key][i])}" for key, i in zip(keys, choice, strict=True)]
            if len(name) > 180:
                name = f"p{index:04d}"
            index += 1
            point = _point(base, params, f"{scenario.name} [{', '.join(words)}]")
            for seed in seeds or [None]:
                run = point if seed is None else point.model_copy(update={"seed": seed})
                label = f"{scenario.name} [{', '.join(words + ([f'seed {seed}'] if seed is not None else []))}]"
                runs.append(Run(name if seed is None else f"{name}-seed{seed}", label, run, n,
                                score_flag, nat_flag, params, seed))
    return runs


def _point(base: Any, params: dict[str, Any], label: str) -> Any:
    if not params:
        return base
    try:
        return base.with_values(params)
    except ScenarioError as exc:
        first = exc.problems[0]
        where = base._lines
        raise ScenarioError([Problem(
            str(base.source) if base.source is not None else "<string>", where.get(("sweep",)), "sweep",
            f"the point {label} is refused: {first.path}: {first.message}")]) from None


def check_values(scenario: Any) -> None:
    """Validate every value of the sweep's grid as part of the scenario, then every combination: a value that
    is wrong is said at its own line (``sweep.dht.alpha[2]: must be <= 1000, got 5000``), a combination at
    the sweep's. Raises ScenarioError."""
    sweep = scenario.sweep
    if sweep is None:
        return
    label = str(scenario.source) if scenario.source is not None else "<string>"
    lines = scenario._lines
    problems: list[Problem] = []
    for key, values in sweep.grid.items():
        for i, value in enumerate(values):
            try:
                scenario.with_values({key: value})
            except ScenarioError as exc:
                line = lines.get(("sweep", key, i), lines.get(("sweep", key)))
                for p in exc.problems:
                    if p.path == key or p.path.startswith((key + ".", key + "[")):
                        rest = p.path[len(key):].lstrip(".")
                        message = f"{rest}: {p.message}" if rest else p.message
                    else:
                        message = f"with this value, {p.path}: {p.message}"
                    problems.append(Problem(label, line, f"sweep.{key}[{i}]", message))
    seeds = seeds_of(scenario)
    if seeds is not None and seeds[-1] > 2**63 - 1:
        problems.append(Problem(label, lines.get(("sweep", "seeds")), "sweep.seeds",
                                f"seeds {seeds[0]} .. {seeds[-1]} pass the largest seed, 2**63 - 1"))
    if problems:
        raise ScenarioError(problems)
    points = 1
    for values in [sweep.nodes, sweep.scoring, sweep.nat, sweep.malicious, sweep.disjoint_paths, sweep.puzzles,
                   *sweep.grid.values()]:
        points *= len(values or [None])
    runs = points * len(seeds or [None])
    if runs > MAX_RUNS:
        raise ScenarioError([Problem(label, lines.get(("sweep",)), "sweep", f"{runs} runs; at most {MAX_RUNS}")])
    if len(sweep.grid) > 1 or (sweep.grid and points > len(next(iter(sweep.grid.values())))):
        expand(scenario)  # each value was fine alone; their combinations (and with nodes, scoring, nat) too?
