"""The scenario's pub-sub workload on real nodes, measured as the simulator measures it (docs/results.md).

Topics, subscribers and publishers are drawn as in ``sim/simulation.py``; messages flow from
``nodes.join_over`` on, and those published from the end of the warm-up are measured. A node reports each
first delivery over its control pipe with its own clock (all nodes share the host's clock), so latency is
publish-to-reception, not a trip through the pipes. Per sample interval the nodes' status gives the
``mesh`` and ``ps_recv`` rows; the byte counters (``ps_data``, ``ps_control``) are simulation-only.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

from experiment.measure import Published

if TYPE_CHECKING:
    from emulator.driver import Emulation, NodeProcess


class PubSubWorkload:
    def __init__(self, emulation: Emulation, rng: random.Random):
        self.emu = emulation
        self.spec = spec = emulation.scenario.pubsub
        self.rng = rng
        n = emulation.n
        self.topic_names = spec.topic_names()
        self.subscribed: list[list[str]] = [[] for _ in range(n)]
        self.subscribers: dict[str, list[int]] = {}
        for topic in self.topic_names:
            members = sorted(rng.sample(range(n), max(1, round(spec.subscribers * n))))
            for i in members:
                self.subscribed[i].append(topic)
            self.subscribers[topic] = members
        self.publishers = sorted(rng.sample(range(n), max(1, round(spec.publishers * n))))
        measure = emulation.scenario.measure
        self.settle, self.deadline = measure.delivery_settle, measure.delivery_deadline
        self.up_since = [float("inf")] * n
        self.in_flight: dict[bytes, Published] = {}  # by message ID
        self.answered: set[bytes] = set()  # messages whose publish was answered (measured or not)
        self.early: dict[bytes, list[tuple[int, float]]] = {}  # receptions that beat the publish answer
        self.count = 0
        self.retired = [0, 0]  # (first receptions, copies) counted by nodes that have since stopped
        self.last_counts: dict[int, tuple[int, int]] = {}
        self.wall_t0 = time.time()

    def node_config(self) -> str:
        spec = self.spec
        return (f"[pubsub]\nenabled = true\npeers = {spec.peers}\nmax_peers = {spec.max_peers}\n"
                f"scoring = {'true' if spec.scoring else 'false'}\nexpected_rate = {spec.rate / spec.topics}\n")

    def clock_started(self) -> None:
        self.wall_t0 = time.time() - self.emu.now()

    def _scenario_time(self, wall: float) -> float:
        return wall - self.wall_t0

    # ---- nodes coming and going ------------------------------------------------------------------

    async def joined(self, i: int, node: NodeProcess) -> None:
        node.on_event = lambda event, i=i: self._event(i, event)
        for topic in self.subscribed[i]:
            await node.call("subscribe", topic=topic)
        self.up_since[i] = self.emu.now()

    def left(self, i: int) -> None:
        self.up_since[i] = float("inf")
        first, copies = self.last_counts.pop(i, (0, 0))
        self.retired[0] += first
        self.retired[1] += copies

    # ---- publishing and delivery ---------------------------------------------------------------

    def start(self) -> None:
        spec, rng = self.spec, self.rng

        def gap() -> float:
            return 1.0 / spec.rate if spec.arrivals == "periodic" else rng.expovariate(spec.rate)

        async def tick() -> None:
            while self.emu.now() < self.emu.end:
                self.emu.later(0, self._publish)
                await asyncio.sleep(gap())

        self.emu.later(self.emu.scenario.nodes.join_over + gap(), tick)

    async def _publish(self) -> None:
        """From a random live publisher (the others in random order when it is down), on a random topic."""
        rng, nodes = self.rng, self.emu.nodes
        topic = self.topic_names[rng.randrange(len(self.topic_names))]
        start = rng.randrange(len(self.publishers))
        for k in range(len(self.publishers)):
            i = self.publishers[(start + k) % len(self.publishers)]
            node = nodes[i]
            if node is not None:
                break
        else:
            return
        measured = self.emu.now() >= self.emu.scenario.warmup
        answer = await node.call("publish", topic=topic, size=self.spec.message_size)
        if not answer.get("ok"):
            return
        mid = bytes.fromhex(answer["id_hex"])
        self.answered.add(mid)
        early = self.early.pop(mid, ())
        if not measured:
            return
        record = Published(mid, self.count, self._scenario_time(answer["time"]), topic, i)
        self.count += 1
        self.in_flight[mid] = record
        self.emu.events.write(record.time, "publish", i, value=record.number, count=self.spec.message_size)
        for j, wall in early:
            self._delivered(j, record, wall)
        # judged once the deadline has passed, with a second's grace for receptions still in the pipes
        self.emu.later(record.time + self.deadline + 1.0 - self.emu.now(), lambda: self._judge(record))

    def _event(self, i: int, event: dict[str, Any]) -> None:
        if event.get("event") != "message":
            return
        try:
            mid, wall = bytes.fromhex(event["id_hex"]), float(event["time"])
        except (KeyError, TypeError, ValueError):
            return
        record = self.in_flight.get(mid)
        if record is not None:
            self._delivered(i, record, wall)
        elif mid not in self.answered:
            self.early.setdefault(mid, []).append((i, wall))

    def _delivered(self, i: int, record: Published, wall: float) -> None:
        if i == record.publisher or i in record.delivered:
            return
        now = self._scenario_time(wall)
        record.delivered[i] = now
        eligible = self.up_since[i] <= record.time - self.settle
        self.emu.events.write(now, "deliver", i, now - record.time, ok=eligible, value=record.number)

    async def _judge(self, record: Published) -> None:
        """The deadline has passed: count the subscribers that were up throughout, and which got it in time."""
        del self.in_flight[record.mid]
        since, by = record.time - self.settle, record.time + self.deadline
        eligible = delivered = 0
        for j in self.subscribers[record.topic]:
            if j == record.publisher or self.emu.nodes[j] is None or self.up_since[j] > since:
                continue
            eligible += 1
            delivered += record.delivered.get(j, float("inf")) <= by
        self.emu.events.write(record.time, "delivery", record.publisher, ok=delivered == eligible, value=delivered,
                              count=eligible)

    # ---- sampling --------------------------------------------------------------------------------

    def sample(self, now: float, statuses: list[tuple[int, dict]]) -> None:
        """``ps_recv`` and ``mesh`` rows from the live nodes' status answers."""
        d_lo = self.spec.router.d_lo
        degrees = meshes = under = 0
        for i, status in statuses:
            pubsub = status.get("pubsub") or {}
            self.last_counts[i] = (pubsub.get("first_received", 0), pubsub.get("received", 0))
            sizes = [pubsub.get("mesh", {}).get(t, 0) for t in self.subscribed[i]]
            if sizes:
                degrees += sum(sizes)
                meshes += len(sizes)
                under += min(sizes) < d_lo
        first = self.retired[0] + sum(c[0] for c in self.last_counts.values())
        copies = self.retired[1] + sum(c[1] for c in self.last_counts.values())
        self.emu.events.write(now, "ps_recv", value=first, count=copies)
        self.emu.events.write(now, "mesh", value=round(degrees / meshes, 6) if meshes else None, count=under)
