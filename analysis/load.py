"""Read a results directory: manifest.json and events.csv (docs/results.md).

Damaged results are said, not silently reported: a half-written last line, rows of unknown kinds, cells that are
not numbers and impossible values (a negative or infinite latency or time) are left out, each kind of damage one
line in `Run.damage` (the report and the terminal show them); a manifest without a scenario is damage too. Where
nothing usable remains, loading fails (AnalysisError, exit status 2)."""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiment.events import COLUMNS, KINDS
from p2pnode.userinput import quote

FLOAT_COLUMNS = ("time", "latency", "value")
INT_COLUMNS = ("node", "hops", "ok", "count")


class AnalysisError(ValueError):
    """A results directory that cannot be analysed; the message is one line meant for the user."""


@dataclass
class Run:
    """One run directory, or a sweep directory whose points are full runs."""

    path: Path
    manifest: dict
    events: pd.DataFrame
    points: list[Run] = field(default_factory=list)        # sweeps only, by (node count, scoring)
    missing_points: list[str] = field(default_factory=list)  # sweep point dirs listed but not found
    damage: list[str] = field(default_factory=list)  # what was wrong with the files, one line each

    @property
    def scenario(self) -> dict:
        scenario = self.manifest.get("scenario")
        return scenario if isinstance(scenario, dict) else {}

    @property
    def name(self) -> str:
        return str(self.scenario.get("name") or self.path.name)

    @property
    def runtime(self) -> str | None:
        """The manifest's runtime (`sim` or `emulation`); a sweep's, else its first point's."""
        runtime = self.manifest.get("runtime") or next((p.manifest.get("runtime") for p in self.points), None)
        return runtime if isinstance(runtime, str) else None

    @property
    def is_sweep(self) -> bool:
        return "sweep" in self.manifest

    def of_kind(self, kind: str) -> pd.DataFrame:
        return self.events[self.events["kind"] == kind]


def load_run(directory: str | Path) -> Run:
    """Load a run (or sweep) directory; raise AnalysisError with a one-line reason if it is unusable."""
    path = Path(directory)
    if not path.exists():
        raise AnalysisError(f"{path}: no such directory")
    if not path.is_dir():
        raise AnalysisError(f"{path}: not a directory")
    manifest = _read_manifest(path)
    damage = [] if "scenario" in manifest else [
        "manifest.json has no scenario: the default criteria are judged and the run's settings are unknown"]
    events_path = path / "events.csv"
    if "sweep" in manifest:
        run = Run(path, manifest, empty_events(), damage=damage)
        if events_path.exists():
            run.events, more = read_events(events_path)
            run.damage += more
        _load_points(run)
        return run
    if not events_path.exists():
        raise AnalysisError(f"{path}: no events.csv (the run wrote no events)")
    events, more = read_events(events_path)
    return Run(path, manifest, events, damage=damage + more)


def read_section(directory: str | Path, file_name: str) -> dict | None:
    """A run's optional JSON file beside its events (``nat.json``, ``access.json``): None when the run has none;
    an unreadable or damaged one is said on stderr and read as none."""
    file = Path(directory) / file_name
    if not file.exists():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.warn(f"{file}: left out, not readable as JSON ({quote(str(exc))})", stacklevel=2)
        return None
    if not isinstance(data, dict):
        warnings.warn(f"{file}: left out, not a JSON object", stacklevel=2)
        return None
    return data


def _read_manifest(path: Path) -> dict:
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise AnalysisError(f"{path}: no manifest.json (not a results directory)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise AnalysisError(f"{manifest_path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"{manifest_path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except OSError as exc:
        raise AnalysisError(f"{manifest_path}: cannot read ({exc.strerror})") from None
    if not isinstance(manifest, dict):
        raise AnalysisError(f"{manifest_path}: expected a JSON object")
    if "scenario" in manifest and not isinstance(manifest["scenario"], dict):
        raise AnalysisError(f"{manifest_path}: 'scenario' is not an object")
    return manifest


def _load_points(run: Run) -> None:
    entries = run.manifest.get("sweep")
    if not isinstance(entries, list):
        raise AnalysisError(f"{run.path / 'manifest.json'}: 'sweep' is not a list of points")
    points = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("dir"), str):
            raise AnalysisError(f"{run.path / 'manifest.json'}: sweep point without a 'dir': {entry!r}")
        point_path = run.path / entry["dir"]
        status = entry.get("status", "completed")  # older sweeps list only the points that ran
        if status == "failed":
            continue  # said as a failed run (analysis.sweep), left out of every figure
        if status != "completed" or not (point_path / "manifest.json").exists():
            run.missing_points.append(entry["dir"])
            continue
        point = load_run(point_path)
        for key in ("nodes", "scoring", "label"):
            if key in entry and key not in point.manifest:
                point.manifest[key] = entry[key]
        if not isinstance(point.manifest.get("perf"), dict) and isinstance(entry.get("perf"), dict):
            point.manifest["perf"] = entry["perf"]
        points.append(point)
    if not any("params" in e or "seed" in e for e in entries):  # a grid keeps the sweep's own order
        points.sort(key=lambda p: (_as_int(p.manifest.get("nodes")), _scoring_rank(p.manifest.get("scoring")),
                                   p.path.name))
    run.points = points


def _scoring_rank(scoring: object) -> int:
    """Sweep points without a scoring setting first, then scoring off, then on."""
    if scoring is None:
        return 0
    return 1 + int(scoring) if isinstance(scoring, bool) else 3


def _as_int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def empty_events() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype=_dtype(name)) for name in COLUMNS})
    return frame


