"""The run directory: manifest, events written as the run goes, and the final summary/report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


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


