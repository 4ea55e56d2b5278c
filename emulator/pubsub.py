"""The scenario's pub-sub workload on real nodes, measured by the simulator's rules (``experiment.delivery``).

What is emulator's own: each node's ``[pubsub]`` configuration, subscribing over the control pipe, and time.
A node reports each first delivery over its pipe with its own clock (all nodes share the host's clock), so
latency is publish-to-reception, not a trip through the pipes; a reception that beats the publish's answer
is kept until the message is known. Messages are judged a second after their deadline, for receptions still
in the pipes. Per sample interval the nodes' status gives the ``mesh`` and ``ps_recv`` rows; the byte
counters (``ps_data``, ``ps_control``) are simulation-only.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from experiment.delivery import Delivery

if TYPE_CHECKING:
    from emulator.driver import Emulation, NodeProcess

JUDGE_GRACE = 1.0  # seconds after a message's deadline before it is judged


class PubSubWorkload:
    def __init__(self, emulation: Emulation):
        self.emu = emulation
        self.spec = emulation.scenario.pubsub
        self.rng = emulation.rng_work
        self.subscribed = emulation.plan.subscribed
        self.delivery = Delivery(emulation.scenario, emulation.plan, emulation.events)
        self.answered: set[bytes] = set()  # messages whose publish was answered (measured or not)
        self.early: dict[bytes, list[tuple[int, float]]] = {}  # receptions that beat the publish answer
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
        self.delivery.node_up(i, self.emu.now())

    def left(self, i: int) -> None:
        self.delivery.node_down(i, self.emu.now())
        first, copies = self.last_counts.pop(i, (0, 0))
        self.retired[0] += first
        self.retired[1] += copies

    # ---- publishing and delivery ---------------------------------------------------------------

    def start(self) -> None:
        async def tick() -> None:
            while self.emu.now() < self.emu.end:
                self.emu.later(0, self._publish)
                await asyncio.sleep(self.delivery.gap(self.rng))

        self.emu.later(self.delivery.first_publish(self.rng), tick)

    async def _publish(self) -> None:
        chosen = self.delivery.choose(self.rng, self.emu.nodes)
        if chosen is None:
            return
        node, i, topic = chosen
        answer = await node.call("publish", topic=topic, size=self.spec.message_size)
        if not answer.get("ok"):
            return
        mid = bytes.fromhex(answer["id_hex"])
        self.answered.add(mid)
        early = self.early.pop(mid, ())
        record = self.delivery.published(mid, self._scenario_time(answer["time"]), topic, i,
                                         self.spec.message_size)
        if record is None:
            return
        for j, wall in early:
            self.delivery.delivered(j, mid, self._scenario_time(wall))
        self.emu.later(record.time + self.delivery.deadline + JUDGE_GRACE - self.emu.now(),
                       lambda: self.delivery.judge(record))

    def _event(self, i: int, event: dict[str, Any]) -> None:
        if event.get("event") != "message":
            return
        try:
            mid, wall = bytes.fromhex(event["id_hex"]), float(event["time"])
        except (KeyError, TypeError, ValueError):
            return
        if mid in self.delivery.in_flight:
            self.delivery.delivered(i, mid, self._scenario_time(wall))
        elif mid not in self.answered:
            self.early.setdefault(mid, []).append((i, wall))

    # ---- sampling --------------------------------------------------------------------------------

    def sample(self, now: float, statuses: dict[int, dict]) -> None:
        """``ps_recv`` and ``mesh`` rows from the live nodes' status answers."""
        meshes = []
        for i, status in statuses.items():
            pubsub = status.get("pubsub") or {}
            self.last_counts[i] = (pubsub.get("first_received", 0), pubsub.get("received", 0))
            if self.subscribed[i]:
                meshes.append([pubsub.get("mesh", {}).get(t, 0) for t in self.subscribed[i]])
        first = self.retired[0] + sum(c[0] for c in self.last_counts.values())
        copies = self.retired[1] + sum(c[1] for c in self.last_counts.values())
        self.delivery.sample(now, first, copies, meshes)
