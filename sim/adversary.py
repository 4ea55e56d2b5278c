"""The adversary of attack scenarios: what its nodes do differently (kept out of the protocol package, where
only honest code lives).

A malicious node is a real node whose handlers are wrapped: it joins, keeps a routing table and answers PING
like any other (so it stays in honest tables), and then, per the scenario's ``adversary.behaviours``:

- ``drop``: loses every other DHT request sent to it (the requester times out);
- ``collude``: answers FIND_NODE, GET_VALUE and GET_PROVIDERS with the live malicious nodes closest to the key
  instead of its own table's closest (S/Kademlia's worst case: an adversary that knows all its nodes and only
  ever refers to them, Baumgart & Mies 2007, section 5);
- ``stale``: answers GET_VALUE with the first version of the record it was sent, whatever it stores since;
- ``forge``: answers GET_VALUE with a record it made up: a random value under the publisher it knows of, a
  newer version, a signature that is not the publisher's.

A write flood (``adversary.writes``): from the end of the warm-up every malicious node sends that many
PUT_VALUEs a second of fresh records it signs itself, each to a random peer of its routing table; with proof of
work on (``security.pow_difficulty``) it mints each record's stamp and writes no faster than minting allows.

Pub-sub attackers (``pubsub.attackers``, ``pubsub.attack``) are router classes, as in the GossipSub v1.1
evaluation (Vyzovitis et al. 2020): ``DroppingGossipSub`` (drop: they forward nothing), ``FloodingGossipSub``
(a Sybil flood: they drop and send invalid messages), ``FlashGossipSub`` (covert flash: honest until a moment,
then all drop at once) and, for an eclipse, droppers whose discovery points at one publisher, whose own
discovery answers with attackers only (``gossip_router``, ``eclipse_discovery``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from experiment.oracle import LiveSet
from p2pnode.host import Host
from p2pnode.identity import kad_key
from p2pnode.kad.messages import (
    AddProvider,
    DHTRecord,
    FindNode,
    GetProviders,
    GetValue,
    GetValueResponse,
    PeerInfo,
    PutValue,
)
from p2pnode.kad.records import make_record, stamped
from p2pnode.pubsub.messages import RPC, IWant, Message
from p2pnode.pubsub.router import GossipSub
from p2pnode.wire import KAD

DROPPED = (FindNode, GetValue, PutValue, GetProviders, AddProvider)  # every DHT request but PING
REFERRING = (FindNode, GetValue, GetProviders)  # the requests whose answers carry closer peers


class DroppingGossipSub(GossipSub):
    """Subscribes, joins meshes, gossips and answers GRAFT/PRUNE like an honest router, but forwards no
    message: it relays nothing it receives and answers no IWANT (its IHAVEs become broken promises)."""

    def forward(self, message: Message, src: PeerInfo) -> None:
        return

    def _on_iwant(self, src: PeerInfo, iwants: tuple[IWant, ...]) -> tuple[Message, ...]:
        return ()


class FlashGossipSub(GossipSub):
    """Forwards and answers IWANT honestly until ``turn_at`` (building up its score), then drops like
    ``DroppingGossipSub``: every attacker at the same moment."""

    def __init__(self, *args: Any, turn_at: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.turn_at = turn_at

    def forward(self, message: Message, src: PeerInfo) -> None:
        if self.runtime.now() < self.turn_at:
            super().forward(message, src)

    def _on_iwant(self, src: PeerInfo, iwants: tuple[IWant, ...]) -> tuple[Message, ...]:
        return super()._on_iwant(src, iwants) if self.runtime.now() < self.turn_at else ()


class FloodingGossipSub(DroppingGossipSub):
    """A Sybil of a flood: drops what it should forward and, every heartbeat, sends each peer of its topics
    ``spam`` x heartbeat messages a second that no signature covers (invalid: P4 for a scoring receiver)."""

    def __init__(self, *args: Any, spam: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spam = spam
        self._owed = 0.0

    def _heartbeat(self) -> None:
        super()._heartbeat()
        if not self.running:
            return
        self._owed += self.spam * self.config.heartbeat_interval
        count, self._owed = int(self._owed), self._owed - int(self._owed)
        if count == 0:
            return
        rng = self.rng
        for topic in self.subscriptions:
            junk = tuple(Message(self.me, rng.randbytes(64), rng.randbytes(8), topic, rng.randbytes(64))
                         for _ in range(count))
            rpc = RPC(publish=junk)
            for peer in self.topics.get(topic, ()):
                self.runtime.send(peer, rpc)


def gossip_router(attack: Any) -> Callable[..., GossipSub]:
    """The router class (or its partial) of a pub-sub attacker for the scenario's ``pubsub.attack``."""
    if attack.kind == "flash":
        return partial(FlashGossipSub, turn_at=attack.at)
    if attack.kind == "flood":
        return partial(FloodingGossipSub, spam=attack.spam)
    return DroppingGossipSub  # drop, and the eclipse's attackers


