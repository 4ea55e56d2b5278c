"""The measurement rules both drivers apply (docs/results.md): what is measured, when, and how it is judged.

The drivers run the nodes; these rules say which operations count and what the truth is, so that a simulated
and an emulated run of one scenario measure the same thing.
"""

from __future__ import annotations

from typing import Any

DRAIN = 10.0  # seconds after the measured period for running operations to finish


def drain_seconds(scenario: Any) -> float:
    """How long a run goes on after the measured period: operations started before its end may finish, and
    messages published then reach their delivery deadline."""
    if scenario.pubsub is None:
        return DRAIN
    return max(DRAIN, scenario.measure.delivery_deadline + 1.0)


class Published:
    """A message being measured: who should get it and who has."""

    __slots__ = ("mid", "number", "time", "topic", "publisher", "delivered")

    def __init__(self, mid: bytes, number: int, time_: float, topic: str, publisher: int):
        self.mid = mid
        self.number = number
        self.time = time_
        self.topic = topic
        self.publisher = publisher
        self.delivered: dict[int, float] = {}
