"""The DHT workload and how its operations are judged (docs/results.md).

Two kinds of lookup: ``lookup`` rows are FIND_NODE convergence, a lookup that ends knowing the k closest
live peers to a key (what a put, a provide and a bucket refresh need); ``get``, ``find_peer`` and
``find_providers`` rows are the user-facing lookups, which end as soon as they have what the user asked
for: the newest valid record found (a get stops at its first valid one), the target peer's addresses, the
first provider. The spec's "DHT lookup" latency (``lookup_p99``) is judged on the user-facing ones.

Which node acts: each kind of operation is a Poisson process over all nodes at ``rate`` per node per minute,
thinned to the nodes that are up **and have bootstrapped** (their join lookup has finished). A node still
joining has no routing table to speak of; its operations would measure the join, which formation measures,
not the DHT. Each member of the network then sees exactly its own Poisson process.

Lookup precision: a lookup is judged against the true closest live peers **when it completes**: its answer
is used from then on, a peer that left while it ran rightly is not in it, and one that joined while it ran
could not be known. (The emulator learns of the completion over its node's pipe, milliseconds later.)
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from experiment.oracle import LiveSet
from p2pnode.eventlog import EventWriter
from p2pnode.identity import kad_key

KINDS = ("lookup", "put", "get", "find_peer", "provide", "find_providers")


class Operations:
    """One kind of operation: when the next one comes and which node it falls on."""

    def __init__(self, rate_per_minute: float, n: int, rng: random.Random):
        self.n = n
        self.rng = rng
        self.total_rate = rate_per_minute / 60.0 * n

    def gap(self) -> float:
        """Seconds until the next operation (of any node)."""
        return self.rng.expovariate(self.total_rate)

    def pick(self, nodes: Sequence[Any]) -> tuple[Any, int] | None:
        """The node the next operation falls on, and its index, if it acts: up (not None) and bootstrapped."""
        i = self.rng.randrange(self.n)
        node = nodes[i]
        return (node, i) if node is not None and node.bootstrapped else None


class DhtWorkload:
    """Draws each operation's key and value, and writes its `lookup` / `put` / `get` row when it completes."""

    def __init__(self, scenario: Any, rng: random.Random, oracle: LiveSet, events: EventWriter):
        self.rng = rng
        self.oracle = oracle
        self.events = events
        self.k = scenario.dht.k
        self.value_size = scenario.workload.value_size
        self.updates = scenario.workload.updates
        self.keys: list[bytes] = []  # keys whose put reached a replica, in the order first put
        self.latest: dict[bytes, tuple[int, int]] = {}  # key -> (newest version put, the node that put it)
        self.provided: list[bytes] = []  # keys of provides that reached a peer
        workload = scenario.workload
        n = scenario.nodes.count
        self.operations = {kind: Operations(getattr(workload, kind), n, rng)
                           for kind in KINDS if getattr(workload, kind) > 0}

    # ---- lookups ---------------------------------------------------------------------------------

    def lookup_key(self) -> bytes:
        return self.rng.randbytes(32)

    def lookup_done(self, now: float, i: int, origin: int, key: bytes, found: Iterable[int], latency: float,
                    hops: int, requests: int) -> None:
        """Node ``i`` (Kademlia ID ``origin``) finished a lookup for ``key`` and returned the peers ``found``:
        ok if the closest live peer is among them; the value is the share of the k closest it found."""
        truth = self.oracle.closest(kad_key(key), self.k, exclude=origin)
        found = set(found)
        ok = bool(truth) and truth[0] in found
        share = len(found.intersection(truth)) / len(truth) if truth else 1.0
        self.events.write(now, "lookup", i, latency, hops, ok, round(share, 6), requests)

    # ---- puts and gets ---------------------------------------------------------------------------

    def put_item(self) -> tuple[bytes, bytes]:
        key = b"/p2pnode/" + self.rng.randbytes(16).hex().encode()
        return key, self.rng.randbytes(self.value_size)

    def update_item(self) -> tuple[bytes, int, bytes] | None:
        """For the share ``updates`` of puts: (key, publisher, new value) of a random earlier put, which its
        publisher writes again with a higher version; None: a put of a new key."""
        if not self.keys or self.rng.random() >= self.updates:
            return None
        key = self.keys[self.rng.randrange(len(self.keys))]
        return key, self.latest[key][1], self.rng.randbytes(self.value_size)

    def put_done(self, now: float, i: int, key: bytes, version: int, replicas: int, latency: float,
                 requests: int) -> None:
        """A put is ok if it reached a replica; then gets may ask for it (for the newest version put)."""
        if replicas > 0:
            if key not in self.latest:
                self.keys.append(key)
            if version >= self.latest.get(key, (0, 0))[0]:
                self.latest[key] = (version, i)
        self.events.write(now, "put", i, latency, None, replicas > 0, replicas, requests)

    def get_item(self) -> tuple[bytes, int] | None:
        """(key, newest version put) of a random earlier put, or None before any put reached a replica."""
        if not self.keys:
            return None
        key = self.keys[self.rng.randrange(len(self.keys))]
        return key, self.latest[key][0]

    def get_done(self, now: float, i: int, version: int, found: int | None, latency: float, hops: int,
                 requests: int) -> None:
        """A get is ok if it returned the version put, or a newer one (``found`` is None: no record)."""
        ok = found is not None and found >= version
        self.events.write(now, "get", i, latency, hops, ok, None, requests)

    # ---- peers and providers ---------------------------------------------------------------------

    def find_peer_target(self, nodes: Sequence[Any], i: int) -> int | None:
        """A random other node that is up (its index), for node ``i`` to look up; None if there is none."""
        rng = self.rng
        for _ in range(8):  # most nodes are up: a few draws find one
            j = rng.randrange(len(nodes))
            if j != i and nodes[j] is not None:
                return j
        up = [j for j, node in enumerate(nodes) if j != i and node is not None]
        return up[rng.randrange(len(up))] if up else None

    def find_peer_done(self, now: float, i: int, found: bool, latency: float, hops: int, requests: int) -> None:
        """A find_peer is ok if it returned the target's addresses."""
        self.events.write(now, "find_peer", i, latency, hops, found, None, requests)

    def provide_key(self) -> bytes:
        return b"/p2pnode/providers/" + self.rng.randbytes(16).hex().encode()

    def provide_done(self, now: float, i: int, key: bytes, peers: int, latency: float, requests: int) -> None:
        """A provide is ok if it told a peer (provider announcements are one-way); then it may be looked up."""
        if peers > 0:
            self.provided.append(key)
        self.events.write(now, "provide", i, latency, None, peers > 0, peers, requests)

    def find_providers_key(self) -> bytes | None:
        """The key of a random earlier provide, or None before any."""
        return self.provided[self.rng.randrange(len(self.provided))] if self.provided else None

    def find_providers_done(self, now: float, i: int, providers: int, latency: float, hops: int,
                            requests: int) -> None:
        """A find_providers is ok if it returned a provider (it stops at the first)."""
        self.events.write(now, "find_providers", i, latency, hops, providers > 0, providers, requests)