def eclipse_discovery(victim: PeerInfo, attackers: list[PeerInfo], rng: random.Random, count: int
                      ) -> tuple[Callable[[], list[PeerInfo]], Callable[[], list[PeerInfo]]]:
    """(the attackers' discovery, the victim's): attackers look for the victim alone; the victim's (poisoned)
    discovery answers with ``count`` random attackers."""
    return (lambda: [victim]), (lambda: rng.sample(attackers, min(count, len(attackers))))


class Adversary:
    """The malicious nodes of one run: who they are, which of them are up, and their wrapped handlers."""

    def __init__(self, scenario: Any, malicious: list[bool], infos: list[PeerInfo], rng: random.Random):
        section = scenario.adversary
        self.malicious = malicious
        self.behaviours = frozenset(section.behaviours)
        self.eclipse = section.eclipse
        self.k = scenario.dht.k
        self.rng = rng
        self.by_kad_id = {infos[i].peer_id.kad_id: infos[i] for i, bad in enumerate(malicious) if bad}
        self.live = LiveSet()  # the malicious nodes that are up: whom a colluder refers to

    @property
    def count(self) -> int:
        return len(self.by_kad_id)

    def drops(self, src: int, dst: int, message: Any) -> bool:
        """The network's loss hook (``SimNetwork.drop``): a dropping node's DHT requests are lost."""
        return self.malicious[dst] and type(message) in DROPPED

    def up(self, i: int, node: Host) -> None:
        if not self.malicious[i]:
            return
        self.live.add(node.peer_id.kad_id)
        if self.behaviours != {"drop"}:
            node.serve(KAD.name, _Handler(self, node).handle)

    def down(self, i: int, node: Host) -> None:
        if self.malicious[i]:
            self.live.remove(node.peer_id.kad_id)

    def flood(self, scenario: Any, nodes: list[Host | None], call_later: Callable[..., Any]) -> None:
        """Schedule the write flood of every malicious node (a no-op at ``writes`` 0)."""
        writes = scenario.adversary.writes
        if writes <= 0:
            return
        gap, size, ttl = 1.0 / writes, scenario.workload.value_size, scenario.dht.record_ttl
        end = scenario.warmup + scenario.duration
        timeout = scenario.dht.request_timeout

        def write(i: int) -> None:
            node = nodes[i]
            wait = gap
            if node is not None and node.dht.table.peers:
                peers = node.dht.table.peers
                peer = peers[self.rng.choice(list(peers))]
                key = b"/p2pnode/flood-" + self.rng.randbytes(12).hex().encode()
                record = make_record(node.keypair, key, self.rng.randbytes(size), ttl, 1)
                # with proof of work on, each junk record needs its stamp like any other: the flooder's next
                # write waits until the minting would have finished
                record, hashes = stamped(record, node.dht.config.pow_difficulty)
                wait = max(gap, hashes * node.dht.config.pow_hash_seconds)
                node.runtime.request(peer, PutValue(record), timeout, _ignore, _ignore)
            if node is None or node.runtime.now() + wait < end:
                call_later(wait, write, i)

        for i, bad in enumerate(self.malicious):
            if bad:
                call_later(scenario.warmup + self.rng.uniform(0, gap), write, i)

    def colluders(self, key: bytes, exclude: int) -> tuple[PeerInfo, ...]:
        """The k live malicious nodes closest to ``key`` (the asking node itself left out)."""
        return tuple(self.by_kad_id[kad_id] for kad_id in self.live.closest(kad_key(key), self.k, exclude))


def _ignore(_: Any) -> None:
    return


class _Handler:
    """One malicious node's DHT handler: the real node's, with its answers bent."""

    __slots__ = ("adversary", "node", "honest", "first_seen")

    def __init__(self, adversary: Adversary, node: Host):
        self.adversary = adversary
        self.node = node
        self.honest = node.dht.handle_request
        self.first_seen: dict[bytes, DHTRecord] = {}  # key -> the first record it was sent under it

    def handle(self, sender: PeerInfo, message: Any) -> Any:
        response = self.honest(sender, message)  # it stores, learns of the sender and ages its table as usual
        kind = type(message)
        adversary = self.adversary
        behaviours = adversary.behaviours
        if kind is PutValue:
            self.first_seen.setdefault(message.record.key, message.record)
            return response
        if response is None or kind not in REFERRING:
            return response
        if "collude" in behaviours:
            response = replace(response, closer_peers=adversary.colluders(message.key, self.node.peer_id.kad_id))
        if kind is GetValue:
            response = self._bent_record(message.key, response)
        return response

    def _bent_record(self, key: bytes, response: GetValueResponse) -> GetValueResponse:
        behaviours = self.adversary.behaviours
        stale = self.first_seen.get(key)
        if "stale" in behaviours and stale is not None:
            return replace(response, record=stale)
        if "forge" in behaviours:
            known = response.record or stale
            rng = self.adversary.rng
            record = DHTRecord(key, rng.randbytes(len(known.value) if known else 32),
                               known.publisher if known else self.node.peer_id, rng.randbytes(64),
                               known.ttl if known else 3600.0, (known.version if known else 0) + 1000)
            return replace(response, record=record)
        return response
