"""The run directory: manifest, events written as the run goes, and the final summary/report."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

COLUMNS = ("time", "kind", "node", "latency", "hops", "ok", "value", "count")


def new_run_dir(base: Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = base / f"{name}-{stamp}"
    n = 2
    while candidate.exists():
        candidate = base / f"{name}-{stamp}-{n}"
        n += 1
    candidate.mkdir(parents=True)
    return candidate


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6f}"
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


class EventWriter:
    """events.csv, one row per measured event; ``flush`` pushes rows to disk so a crash loses little."""

    def __init__(self, path: Path):
        self._file = open(path, "w", newline="")
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow(COLUMNS)
        self.rows = 0

    def write(self, time_: float, kind: str, node: int | None = None, latency: float | None = None,
              hops: int | None = None, ok: bool | None = None, value: float | int | None = None,
              count: int | None = None) -> None:
        self._writer.writerow((f"{time_:.6f}", kind, _cell(node), _cell(latency), _cell(hops), _cell(ok),
                               _cell(value), _cell(count)))
        self.rows += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
