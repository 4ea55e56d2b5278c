"""Read a results directory: manifest.json and events.csv (docs/results.md)."""

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
    partial_line_dropped: bool = False

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
    events_path = path / "events.csv"
    if "sweep" in manifest:
        run = Run(path, manifest, empty_events())
        if events_path.exists():
            run.events, run.partial_line_dropped = read_events(events_path)
        _load_points(run)
        return run
    if not events_path.exists():
        raise AnalysisError(f"{path}: no events.csv (the run wrote no events)")
    events, dropped = read_events(events_path)
    return Run(path, manifest, events, partial_line_dropped=dropped)


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
        if not (point_path / "manifest.json").exists():
            run.missing_points.append(entry["dir"])
            continue
        point = load_run(point_path)
        for key in ("nodes", "scoring", "label"):
            if key in entry and key not in point.manifest:
                point.manifest[key] = entry[key]
        if not isinstance(point.manifest.get("perf"), dict) and isinstance(entry.get("perf"), dict):
            point.manifest["perf"] = entry["perf"]
        points.append(point)
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


def read_events(events_path: Path) -> tuple[pd.DataFrame, bool]:
    """Parse events.csv; a final line without a newline (a run that crashed mid-write) is dropped."""
    try:
        raw = events_path.read_bytes()
    except OSError as exc:
        raise AnalysisError(f"{events_path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnalysisError(f"{events_path}: not UTF-8 text (byte {exc.start})") from None
    dropped = False
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        dropped = True
    if not text.strip():
        return empty_events(), dropped
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
                texts = None
            except (pd.errors.ParserError, pd.errors.ParserWarning):
                raise
            except ValueError:  # a cell that is not a number: read everything as text to say which one
                table = texts = pd.read_csv(
                    io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False, index_col=False
                )
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        reason = _field_count_error(text, len(header)) or " ".join(str(exc).split())
        raise AnalysisError(f"{events_path}: malformed CSV ({reason})") from None
    table = table[list(COLUMNS)]
    keep = table["kind"].str.strip().isin(KINDS)
    table = table[keep]
    events = pd.DataFrame(index=table.index)
    events["kind"] = table["kind"].str.strip().astype(object)
    for name in numeric:
        column = table[name] if texts is None else _as_numbers(table[name], name, events_path)
        events[name] = _typed(column, name, events_path)
    events = events[list(COLUMNS)]
    if events["time"].isna().any():
        line = int(events.index[events["time"].isna()][0]) + 2
        raise AnalysisError(f"{events_path}: line {line}: empty time")
    events = events.sort_values("time", kind="mergesort").reset_index(drop=True)
    return events, dropped


def _field_count_error(text: str, expected: int) -> str | None:
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if row and len(row) != expected:
            return f"line {number}: expected {expected} fields, found {len(row)}"
    return None


def _as_numbers(column: pd.Series, name: str, events_path: Path) -> pd.Series:
    stripped = column.str.strip()
    values = pd.to_numeric(stripped.replace("", np.nan), errors="coerce")
    bad = values.isna() & (stripped != "")
    if bad.any():
        index = bad[bad].index[0]
        raise AnalysisError(
            f"{events_path}: line {int(index) + 2}: column {name}: {stripped[index]!r} is not a number"
        )
    return values.astype("float64")


def _typed(values: pd.Series, name: str, events_path: Path) -> pd.Series:
    if name in FLOAT_COLUMNS:
        return values
    fractional = values.notna() & (values != np.floor(values))
    if fractional.any():
        index = fractional[fractional].index[0]
        raise AnalysisError(
            f"{events_path}: line {int(index) + 2}: column {name}: {float(values[index]):g} is not an integer"
        )
    return values.astype("Int64")


def setting(section: object, key: str) -> object:
    """section[key] of a scenario section that may be missing (None) or not a mapping."""
    return section.get(key) if isinstance(section, dict) else None
