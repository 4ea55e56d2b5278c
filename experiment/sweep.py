"""Where a sweep's runs run: on Dask's distributed scheduler — a LocalCluster of worker processes on this
machine's cores, or the cluster whose scheduler is at ``--dask tcp://host:8786`` — or one after another in
this process (one worker, or dask.distributed not installed: ``pip install 'p2pnode[sweep]'``).

The runtime hands an `Engine` one task per run (a picklable, importable function and its arguments) and reads
the outcomes as they complete; a task that raises, or whose worker dies, is an outcome with an error, never the
end of the sweep.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from experiment.command import UsageError

CONNECT_TIMEOUT = 20.0  # seconds to reach a remote scheduler


@dataclass
class Outcome:
    index: int  # the task's position in submission order
    result: Any = None
    error: str | None = None  # one line: what went wrong (the task raised, or its worker died)


def have_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


Progress = Callable[[str, float, float], None]  # (run name, simulated now, simulated stop)


class Engine:
    """Tasks submitted in order, outcomes in the order they complete."""

    description = ""

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        raise NotImplementedError

    def progress_sink(self, handler: Progress) -> Any:
        """What a task is handed so that `reporter` in it reaches ``handler`` here: the handler itself in this
        process, a topic of the scheduler's events on Dask."""
        return handler

    def outcomes(self) -> Iterator[Outcome]:
        raise NotImplementedError


class InProcess(Engine):
    """Each task runs when its outcome is asked for, in this process (debuggers and profilers see it)."""

    description = "in this process, one run after another"

    def __init__(self) -> None:
        self._tasks: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._tasks.append((fn, args))

    def outcomes(self) -> Iterator[Outcome]:
        for index, (fn, args) in enumerate(self._tasks):
            try:
                yield Outcome(index, fn(*args))
            except Exception as exc:  # noqa: BLE001 - a failed run is reported, the sweep goes on
                yield Outcome(index, error=error_line(exc))


class Dask(Engine):
    def __init__(self, client: Any, description: str) -> None:
        self.client = client
        self.description = description
        self._futures: list[Any] = []
        self._tag = uuid.uuid4().hex[:12]  # keys unique on a scheduler other clients share

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        # pure=False: two runs with equal arguments are still two runs; no retries: a run is deterministic
        self._futures.append(self.client.submit(fn, *args, pure=False, retries=0,
                                                key=f"run-{self._tag}-{len(self._futures)}"))

    def progress_sink(self, handler: Progress) -> Any:
        topic = f"sweep-progress-{self._tag}"
        self.client.subscribe_topic(topic, lambda event: handler(*event[1]))
        return topic

    def outcomes(self) -> Iterator[Outcome]:
        from distributed import as_completed

        index = {future.key: i for i, future in enumerate(self._futures)}
        for future in as_completed(self._futures, loop=self.client.loop):
            i = index[future.key]
            try:
                yield Outcome(i, future.result())
            except Exception as exc:  # noqa: BLE001 - the run raised, or its worker died (KilledWorker)
                yield Outcome(i, error=error_line(exc))
            finally:
                future.release()


def reporter(sink: Any, name: str, every: float = 1.0) -> Callable[[float, float], None] | None:
    """In a task: a ``update(now, stop)`` that tells the sweep's terminal how far run ``name`` is, at most once
    per ``every`` wall seconds (`Engine.progress_sink` made ``sink``); None without a sink."""
    if sink is None:
        return None
    if callable(sink):
        send = sink
    else:
        from distributed import get_worker

        worker = get_worker()

        def send(name: str, now: float, stop: float) -> None:
            worker.log_event(sink, (name, now, stop))

    last = [-every]

    def update(now: float, stop: float) -> None:
        wall = time.monotonic()
        if wall - last[0] >= every:
            last[0] = wall
            send(name, now, stop)

    return update


def error_line(exc: BaseException) -> str:
    """An exception as one line: its type, message and where it was raised."""
    text = " ".join(str(exc).split()) or "no message"
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {os.path.basename(where[0].filename)}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {text}{at}"


@contextlib.contextmanager
def engine(address: str | None, workers: int) -> Iterator[Engine]:
    """The engine for a sweep: the Dask cluster at ``address``; else a LocalCluster of ``workers`` processes;
    in this process when ``workers`` is 1 or Dask is missing (then `Engine.description` says so).
    Raises UsageError when ``address`` is given but cannot be used."""
    if address is None and (workers <= 1 or not have_dask()):
        local = InProcess()
        if workers > 1:
            local.description += " (dask.distributed is not installed: pip install 'p2pnode[sweep]' for parallel runs)"
        yield local
        return
    if not have_dask():
        raise UsageError("--dask needs dask.distributed: pip install 'p2pnode[sweep]'")
    from distributed import Client, LocalCluster

    if address is not None:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {address}: {' '.join(str(exc).split())}") from None
        with client:
            count = len(client.scheduler_info().get("workers", {}))
            yield Dask(client, f"on the Dask cluster at {address} ({count} workers)")
        return
    # processes: the simulator is pure Python (one core per run); no memory limit: the run's own size was checked
    # (experiment.feasibility) and a nanny that kills a big run would only lose it; no dashboard port to collide
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                      dashboard_address=None, host="127.0.0.1", silence_logs=logging.ERROR) as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield Dask(client, f"on a local Dask cluster of {workers} worker processes")
