"""Pub-sub measurement: publish, deliver, judge (docs/results.md, "delivery").

Messages flow from ``nodes.join_over`` on, as in a network in steady state (an idle topic would also have
peer scoring prune every mesh for want of deliveries); those published from the end of the warm-up are
measured. Each comes from a random live publisher (the others in random order when it is down) on a random
topic. A subscriber is eligible for a message if it is honest, not the publisher, and was up continuously from
``measure.delivery_settle`` s before the publish until ``measure.delivery_deadline`` s after it; the message is
delivered to it if it first received the message within the deadline. Once the deadline has passed the
message is judged: one `delivery` row with the eligible subscribers reached (value) out of all eligible
(count). Sessions are kept, so a driver may judge a little after the deadline (the emulator waits for
receptions still in its pipes) and get the same answer.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from experiment.plan import Plan
from p2pnode.eventlog import EventWriter

NEVER = float("inf")


class Published:
    """A message being measured: who should get it and who has."""

    __slots__ = ("mid", "number", "time", "topic", "publisher", "delivered")

    def __init__(self, mid: bytes, number: int, time_: float, topic: str, publisher: int):
        self.mid = mid
        self.number = number
        self.time = time_
        self.topic = topic
        self.publisher = publisher
        self.delivered: dict[int, float] = {}  # subscriber -> time of its first reception


class Delivery:
    def __init__(self, scenario: Any, plan: Plan, events: EventWriter):
        ps = scenario.pubsub
        self.events = events
        self.rate = ps.rate
        self.periodic = ps.arrivals == "periodic"
        self.join_over = scenario.nodes.join_over
        self.warmup = scenario.warmup
        self.settle = scenario.measure.delivery_settle
        self.deadline = scenario.measure.delivery_deadline
        self.d_lo = ps.router.d_lo
        self.topic_names = plan.topic_names
        self.subscribers = plan.subscribers
        self.publishers = plan.publishers
        self.attacker = plan.attacker
        n = plan.n
        self.up_since = [NEVER] * n  # start of the current session; NEVER while down
        self.last_session = [(NEVER, NEVER)] * n  # (up, down) of the last finished session
        self.in_flight: dict[bytes, Published] = {}  # by message ID
        self.count = 0

    # ---- sessions --------------------------------------------------------------------------------

    def node_up(self, i: int, now: float) -> None:
        self.up_since[i] = now

    def node_down(self, i: int, now: float) -> None:
        self.last_session[i] = (self.up_since[i], now)
        self.up_since[i] = NEVER

    def _up_throughout(self, i: int, start: float, end: float) -> bool:
        if self.up_since[i] <= start:
            return True
        up, down = self.last_session[i]
        return up <= start and down >= end

    # ---- publishing ------------------------------------------------------------------------------

    def gap(self, rng: random.Random) -> float:
        """Seconds until the next message (network-wide)."""
        return 1.0 / self.rate if self.periodic else rng.expovariate(self.rate)

    def first_publish(self, rng: random.Random) -> float:
        return self.join_over + self.gap(rng)

    def choose(self, rng: random.Random, nodes: Sequence[Any]) -> tuple[Any, int, str] | None:
        """(node, index, topic) of the next message: a random topic, a random live publisher (the others in
        random order when it is down); None when every publisher is down."""
        topic = self.topic_names[rng.randrange(len(self.topic_names))]
        publishers = self.publishers
        start = rng.randrange(len(publishers))
        for k in range(len(publishers)):
            i = publishers[(start + k) % len(publishers)]
            if nodes[i] is not None:
                return nodes[i], i, topic
        return None

    def published(self, mid: bytes, now: float, topic: str, publisher: int, size: int) -> Published | None:
        """Node ``publisher`` published message ``mid`` at ``now``: measured (a `publish` row, and the record
        to judge once ``deadline`` has passed) if it is past the warm-up, else None."""
        if now < self.warmup:
            return None
        record = Published(mid, self.count, now, topic, publisher)
        self.count += 1
        self.in_flight[mid] = record
        self.events.write(now, "publish", publisher, value=record.number, count=size)
        return record

    # ---- delivery and judging --------------------------------------------------------------------

    def delivered(self, i: int, mid: bytes, now: float) -> None:
        """Node ``i`` first received message ``mid`` at ``now``: a `deliver` row for an honest subscriber
        other than the publisher (ok when it had been up since ``delivery_settle`` before the publish)."""
        record = self.in_flight.get(mid)
        if record is None or i == record.publisher or self.attacker[i] or i in record.delivered:
            return
        record.delivered[i] = now
        eligible = self.up_since[i] <= record.time - self.settle
        self.events.write(now, "deliver", i, now - record.time, ok=eligible, value=record.number)

    def judge(self, record: Published) -> None:
        """The deadline has passed: count the eligible subscribers, and those that got the message in time."""
        del self.in_flight[record.mid]
        since, by = record.time - self.settle, record.time + self.deadline
        eligible = delivered = 0
        for j in self.subscribers[record.topic]:
            if j == record.publisher or not self._up_throughout(j, since, by):
                continue
            eligible += 1
            delivered += record.delivered.get(j, NEVER) <= by
        self.events.write(record.time, "delivery", record.publisher, ok=delivered == eligible, value=delivered,
                          count=eligible)

    # ---- samples ---------------------------------------------------------------------------------

    def sample(self, now: float, first: int, received: int, mesh_sizes: Iterable[Sequence[int]]) -> None:
        """`ps_recv` (first receptions, all copies received, over every node ever up) and `mesh` (mean mesh
        size over the live subscribers' topics, and how many of them have a topic below ``d_lo``) rows;
        ``mesh_sizes``: per live subscriber, the mesh size of each of its topics."""
        degrees = meshes = under = 0
        for sizes in mesh_sizes:
            degrees += sum(sizes)
            meshes += len(sizes)
            under += min(sizes) < self.d_lo
        self.events.write(now, "ps_recv", value=first, count=received)
        self.events.write(now, "mesh", value=round(degrees / meshes, 6) if meshes else None, count=under)