def _dtype(name: str) -> str:
    if name == "kind":
        return "object"
    return "Int64" if name in INT_COLUMNS else "float64"


def read_events(events_path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Parse events.csv, leaving out what is damaged; returns the events and one line per kind of damage."""
    try:
        raw = events_path.read_bytes()
    except OSError as exc:
        raise AnalysisError(f"{events_path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnalysisError(f"{events_path}: not UTF-8 text (byte {exc.start})") from None
    damage = []
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        damage.append("events.csv ended with an incomplete line (the run stopped mid-write); it was ignored")
    if not text.strip():
        return empty_events(), damage
    header = [name.strip() for name in text.split("\n", 1)[0].rstrip("\r").split(",")]
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise AnalysisError(f"{events_path}: missing column(s) {', '.join(missing)}")
    numeric = [name for name in COLUMNS if name != "kind"]
    try:
        with warnings.catch_warnings():
            # a row with more fields than the header is an error, not an index column or a warning
            warnings.simplefilter("error", pd.errors.ParserWarning)
            try:  # fast path: the C parser reads the numbers itself
                table = pd.read_csv(
                    io.StringIO(text), keep_default_na=False, index_col=False,
                    dtype={"kind": str, **dict.fromkeys(numeric, "float64")},
                    na_values=dict.fromkeys(numeric, [""]),
                )
                texts = False
            except (pd.errors.ParserError, pd.errors.ParserWarning):
                raise
            except ValueError:  # a cell that is not a number: read everything as text to find which
                table = pd.read_csv(
                    io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False, index_col=False
                )
                texts = True
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        reason = _field_count_error(text, len(header)) or " ".join(str(exc).split())
        raise AnalysisError(f"{events_path}: malformed CSV ({reason})") from None
    table = table[list(COLUMNS)]
    rows = len(table)
    kinds = table["kind"].astype(str).str.strip()
    unknown = ~kinds.isin(KINDS)
    if unknown.any():
        first = unknown[unknown].index[0]
        damage.append(f"events.csv: {int(unknown.sum())} row(s) of unknown kinds ignored "
                      f"(line {int(first) + 2}: {quote(kinds[first], 30)})")
    events = pd.DataFrame({"kind": kinds.astype(object)}, index=table.index)
    bad = pd.Series(False, index=table.index)
    reasons = []
    for name in numeric:
        values, wrong, reason = _checked(table[name], name, texts)
        events[name] = values
        relevant = wrong & ~unknown
        if relevant.any():
            first = relevant[relevant].index[0]
            reasons.append((int(first), f"column {name}: {reason(first)}"))
        bad |= wrong
    bad &= ~unknown
    if bad.any():
        line, reason = min(reasons)
        damage.append(f"events.csv: {int(bad.sum())} row(s) with values that are not numbers or impossible ignored "
                      f"(line {line + 2}: {reason})")
    events = events[~unknown & ~bad]
    if rows and events.empty and damage:
        raise AnalysisError(f"{events_path}: nothing usable: {damage[-1]}")
    for name in numeric:
        if name in INT_COLUMNS:
            events[name] = events[name].astype("Int64")
    events = events[list(COLUMNS)]
    events = events.sort_values("time", kind="mergesort").reset_index(drop=True)
    return events, damage


def _field_count_error(text: str, expected: int) -> str | None:
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if row and len(row) != expected:
            return f"line {number}: expected {expected} fields, found {len(row)}"
    return None


def _checked(column: pd.Series, name: str, texts: bool):
    """(the column as floats, which rows hold what cannot be, a reason for a row) for one numeric column: text
    that is not a number; in every column an infinite value; an empty or negative time; a negative latency; a
    negative or fractional integer."""
    if texts:
        stripped = column.astype(str).str.strip()
        values = pd.to_numeric(stripped.replace("", np.nan), errors="coerce").astype("float64")
        not_number = values.isna() & (stripped != "")
    else:
        stripped, values = None, column.astype("float64")
        not_number = pd.Series(False, index=column.index)
    infinite = np.isinf(values)
    wrong = not_number | infinite
    if name == "time":
        wrong |= values.isna() | (values < 0)
    elif name == "latency" or name in INT_COLUMNS:
        wrong |= values < 0
    if name in INT_COLUMNS:
        wrong |= values.notna() & ~infinite & (values != np.floor(values))

    def reason(index) -> str:
        if not_number[index]:
            return f"{quote(stripped[index], 30)} is not a number"
        value = values[index]
        if np.isnan(value):
            return "empty"
        if name in INT_COLUMNS and not np.isinf(value) and value >= 0:
            return f"{value:g} is not an integer"
        return f"{value:g} is impossible"

    return values, wrong, reason


def setting(section: object, key: str) -> object:
    """section[key] of a scenario section that may be missing (None) or not a mapping."""
    return section.get(key) if isinstance(section, dict) else None
