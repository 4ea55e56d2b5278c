"""Who is behind which access network, and where the mechanisms' elements are: the same in both runtimes.

``assign(scenario)``: each node's access network from the scenario's ``nodes.transition`` shares (bootstrap
nodes are native: they are the public infrastructure others join through), and whether its operator element
drops selection probes (the ``transition_blackhole`` share of the tunnelled nodes whose element an operator
runs; public 6to4 relays and Teredo servers are never blackholed). Its own random stream (a string seed is
hashed deterministically), so runs without transition mechanisms draw exactly what they drew before.

``detour(mechanism, region, half_rtt)``: the one-way delay a mechanism adds to each of its node's messages.
Operator elements (AFTR, BR, PLAT, ISATAP router) sit on the access path and add their processing time;
public ones (6to4 relays, Teredo servers and relays) sit in ``RELAY_REGION`` and add the one-way trip there.
The simulator adds it to the node's access latency; the emulator puts the public relay that far away.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from experiment.plan import spread
from p2pnode.transition.profiles import MECHANISMS

PROCESSING = 0.0003  # seconds an in-path element adds per traversal (a user-space plane's is ~0.35 ms)
RELAY_REGION = 0  # index of the region public relays and Teredo servers are in (the first of the table)
PUBLIC_INFRA = ("6to4", "teredo")


@dataclass(frozen=True, slots=True)
class Assignment:
    networks: list[str]  # per node, what its access network offers ("native": IPv6 alone)
    blackholed: list[bool]  # its operator element drops selection probes


def operated(network: str) -> bool:
    """Whether an operator runs the network's element (so that it can drop probes)."""
    return network not in PUBLIC_INFRA and MECHANISMS[network].infrastructure != ""


def assign(scenario: Any) -> Assignment | None:
    """The access networks of a run (None: every node native, the default)."""
    nodes = scenario.nodes
    if set(nodes.transition) == {"native"}:
        return None
    rng = random.Random(f"access-{scenario.seed}")
    boot, n = nodes.bootstrap, nodes.count
    networks = ["native"] * boot + spread(nodes.transition, n - boot, rng)
    blackholed = [i >= boot and operated(network) and rng.random() < nodes.transition_blackhole
                  for i, network in enumerate(networks)]
    return Assignment(networks, blackholed)


def detour(mechanism: str, region: int, half_rtt: list[list[float]]) -> float:
    """One-way seconds a mechanism adds to each of its node's messages (``half_rtt``: the latency model's
    region-to-region half round trips, seconds)."""
    if mechanism == "native":
        return 0.0
    if mechanism in PUBLIC_INFRA:
        return half_rtt[region][RELAY_REGION] + PROCESSING
    return PROCESSING if MECHANISMS[mechanism].infrastructure else 0.0
