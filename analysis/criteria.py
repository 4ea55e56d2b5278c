"""Judging a run or a sweep: which criteria a scenario asks for, with which targets, and whether they pass."""

from __future__ import annotations

from analysis.definitions import DELIVERY_CRITERIA, MCP_CRITERIA, OPS, RUN_CRITERIA, SPECS
from analysis.load import AnalysisError, Run
from analysis.stats import (
    delivery_rate,
    eligible_deliveries,
    formation_time,
    has_pubsub,
    judged_lookups,
    num,
    percentile,
    point_perf,
    share_ok,
)


def default_criteria(scenario: dict) -> tuple[str, ...]:
    """What a scenario without a criteria section judges: the lookup criteria if it looks things up, put/get
    success if it puts and gets (a rate not given counts as the simulator's default, which is > 0), and the
    delivery criteria if it has a pubsub section."""
    workload = scenario.get("workload")
    workload = workload if isinstance(workload, dict) else {}

    def runs(kind: str) -> bool:  # the rates find_peer, provide and find_providers are 0 unless given
        rate = workload.get(kind)
        return rate > 0 if isinstance(rate, int | float) else kind in ("lookup", "put", "get")

    names = []
    if runs("lookup") or runs("find_peer") or runs("find_providers"):
        names += ["lookup_p99", "lookup_success"]
    if runs("put") and runs("get"):
        names.append("put_get_success")
    if has_pubsub(scenario):
        names += DELIVERY_CRITERIA
    if isinstance(scenario.get("mcp"), dict):
        names += MCP_CRITERIA
    return tuple(names)


def judged(scenario: dict, scaling: bool) -> list[tuple[str, float]]:
    """The (name, target) pairs the scenario asks to judge, in a fixed order; scaling comes first when
    `scaling` is true (a sweep over at least two node counts, see judges_scaling)."""
    section = scenario.get("criteria")
    if section is None:
        names = default_criteria(scenario)
        section = {}
    elif isinstance(section, dict):
        names = tuple(name for name in RUN_CRITERIA if name in section)
    else:
        raise AnalysisError(f"scenario criteria: expected a mapping, got {type(section).__name__}")
    if scaling:
        names = ("scaling", *names)
    result = []
    for name in names:
        result.append((name, _target(name, section.get(name))))
    return result


def _target(name: str, setting: object) -> float:
    default = SPECS[name].target
    if setting is None:
        return default
    if isinstance(setting, dict):
        setting = setting.get("target")
        if setting is None:
            return default
    if isinstance(setting, bool) or not isinstance(setting, int | float):
        raise AnalysisError(f"scenario criteria.{name}.target: {setting!r} is not a number")
    return float(setting)


def criterion(name: str, value: float | None, target: float, description: str) -> dict:
    spec = SPECS[name]
    value = num(value)
    passed = value is not None and OPS[spec.op](value, target)
    return {
        "name": name,
        "description": description,
        "value": value,
        "target": num(float(target)),
        "op": spec.op,
        "unit": spec.unit,
        "pass": passed,
    }


def criterion_value(run: Run, name: str) -> float | None:
    """The raw value of one of the run criteria (not scaling) for a single run."""
    if name == "formation_time":
        return formation_time(run)
    if name == "lookup_p99":
        return percentile(judged_lookups(run)["latency"], 99)
    if name == "lookup_success":
        return share_ok(judged_lookups(run))
    if name == "put_get_success":
        return share_ok(run.of_kind("get"))
    if name == "delivery_rate":
        return delivery_rate(run)
    if name == "delivery_p99":
        return percentile(eligible_deliveries(run)["latency"], 99)
    if name == "mcp_request_p99":
        return percentile(run.of_kind("mcp")["latency"], 99)
    if name == "mcp_success":
        return share_ok(run.of_kind("mcp"))
    raise KeyError(name)


def run_criteria(run: Run) -> list[dict]:
    return [criterion(name, criterion_value(run, name), target, SPECS[name].describe(run.runtime))
            for name, target in judged(run.scenario, scaling=False)]


def worst_over_points(points: list[Run], name: str) -> float | None:
    """The worst value of a run criterion over the sweep points (None if any point has none)."""
    values = [criterion_value(point, name) for point in points]
    if not values or any(value is None for value in values):
        return None
    return max(values) if SPECS[name].op in ("<", "<=") else min(values)


def judges_scaling(sweep: Run) -> bool:
    """Scaling is judged only over at least two distinct node counts (a sweep over scoring alone has one)."""
    entries = sweep.manifest.get("sweep")
    entries = entries if isinstance(entries, list) else []
    nodes = {entry.get("nodes") for entry in entries if isinstance(entry, dict)}
    nodes |= {point.manifest.get("nodes") for point in sweep.points}
    nodes.discard(None)
    return len(nodes) >= 2


def scaling_ratio(points: list[Run]) -> float | None:
    """Wall seconds per message at the largest node count / at the smallest (None if not measurable); when
    scoring is swept too, both points have the smallest point's scoring setting."""
    if len(points) < 2:
        return None
    scoring = points[0].manifest.get("scoring")
    last = [point for point in points if point.manifest.get("scoring") == scoring][-1]
    smallest, largest = point_perf(points[0]), point_perf(last)
    if points[0].manifest.get("nodes") == last.manifest.get("nodes"):
        return None
    if not smallest["wall_per_message"] or largest["wall_per_message"] is None:
        return None
    return largest["wall_per_message"] / smallest["wall_per_message"]


def sweep_criteria(run: Run, ratio: float | None) -> list[dict]:
    result = []
    for name, target in judged(run.scenario, scaling=judges_scaling(run)):
        if name == "scaling":
            result.append(criterion(name, ratio, target, SPECS[name].describe(run.runtime)))
        else:
            description = f"Worst over the sweep points. {SPECS[name].describe(run.runtime)}"
            result.append(criterion(name, worst_over_points(run.points, name), target, description))
    return result


def verdict(summary: dict) -> bool | None:
    """True if every judged criterion passes, None if nothing is judged."""
    criteria = summary.get("criteria") or []
    return all(c["pass"] for c in criteria) if criteria else None
