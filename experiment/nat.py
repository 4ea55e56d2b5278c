"""Who sits behind which NAT, and which public nodes relay: drawn once from the scenario's seed, so the
simulator (``sim/nat.py``) and the emulator (``topologies/nat.py``) place the same NATs (docs/nat.md).

- bootstrap nodes are public (they are the infrastructure others join through);
- the other nodes get a home NAT type in proportion to ``nodes.nat``, and ``nat.cgnat.share`` of them sit
  behind a carrier-grade NAT as well, ``nat.cgnat.subscribers`` to each;
- ``nat.port_mapping`` of the nodes with a home NAT have a router whose UPnP IGD / NAT-PMP maps their port;
- ``nat.relays.share`` of the public nodes (bootstrap nodes among them) serve Circuit Relay v2, at least one
  when any node is behind a NAT.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from experiment.plan import spread


@dataclass(frozen=True, slots=True)
class NodeNat:
    home: str  # the home NAT's type ("none": no home NAT)
    cgnat: int | None  # index of the carrier-grade NAT in front, if any
    port_mapped: bool  # the home NAT maps the node's port on request (UPnP IGD / NAT-PMP)
    relay: bool  # a public node serving as a relay

    @property
    def public(self) -> bool:
        return self.home == "none" and self.cgnat is None

    @property
    def label(self) -> str:
        """The node's NAT as the report names it: its home type, "cgnat+<type>" behind a carrier NAT."""
        if self.cgnat is None:
            return self.home
        return "cgnat" if self.home == "none" else f"cgnat+{self.home}"


def place(scenario: Any) -> list[NodeNat] | None:
    """Each node's NATs, or None when the scenario has no NAT at all."""
    nat = scenario.nat
    if not nat.active(scenario.nodes):
        return None
    n, boot = scenario.nodes.count, scenario.nodes.bootstrap
    rng = random.Random(f"nat-{scenario.seed}")  # its own stream: runs without NATs draw what they drew
    homes = ["none"] * boot + spread(scenario.nodes.nat, n - boot, rng)
    behind = [False] * boot + [x == "yes" for x in spread({"yes": nat.cgnat.share, "no": 1 - nat.cgnat.share},
                                                            n - boot, rng)]
    carriers: list[int | None] = []
    served = 0
    for flag in behind:
        carriers.append(served // nat.cgnat.subscribers if flag else None)
        served += flag
    mapped = [home != "none" and rng.random() < nat.port_mapping for home in homes]
    public = [i for i in range(n) if homes[i] == "none" and carriers[i] is None]
    count = round(nat.relays.share * len(public))
    if count == 0 and public and len(public) < n:
        count = 1
    relays = set(rng.sample(public, min(count, len(public))))
    return [NodeNat(homes[i], carriers[i], mapped[i], i in relays) for i in range(n)]
