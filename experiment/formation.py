"""The formation check (docs/results.md, "formation"): when has the network formed?

Every sample interval the formation sample's live nodes are checked: the share whose routing tables are
complete (every bucket holds min(k, live peers in its range) live peers) is one `formation` row. Once the
whole network exists (``nodes.join_over``) and every checked node has bootstrapped, a verification round
starts, if formation is judged (its lookups add traffic of their own): lookups for one random key from all of
them at once must all return exactly the true k closest live peers, judged when the last one returns; the
row of that round has ``ok``. Formation is reached at the first round where all agree.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from experiment.oracle import LiveSet
from experiment.plan import Plan
from p2pnode.eventlog import EventWriter
from p2pnode.identity import kad_key

Table = tuple[int, bool, Mapping[int, Iterable[int]]]  # (Kademlia ID, bootstrapped, peer IDs by bucket index)


class Formation:
    def __init__(self, scenario: Any, plan: Plan, oracle: LiveSet, events: EventWriter):
        self.nodes = plan.formation_nodes  # the nodes checked, when they are up
        self.k = scenario.dht.k
        self.join_over = scenario.nodes.join_over
        self.judged = "formation_time" in (scenario.criteria or {})
        self.oracle = oracle
        self.events = events
        self.formed = False
        self.verifying = False
        self.complete = False  # whether every table checked at the last sample was complete

    def sample(self, now: float, tables: Iterable[Table]) -> bool:
        """Write the completeness row of the checked nodes' ``tables``; whether a verification round is due."""
        checked = complete = bootstrapped = 0
        for kad_id, is_bootstrapped, buckets in tables:
            checked += 1
            bootstrapped += is_bootstrapped
            complete += self.oracle.table_complete(kad_id, buckets, self.k)
        self.complete = checked > 0 and complete == checked
        if checked == 0:
            return False
        self.events.write(now, "formation", value=round(complete / checked, 6), count=checked)
        joined = now >= self.join_over  # the whole network exists, not a first few nodes
        return self.judged and joined and bootstrapped == checked and not self.formed and not self.verifying

    def start_round(self, rng: random.Random) -> bytes:
        """The key every checked live node looks up in this round."""
        self.verifying = True
        return rng.randbytes(32)

    def round_done(self, now: float, key: bytes, results: list[tuple[int, set[int] | None]]) -> None:
        """Every lookup of the round has returned: (origin's Kademlia ID, peers found, None if it failed)."""
        self.verifying = False
        target = kad_key(key)
        agreeing = sum(found == set(self.oracle.closest(target, self.k, exclude=origin))
                       for origin, found in results if found is not None)
        self.formed = agreeing == len(results)
        self.events.write(now, "formation", ok=self.formed, value=round(agreeing / len(results), 6),
                          count=len(results))
