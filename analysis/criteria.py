"""Success criteria and headline statistics of a run (summary.json)."""

from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import PUBSUB_KINDS, AnalysisError, Run

FORMATION_DEFINITION = (
    "Formation is reached when every checked live node has finished bootstrapping and lookups for one "
    "random key, started from all of them at the same moment, all return exactly the true k closest live "
    "peers; the formation time is when the last of those lookups returned (the first `formation` row with "
    "`value == 1` and `ok == 1`). Routing-table completeness is shown beside it: the share of checked live "
    "nodes each of whose buckets holds min(k, live peers in the bucket's range) live peers."
)

DELIVERY_DEFINITION = (
    "An eligible (live) subscriber of a message is an honest node subscribed to the message's topic that was "
    "up continuously from `measure.delivery_settle` seconds before the publish until "
    "`measure.delivery_deadline` seconds after it: a node that went down or joined in that interval, an "
    "attacker node (`pubsub.attackers`) and the publisher itself do not count. A message is delivered to "
    "such a subscriber if the subscriber first received it within the deadline. Each message has one "
    "`delivery` row, written once its deadline has passed (messages published less than the deadline "
    "before the end of the run have none); the delivery rate is the sum of their `value` (eligible "
    "subscribers reached in time) over the sum of their `count` (eligible subscribers). Delivery latency is "
    "the time from publish to first reception, over `deliver` rows with `ok == 1`: receptions at honest "
    "subscribers that had been up since at least `delivery_settle` seconds before the publish, whether "
    "or not the reception came within the deadline."
)

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    unit: str
    target: float
    op: str


SPECS = {
    spec.name: spec
    for spec in (
        Spec(
            "formation_time",
            "Simulated seconds from t=0 until lookups for one random key from every checked live node "
            "(all bootstrapped) returned exactly the true k closest live peers; fails if never reached.",
            "s",
            30.0,
            "<",
        ),
        Spec(
            "lookup_p99",
            "99th percentile of lookup latency over all lookups, successful or not "
            "(linear interpolation between samples).",
            "s",
            0.5,
            "<",
        ),
        Spec(
            "lookup_success",
            "Share of lookups that found the closest live peer to the key (ok == 1).",
            "share",
            0.99,
            ">=",
        ),
        Spec(
            "put_get_success",
            "Share of gets, for keys put earlier and under churn, that returned the newest stored version "
            "(ok == 1).",
            "share",
            0.99,
            ">=",
        ),
        Spec(
            "delivery_rate",
            "Share of (message, eligible subscriber) pairs in which the subscriber first received the message "
            "within `measure.delivery_deadline` s of the publish: the sum of `delivery` rows' value over the "
            "sum of their count. Eligible: an honest node subscribed to the message's topic and up "
            "continuously from `measure.delivery_settle` s before the publish until the deadline (not the "
            "publisher, not an attacker, not a node that went down or joined in between); messages whose "
            "deadline had not passed when the run ended are not counted.",
            "share",
            0.999,
            ">=",
        ),
        Spec(
            "delivery_p99",
            "99th percentile of the time from publish to first reception over `deliver` rows with ok == 1 "
            "(receptions at honest subscribers up since at least `measure.delivery_settle` s before the "
            "publish, within the deadline or not; linear interpolation between samples).",
            "s",
            1.0,
            "<",
        ),
        Spec(
            "scaling",
            "Wall-clock seconds per simulated message at the largest node count divided by the same at the "
            "smallest (each point's manifest perf: wall_seconds / messages).",
            "ratio",
            1.5,
            "<=",
        ),
    )
}
DELIVERY_CRITERIA = ("delivery_rate", "delivery_p99")
RUN_CRITERIA = ("formation_time", "lookup_p99", "lookup_success", "put_get_success", *DELIVERY_CRITERIA)


