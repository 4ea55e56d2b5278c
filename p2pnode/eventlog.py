"""The measured-events table (``events.csv``) that simulated and real nodes both write.

One row per event, in the columns ``analysis/`` reads (see ``docs/results.md``); rows are flushed as a run
goes so that a crash loses little.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

COLUMNS = ("time", "kind", "node", "latency", "hops", "ok", "value", "count")


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
