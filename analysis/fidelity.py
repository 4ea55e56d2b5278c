"""How closely two runs agree, above all the model (a simulated run) and real processes (an emulated run) of one
scenario: two-sample Kolmogorov–Smirnov distances between their latency distributions, the formation-time and
success-rate differences, each against a stated tolerance, and one line that says whether they agree.

The KS test is scipy's ``ks_2samp`` (exact p-values for small samples, asymptotic ones for large).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import kolmogi
from scipy.stats import ks_2samp

from analysis.definitions import clock
from analysis.load import Run
from analysis.stats import (
    CONVERGENCE,
    DELIVERIES,
    MCP_CALLS,
    Latencies,
    delivery_rate,
    formation_time,
    num,
    run_has_pubsub,
    share_ok,
)

KS_TOLERANCE = 0.1          # largest gap between the two latency CDFs
FORMATION_TOLERANCE = 0.2   # |B − A| / A
SUCCESS_TOLERANCE = 0.02    # |B − A| of a share: 2 percentage points

TOLERANCES = {"ks_distance": KS_TOLERANCE, "formation_relative": FORMATION_TOLERANCE,
              "success_difference": SUCCESS_TOLERANCE}

MEANINGS = (
    f"KS distance: the largest vertical gap between the two runs' empirical CDFs (0: the same distribution, 1: "
    f"no overlap at all); it agrees when at most {KS_TOLERANCE:g}. p is the chance of a gap at least this large "
    "if both samples came from one distribution (two-sided), and the chance gap is the gap that two samples of "
    "these sizes from one distribution exceed one time in twenty: when it is near the tolerance (a few hundred "
    "samples), a distance just above the tolerance can be chance. All lookups count, successful or not; "
    "deliveries are the `deliver` rows with ok == 1, as in the CDF plots.",
    f"Formation time: (second − first) / first, relative to the first run given; it agrees when within "
    f"±{FORMATION_TOLERANCE * 100:g} %. "
    "A run that never formed, beside one that did, disagrees.",
    f"Success rates (lookup success, get success, delivery rate, MCP success): second − first in percentage "
    f"points; they agree when within ±{SUCCESS_TOLERANCE * 100:g} pp. That is about three standard errors of "
    "the difference between two 99 % rates measured on 500 operations each (the order of a small scenario's "
    "lookups), so a larger difference is unlikely to be chance at the rates the criteria ask for.",
    "A figure measured in only one of the runs disagrees; one measured in neither is left out.",
)


@dataclass(frozen=True)
class Figure:
    """One compared figure: both runs' values (for a KS distance, their sample sizes), the distance or
    difference, its tolerance, and whether it is within it (None: nothing to compare)."""

    name: str
    label: str                   # what is compared: "lookup latency"
    kind: str                    # "ks" (distance), "relative" (difference / first) or "difference"
    unit: str                    # of a and b: "count" (sample sizes), "s" or "share"
    a: float | None
    b: float | None
    value: float | None          # KS distance, relative difference, or difference B − A
    tolerance: float
    agrees: bool | None
    p_value: float | None = None
    chance: float | None = None  # KS: the distance two samples of these sizes from one distribution exceed 5 % of
                                 # the time (asymptotic)
    where: float | None = None   # KS: the latency at which the two CDFs are furthest apart
    cdf_a: float | None = None   # KS: both CDFs there
    cdf_b: float | None = None
    note: str = ""


def ks_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(distance, p-value, where) of the two-sample KS test between samples a and b (neither empty)."""
    result = ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue), float(result.statistic_location)


def chance_distance(n: int, m: int, level: float = 0.05) -> float:
    """The KS distance that samples of sizes n and m from one distribution exceed with probability ``level``
    (Kolmogorov's asymptotic distribution)."""
    return float(kolmogi(level) * math.sqrt((n + m) / (n * m)))


def _sample(run: Run, sample: Latencies) -> np.ndarray:
    return np.sort(sample.rows(run)["latency"].astype("float64").dropna().to_numpy())


def _ecdf(values: np.ndarray, x: float) -> float:
    return float(np.searchsorted(values, x, side="right")) / len(values)


