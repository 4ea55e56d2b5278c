"""``SimClock`` runs the runtime's scheduled callbacks in exactly SimPy's order, and SimPy's own events still."""

from __future__ import annotations

import random

import simpy

from sim.runtime import SimClock, _Call


def _drive(env: simpy.Environment) -> list[tuple[float, int]]:
    """Callbacks at random times (some exactly at a ``run`` boundary, some at equal times, some cancelled,
    some scheduling more): the order they ran in."""
    rng = random.Random(3)
    log: list[tuple[float, int]] = []
    timers: list[_Call] = []

    def fire(tag: int) -> None:
        log.append((env.now, tag))
        if tag % 3 == 0:
            timers.append(_Call(env, rng.choice([0.0, 0.5, 1.0, rng.random()]), fire, (tag + 1000,)))
        if tag % 7 == 0 and timers:
            timers[rng.randrange(len(timers))].cancel()

    for tag in range(300):
        timers.append(_Call(env, rng.choice([1.0, 2.0, 2.5, rng.uniform(0, 6)]), fire, (tag,)))
    for until in (1.0, 2.0, 2.5, 4.0, 10.0):
        env.run(until=until)
        log.append((env.now, -1))
    return log


def test_same_order_as_simpy():
    reference = _drive(simpy.Environment())
    assert len(reference) > 300
    assert _drive(SimClock()) == reference


def _with_process(env: simpy.Environment) -> list[tuple[float, str]]:
    log: list[tuple[float, str]] = []

    def process():
        yield env.timeout(1.5)
        log.append((env.now, "process"))
        _Call(env, 0.0, lambda: log.append((env.now, "call from process")), ())
        yield env.timeout(1.0)
        log.append((env.now, "process again"))

    env.process(process())
    _Call(env, 1.5, lambda: log.append((env.now, "call")), ())
    env.run(until=2.0)
    log.append((env.now, "stop"))
    env.run(until=3.0)
    return log


def test_simpy_processes_still_run():
    log = _with_process(SimClock())
    assert log == _with_process(simpy.Environment())
    assert sorted(log) == [(1.5, "call"), (1.5, "call from process"), (1.5, "process"), (2.0, "stop"),
                           (2.5, "process again")]