def num(value: object) -> object:
    """JSON-ready number: floats rounded to 6 decimals, numpy scalars unwrapped, NaN/inf/NA -> None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        if not math.isfinite(value):
            return None
        return round(value, 6) + 0.0  # + 0.0 turns -0.0 into 0.0
    return value


def _floats(series: pd.Series) -> np.ndarray:
    return series.astype("float64").dropna().to_numpy()


def percentile(series: pd.Series, q: float) -> float | None:
    values = _floats(series)
    return float(np.percentile(values, q)) if len(values) else None


def mean(series: pd.Series) -> float | None:
    values = _floats(series)
    return float(values.mean()) if len(values) else None


def share_ok(rows: pd.DataFrame) -> float | None:
    if rows.empty:
        return None
    return float((rows["ok"].fillna(0) == 1).sum()) / len(rows)


def _int_or_none(value: float | None) -> int | float | None:
    if value is None or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


def formation_time(run: Run) -> float | None:
    rows = run.of_kind("formation")
    reached = rows[(rows["value"] == 1) & (rows["ok"].fillna(0) == 1)]
    return float(reached["time"].iloc[0]) if len(reached) else None


def has_pubsub(scenario: dict) -> bool:
    """Whether the scenario has a pubsub section (a resolved scenario without one has `pubsub: null`)."""
    return isinstance(scenario.get("pubsub"), dict)


def default_criteria(scenario: dict) -> tuple[str, ...]:
    """What a scenario without a criteria section judges: the lookup criteria if it looks things up, put/get
    success if it puts and gets (a rate not given counts as the simulator's default, which is > 0), and the
    delivery criteria if it has a pubsub section."""
    workload = scenario.get("workload")
    workload = workload if isinstance(workload, dict) else {}

    def runs(kind: str) -> bool:
        rate = workload.get(kind)
        return not isinstance(rate, int | float) or rate > 0

    names = []
    if runs("lookup"):
        names += ["lookup_p99", "lookup_success"]
    if runs("put") and runs("get"):
        names.append("put_get_success")
    if has_pubsub(scenario):
        names += DELIVERY_CRITERIA
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


def criterion(name: str, value: float | None, target: float, description: str | None = None) -> dict:
    spec = SPECS[name]
    value = num(value)
    passed = value is not None and OPS[spec.op](value, target)
    return {
        "name": name,
        "description": description or spec.description,
        "value": value,
        "target": num(float(target)),
        "op": spec.op,
        "unit": spec.unit,
        "pass": passed,
    }


def delivery_rate(run: Run) -> float | None:
    """Eligible subscribers reached within the deadline over eligible subscribers, summed over messages."""
    rows = run.of_kind("delivery")
    eligible = float(rows["count"].sum())
    return float(rows["value"].sum()) / eligible if eligible else None


def eligible_deliveries(run: Run) -> pd.DataFrame:
    """`deliver` rows at subscribers that were up delivery_settle seconds before the publish (ok == 1)."""
    rows = run.of_kind("deliver")
    return rows[rows["ok"].fillna(0) == 1]


def _last(run: Run, kind: str, column: str, until: float | None = None) -> float | None:
    rows = run.of_kind(kind)
    if until is not None:
        rows = rows[rows["time"] <= until]
    return _na(rows[column].iloc[-1]) if len(rows) else None


def measured_end(run: Run) -> float | None:
    """warmup + duration: after it a run only drains (no more publishes, so scoring thins idle meshes)."""
    warmup, duration = setting(run.scenario, "warmup"), setting(run.scenario, "duration")
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (warmup, duration))
    return warmup + duration if ok else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def setting(section: object, key: str) -> object:
    """section[key] of a scenario section that may be missing (None) or not a mapping."""
    return section.get(key) if isinstance(section, dict) else None


def pubsub_stats(run: Run) -> dict:
    """Headline pub-sub figures (summary.json "pubsub"); the ps_* counters are cumulative over the run."""
    deliveries = run.of_kind("delivery")
    latencies = eligible_deliveries(run)["latency"]
    data, control = _last(run, "ps_data", "value"), _last(run, "ps_control", "value")
    first, copies = _last(run, "ps_recv", "value"), _last(run, "ps_recv", "count")
    duplicates = copies - first if copies is not None and first is not None else None
    total = data + control if data is not None and control is not None else None
    scoring, attackers = (setting(run.scenario.get("pubsub"), key) for key in ("scoring", "attackers"))
    stats = {
        "messages_published": len(run.of_kind("publish")),
        "messages_judged": len(deliveries),
        "delivery_rate": delivery_rate(run),
        "messages_fully_delivered": share_ok(deliveries),
        "delivery_latency_p50": percentile(latencies, 50),
        "delivery_latency_p99": percentile(latencies, 99),
        "delivery_latency_max": percentile(latencies, 100),
        "duplicates_per_delivery": _ratio(duplicates, first),
        "data_bytes": _int_or_none(data),
        "control_bytes": _int_or_none(control),
        "control_share": _ratio(control, total),
        "control_bytes_per_delivery": _ratio(control, first),
        "mesh_degree_end": _last(run, "mesh", "value", measured_end(run)),
        "mesh_below_d_lo_end": _int_or_none(_last(run, "mesh", "count", measured_end(run))),
        "scoring": scoring if isinstance(scoring, bool) else None,
        "attacker_share": attackers if isinstance(attackers, int | float) else None,
    }
    return {key: num(value) for key, value in stats.items()}


def run_has_pubsub(run: Run) -> bool:
    """A pubsub section in the scenario, or pub-sub rows in the events."""
    return has_pubsub(run.scenario) or bool(run.events["kind"].isin(PUBSUB_KINDS).any())


def run_stats(run: Run) -> dict:
    lookups = run.of_kind("lookup")
    puts = run.of_kind("put")
    gets = run.of_kind("get")
    downs = run.of_kind("down")
    ups = run.of_kind("up")
    live = _floats(run.of_kind("live")["value"])
    traffic = run.of_kind("traffic")
    last_traffic = traffic.iloc[-1] if len(traffic) else None
    stats = {
        "lookups": len(lookups),
        "lookup_latency_p50": percentile(lookups["latency"], 50),
        "lookup_latency_p90": percentile(lookups["latency"], 90),
        "lookup_latency_p99": percentile(lookups["latency"], 99),
        "lookup_latency_mean": mean(lookups["latency"]),
        "lookup_hops_mean": mean(lookups["hops"]),
        "lookup_hops_p50": percentile(lookups["hops"], 50),
        "lookup_rpcs_mean": mean(lookups["count"]),
        "lookup_precision_mean": mean(lookups["value"]),
        "puts": len(puts),
        "put_success": share_ok(puts),
        "put_replicas_mean": mean(puts["value"]),
        "gets": len(gets),
        "get_success": share_ok(gets),
        "get_latency_p50": percentile(gets["latency"], 50),
        "get_latency_p99": percentile(gets["latency"], 99),
        "messages": None if last_traffic is None else _int_or_none(_na(last_traffic["count"])),
        "bytes": None if last_traffic is None else _int_or_none(_na(last_traffic["value"])),
        "churn_departures": len(downs),
        "churn_crashes": int((downs["value"] == 0).sum()),
        "churn_rejoins": int((ups["value"] == 0).sum()),
        "live_nodes_min": _int_or_none(float(live.min())) if len(live) else None,
        "live_nodes_mean": float(live.mean()) if len(live) else None,
        "live_nodes_max": _int_or_none(float(live.max())) if len(live) else None,
        "formation_time": formation_time(run),
    }
    return {key: num(value) for key, value in stats.items()}


def _na(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def simulated_seconds(run: Run) -> float | None:
    return float(run.events["time"].max()) if len(run.events) else None


def criterion_value(run: Run, name: str) -> float | None:
    """The raw value of one of the run criteria (not scaling) for a single run."""
    if name == "formation_time":
        return formation_time(run)
    if name == "lookup_p99":
        return percentile(run.of_kind("lookup")["latency"], 99)
    if name == "lookup_success":
        return share_ok(run.of_kind("lookup"))
    if name == "put_get_success":
        return share_ok(run.of_kind("get"))
    if name == "delivery_rate":
        return delivery_rate(run)
    if name == "delivery_p99":
        return percentile(eligible_deliveries(run)["latency"], 99)
    raise KeyError(name)


def run_criteria(run: Run) -> list[dict]:
    return [criterion(name, criterion_value(run, name), target)
            for name, target in judged(run.scenario, scaling=False)]


def worst_over_points(points: list[Run], name: str) -> float | None:
    """The worst value of a run criterion over the sweep points (None if any point has none)."""
    values = [criterion_value(point, name) for point in points]
    if not values or any(value is None for value in values):
        return None
    return max(values) if SPECS[name].op in ("<", "<=") else min(values)


def point_perf(point: Run) -> dict:
    perf = point.manifest.get("perf")
    perf = perf if isinstance(perf, dict) else {}
    wall = _positive(perf.get("wall_seconds"))
    messages = _positive(perf.get("messages"))
    per_message = wall / messages if wall is not None and messages else None
    rate = perf.get("messages_per_wall_second")
    if rate is None and wall and messages is not None:
        rate = messages / wall
    return {
        "wall_seconds": wall,
        "messages": _int_or_none(messages) if messages is not None else None,
        "messages_per_wall_second": rate,
        "us_per_message": per_message * 1e6 if per_message is not None else None,
        "peak_rss_mb": perf.get("peak_rss_mb"),
        "wall_per_message": per_message,
    }


def _positive(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if value >= 0 else None


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


def point_label(point: Run) -> str:
    """A sweep point's label: the sweep manifest's, else its node count (and scoring setting)."""
    label = point.manifest.get("label")
    if isinstance(label, str) and label:
        return label
    scoring = point.manifest.get("scoring")
    suffix = f", scoring {'on' if scoring else 'off'}" if isinstance(scoring, bool) else ""
    return f"{point.manifest.get('nodes')} nodes{suffix}"


def summarise(run: Run) -> dict:
    """The summary.json content of a run or a sweep; deterministic for the same events and manifest."""
    if run.is_sweep:
        return _summarise_sweep(run)
    return {
        "scenario": run.name,
        "seed": run.manifest.get("seed", run.scenario.get("seed")),
        "nodes": run.manifest.get("nodes"),
        "runtime": run.manifest.get("runtime"),
        "simulated_seconds": num(simulated_seconds(run)),
        "criteria": run_criteria(run),
        "stats": run_stats(run),
        **({"pubsub": pubsub_stats(run)} if run_has_pubsub(run) else {}),
    }


def _summarise_sweep(run: Run) -> dict:
    points = []
    for point in run.points:
        perf = point_perf(point)
        lookups = point.of_kind("lookup")
        point_criteria = run_criteria(point)
        entry = {
            "label": point_label(point),
            "nodes": point.manifest.get("nodes"),
            "scoring": point.manifest.get("scoring"),
            "dir": point.path.name,
            "wall_seconds": num(perf["wall_seconds"]),
            "messages": num(perf["messages"]),
            "messages_per_wall_second": num(perf["messages_per_wall_second"]),
            "us_per_message": num(perf["us_per_message"]),
            "peak_rss_mb": num(perf["peak_rss_mb"]),
            "lookup_p99": num(percentile(lookups["latency"], 99)),
            "lookup_success": num(share_ok(lookups)),
            "pass": all(c["pass"] for c in point_criteria) if point_criteria else None,
        }
        if run_has_pubsub(point):
            entry["criteria"] = [c for c in point_criteria if c["name"] in DELIVERY_CRITERIA]
            entry["pubsub"] = pubsub_stats(point)
        points.append(entry)
    ratio = scaling_ratio(run.points)
    return {
        "scenario": run.name,
        "seed": run.manifest.get("seed", run.scenario.get("seed")),
        "nodes": [p["nodes"] for p in points],
        "runtime": run.manifest.get("runtime") or next((p.manifest.get("runtime") for p in run.points), None),
        "criteria": _sweep_criteria(run, ratio),
        "points": points,
        "missing_points": list(run.missing_points),
    }


def _sweep_criteria(run: Run, ratio: float | None) -> list[dict]:
    result = []
    for name, target in judged(run.scenario, scaling=judges_scaling(run)):
        if name == "scaling":
            result.append(criterion(name, ratio, target))
        else:
            description = f"Worst over the sweep points. {SPECS[name].description}"
            result.append(criterion(name, worst_over_points(run.points, name), target, description))
    return result


def verdict(summary: dict) -> bool | None:
    """True if every judged criterion passes, None if nothing is judged."""
    criteria = summary.get("criteria") or []
    return all(c["pass"] for c in criteria) if criteria else None


def summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def write_summary(run: Run, summary: dict | None = None) -> Path:
    summary = summarise(run) if summary is None else summary
    path = run.path / "summary.json"
    path.write_text(summary_json(summary), encoding="utf-8")
    return path