def latency_figure(first: Run, second: Run, sample: Latencies, labels: tuple[str, str]) -> Figure | None:
    a, b = _sample(first, sample), _sample(second, sample)
    name, label = f"{sample.noun.lower().replace(' ', '_')}_latency_ks", f"{sample.noun} latency"
    if not len(a) and not len(b):
        return None
    if not len(a) or not len(b):
        which = labels[1] if len(a) else labels[0]
        return Figure(name, label, "ks", "count", len(a), len(b), None, KS_TOLERANCE, False,
                      note=f"no {sample.plural} in {which}")
    distance, p_value, where = ks_distance(a, b)
    return Figure(name, label, "ks", "count", len(a), len(b), distance, KS_TOLERANCE, distance <= KS_TOLERANCE,
                  p_value=p_value, chance=chance_distance(len(a), len(b)), where=where, cdf_a=_ecdf(a, where),
                  cdf_b=_ecdf(b, where))


def formation_figure(first: Run, second: Run, labels: tuple[str, str]) -> Figure | None:
    checked = [not run.of_kind("formation").empty for run in (first, second)]
    if not any(checked):
        return None
    a, b = formation_time(first), formation_time(second)
    name, label = "formation_time", "formation time"
    if a is None and b is None:
        return Figure(name, label, "relative", "s", None, None, None, FORMATION_TOLERANCE, None,
                      note="formation reached in neither run")
    if a is None or b is None:
        return Figure(name, label, "relative", "s", a, b, None, FORMATION_TOLERANCE, False,
                      note=f"formation reached in {labels[1] if a is None else labels[0]} only")
    if a <= 0:
        return Figure(name, label, "relative", "s", a, b, None, FORMATION_TOLERANCE, False,
                      note=f"no relative difference: {labels[0]} formed at t=0")
    relative = (b - a) / a
    return Figure(name, label, "relative", "s", a, b, relative, FORMATION_TOLERANCE,
                  abs(relative) <= FORMATION_TOLERANCE)


SUCCESS_RATES = (
    ("lookup_success", "lookup success", lambda run: share_ok(run.of_kind("lookup"))),
    ("put_get_success", "get success (newest version)", lambda run: share_ok(run.of_kind("get"))),
    ("delivery_rate", "delivery rate", delivery_rate),
    ("mcp_success", "MCP success", lambda run: share_ok(run.of_kind("mcp"))),
)


def success_figures(first: Run, second: Run, labels: tuple[str, str]) -> list[Figure]:
    figures = []
    for name, label, rate in SUCCESS_RATES:
        a, b = rate(first), rate(second)
        if a is None and b is None:
            continue
        if a is None or b is None:
            figures.append(Figure(name, label, "difference", "share", a, b, None, SUCCESS_TOLERANCE, False,
                                  note=f"measured in {labels[1] if a is None else labels[0]} only"))
            continue
        # rounded so that a difference of exactly the tolerance is not lost to float error
        difference = round(b - a, 12)
        figures.append(Figure(name, label, "difference", "share", a, b, difference, SUCCESS_TOLERANCE,
                              abs(difference) <= SUCCESS_TOLERANCE))
    return figures


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    """A nested mapping as {"a.b.c": leaf}."""
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def setting_differences(first: Run, second: Run) -> list[str]:
    """The settings (dotted keys: the node count, the resolved scenario) in which the two runs differ; seed,
    name and description aside."""
    flat = [flatten({"nodes": run.manifest.get("nodes"), "scenario": run.scenario}) for run in (first, second)]
    ignored = {"scenario.seed", "scenario.name", "scenario.description"}
    return sorted(key for key in set(flat[0]) | set(flat[1])
                  if key not in ignored and flat[0].get(key) != flat[1].get(key))


def _is_model_check(first: Run, second: Run) -> bool:
    return {first.runtime, second.runtime} == {"sim", "emulation"}


def what_is_compared(first: Run, second: Run, labels: tuple[str, str]) -> str:
    """One sentence that says what the figures compare: the model against the emulation, two runs of one
    runtime, or runs of different scenarios or settings."""
    la, lb = labels
    runs = f"{la} ({clock(first.runtime)}, seed {first.manifest.get('seed')}) and {lb} " \
           f"({clock(second.runtime)}, seed {second.manifest.get('seed')})"
    if first.name != second.name:
        return (f"Runs of different scenarios, {first.name} and {second.name}: {runs}. The figures mix the "
                "scenarios' differences with anything else; a fidelity verdict needs one scenario run in both "
                "runtimes.")
    differences = setting_differences(first, second)
    if _is_model_check(first, second):
        text = f"The model against real processes: {runs}, of scenario {first.name}."
    elif first.runtime == second.runtime:
        text = (f"Two {clock(first.runtime)} runs of scenario {first.name}: {runs}. The figures show how far "
                "two runs of one runtime differ, not the model's fidelity.")
    else:
        text = f"Runs of scenario {first.name}: {runs}."
    if differences:
        shown = ", ".join(f"`{key}`" for key in differences[:6]) + (" …" if len(differences) > 6 else "")
        text += f" Their settings differ in {shown} (see the differences below)."
    return text


