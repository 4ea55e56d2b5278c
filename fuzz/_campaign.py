"""A run of several targets: each in its own process for its share of the time (``jobs`` at once), restarted
after a crash (a target stops after ``MAX_CRASHES``), and one table at the end — executions, executions per
second of fuzzing (start-up excluded), coverage (atheris's edges and features), crashes, and the wall and CPU
seconds spent."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

MAX_CRASHES = 5

_STAT = re.compile(r"^stat::(\w+):\s*(\d+)", re.M)
_COVERAGE = re.compile(r"^#\d+\s+\w+\s+cov: (\d+) ft: (\d+)", re.M)
_DONE = re.compile(r"^Done (\d+) runs in (\d+) second", re.M)
_SPLICES = re.compile(r"^\S+: (\d+) inputs in (\d+) s", re.M)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


@dataclass
class Result:
    name: str
    executions: int = 0
    seconds: float = 0.0
    fuzzing: float = 0.0  # seconds spent on inputs, as the fuzzer counts them
    cpu: float = 0.0
    coverage: int | None = None
    features: int | None = None
    crashes: list[str] = field(default_factory=list)  # a line on each: the input's file and the error
    starved: list[str] = field(default_factory=list)  # timeouts whose input replays within the timeout


def _crash_line(output: str) -> str:
    """The error a crashed run reports: the last line of its Python traceback, or libFuzzer's ERROR line."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "Uncaught Python exception" in line:
            tail = [x for x in lines[i + 1:] if x and not x.startswith((" ", "Traceback"))]
            return tail[0][:200] if tail else line
    for line in lines:
        if "ERROR: libFuzzer" in line or "crash on input" in line:
            return line.strip()[:200]
    return (lines[-1] if lines else "no output")[:200]


def _run_one(name: str, seconds: float, seed: int, timeout: float, out: Path | None, extra: list[str],
             result: Result) -> None:
    deadline = time.monotonic() + seconds
    attempt = 0
    while len(result.crashes) < MAX_CRASHES:
        left = deadline - time.monotonic()
        if left < 1:
            break
        command = [sys.executable, "-m", "fuzz", name, f"--seconds={left:.0f}", f"--seed={seed + attempt}",
                   f"--timeout={timeout}", *extra]
        if out is not None:
            command.append(f"--out={out}")
        started = time.monotonic()
        with tempfile.TemporaryFile("w+", errors="replace") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=Path(__file__).resolve().parents[1])
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            log.seek(0)
            output = log.read()
        result.seconds += time.monotonic() - started
        result.cpu += usage.ru_utime + usage.ru_stime
        if out is not None:
            (out / name).mkdir(parents=True, exist_ok=True)
            (out / name / f"run-{attempt}.log").write_text(output)
        stats = dict((k, int(v)) for k, v in _STAT.findall(output))
        if found := _DONE.findall(output) or _SPLICES.findall(output):
            result.executions += int(found[-1][0])
            result.fuzzing += int(found[-1][1])
        elif "number_of_executed_units" in stats:  # a crash: no "Done" line
            result.executions += stats["number_of_executed_units"]
        if found := _COVERAGE.findall(output):
            cov, ft = map(int, found[-1])
            result.coverage = max(result.coverage or 0, cov)
            result.features = max(result.features or 0, ft)
        if proc.returncode != 0:
            artifact = _ARTIFACT.search(output)
            line = f"{artifact.group(1) if artifact else '(input in the log)'}: {_crash_line(output)}"
            if artifact and "timeout-" in artifact.group(1) and not _still_hangs(name, artifact.group(1), timeout):
                result.starved.append(line)
            else:
                result.crashes.append(line)
        attempt += 1


def _still_hangs(name: str, path: str, timeout: float) -> bool:
    """Whether a timed-out input takes over ``timeout`` seconds of CPU when replayed. libFuzzer's timeout is
    wall-clock time, which a run at the lowest priority on a busy machine can spend waiting for a core."""
    proc = subprocess.run([sys.executable, "-m", "fuzz", name, "--replay", path, f"--timeout={timeout}"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    return proc.returncode != 0


def campaign(names: list[str], *, seconds: float, seed: int, timeout: float, out: Path | None,
             extra: list[str], jobs: int = 1) -> int:
    """Run ``names`` for ``seconds`` each, ``jobs`` at a time; print the table; exit status 1 if anything
    crashed."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    def one(name: str) -> Result:
        result = Result(name)
        _run_one(name, seconds, seed, timeout, out, extra, result)
        print(_row(result), flush=True)
        return result

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(one, names))
    print(_table(results), flush=True)
    for result in results:
        for crash in result.crashes:
            print(f"crash in {result.name}: {crash}")
        for line in result.starved:
            print(f"not a hang in {result.name} (replays within the timeout; the run waited for a core): {line}")
    return 1 if any(r.crashes for r in results) else 0


def _row(r: Result) -> str:
    rate = r.executions / r.fuzzing if r.fuzzing else 0.0
    cov = f"{r.coverage}/{r.features}" if r.coverage is not None else "-"
    return (f"{r.name:<16} {r.executions:>11,} {rate:>9,.0f} {cov:>13} {len(r.crashes):>7} "
            f"{r.seconds:>8.0f} {r.cpu:>8.0f}")


def _table(results: list[Result]) -> str:
    head = (f"{'target':<16} {'executions':>11} {'exec/s':>9} {'cov/features':>13} {'crashes':>7} "
            f"{'wall s':>8} {'cpu s':>8}")
    total = Result("total", sum(r.executions for r in results), sum(r.seconds for r in results),
                   sum(r.fuzzing for r in results), sum(r.cpu for r in results), None, None,
                   [c for r in results for c in r.crashes])
    return "\n".join([head, *(_row(r) for r in results), _row(total)])