def distance_text(figure: Figure) -> str:
    """The distance or difference as a report shows it: 0.073, +12.5 %, −0.40 pp."""
    if figure.value is None:
        return figure.note or "—"
    if figure.kind == "ks":
        return f"{figure.value:.3f}"
    if figure.kind == "relative":
        return f"{figure.value * 100:+.1f} %"
    return f"{figure.value * 100:+.2f} pp"


def p_text(figure: Figure) -> str:
    if figure.p_value is None:
        return "—"
    return "< 0.001" if figure.p_value < 0.001 else f"{figure.p_value:.3g}"


def tolerance_text(figure: Figure) -> str:
    if figure.kind == "ks":
        return f"≤ {figure.tolerance:g}"
    if figure.kind == "relative":
        return f"±{figure.tolerance * 100:g} %"
    return f"±{figure.tolerance * 100:g} pp"


KIND_TEXT = {"ks": "KS distance", "relative": "relative difference", "difference": "difference"}


def _excess(figure: Figure) -> str:
    if figure.value is None:
        return f"{figure.label}: {figure.note}"
    return f"{figure.label} {KIND_TEXT[figure.kind]} {distance_text(figure)} (tolerance {tolerance_text(figure)})"


def agreement(first: Run, second: Run, figures: list[Figure], labels: tuple[str, str]) -> tuple[bool | None, str]:
    """Whether every compared figure is within its tolerance, and the line that says so."""
    judged = [figure for figure in figures if figure.agrees is not None]
    if _is_model_check(first, second):
        subject, other = f"The model ({labels[0] if first.runtime == 'sim' else labels[1]})", "the emulation"
    else:
        subject, other = "The two runs", None
    if not judged:
        return None, "Nothing to compare: neither run measured latencies, formation or success rates."
    failing = [figure for figure in judged if not figure.agrees]
    within = f"within the stated tolerances ({len(judged)} of {len(judged)} figures)"
    if not failing:
        return True, f"{subject} agrees with {other} {within}." if other else f"{subject} agree {within}."
    reasons = "; ".join(_excess(figure) for figure in failing)
    verb = f"does not agree with {other}" if other else "do not agree"
    return False, f"{subject} {verb}: {len(failing)} of {len(judged)} figures outside tolerance ({reasons})."


@dataclass(frozen=True)
class Fidelity:
    """The fidelity part of a comparison: what is compared, every figure, and the agreement line."""

    compares: str
    model_check: bool  # a simulated and an emulated run
    runs: list[dict]
    figures: list[Figure]
    agrees: bool | None
    verdict: str

    def as_json(self) -> dict:
        """fidelity.json: as the fields, with the tolerances, numbers rounded as in summary.json."""
        return {"compares": self.compares, "model_check": self.model_check, "runs": self.runs,
                "tolerances": dict(TOLERANCES),
                "figures": [{key: num(value) for key, value in asdict(figure).items()} for figure in self.figures],
                "agrees": self.agrees, "verdict": self.verdict}


def compare_fidelity(first: Run, second: Run, labels: tuple[str, str]) -> Fidelity:
    """Compare two runs' latency distributions, formation and success rates against the tolerances."""
    figures = [latency_figure(first, second, CONVERGENCE, labels)]
    if run_has_pubsub(first) or run_has_pubsub(second):
        figures.append(latency_figure(first, second, DELIVERIES, labels))
    figures.append(latency_figure(first, second, MCP_CALLS, labels))  # None unless a run made MCP calls
    figures.append(formation_figure(first, second, labels))
    figures = [figure for figure in figures if figure is not None] + success_figures(first, second, labels)
    agrees, line = agreement(first, second, figures, labels)
    runs = [{"label": label, "dir": run.path.name, "runtime": run.runtime, "scenario": run.name,
             "seed": run.manifest.get("seed")} for label, run in zip(labels, (first, second), strict=True)]
    return Fidelity(what_is_compared(first, second, labels), _is_model_check(first, second), runs, figures, agrees,
                    line)
