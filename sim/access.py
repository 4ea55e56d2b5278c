"""Access networks and IPv6 transition mechanisms in the simulator.

Each node gets an access network from the scenario's ``nodes.transition`` shares (bootstrap nodes are
native: they are the public infrastructure others join through). What that network offers becomes
the node's ``selection.Observations``, and the node's own ``selection.Selector`` (the one real nodes
run) picks its mechanism: probes of what the network offers succeed after the round trip to the
mechanism's infrastructure, except for the ``transition_blackhole`` share of nodes, whose operator
element drops probes (they time out and the node falls down the cascade: to Teredo on an IPv4
network, to IPv6 alone on an IPv6 one). What each mechanism does to traffic comes from the one table,
``p2pnode.transition.profiles``:

- delay: operator elements (AFTR, BR, PLAT, ISATAP router) sit on the access path and add their
  processing time; public ones (6to4 relays, Teredo servers and relays) sit in ``RELAY_REGION`` and
  add the one-way trip there, to every message of the node;
- inbound: a node behind DS-Lite or 464XLAT cannot be dialled (its dial times out, as a SYN into a
  carrier-grade NAT does); MAP nodes listen inside their port set and can;
- overhead and MTU: bytes per packet and packets per message, reported per mechanism.

Not modelled: the infrastructure's capacity (a queue at the AFTR or relay), and NAT types other than
none, which the scenario schema does not accept yet.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from experiment.access import PUBLIC_INFRA, RELAY_REGION, detour
from p2pnode.transition.addresses import SixRdDomain
from p2pnode.transition.mapping import MapRule
from p2pnode.transition.options import S46Config
from p2pnode.transition.profiles import MECHANISMS
from p2pnode.transition.selection import DEFAULT_ORDER, MechanismSelected, Observations, ProbeStarted, Selector

PROBE_INTERVAL = 300.0  # [tunneling] probe_interval's default

_V6 = (IPv6Address("2001:db8:1::10"),)
_PRIVATE = IPv4Address("10.1.2.3")
_PUBLIC = IPv4Address("192.0.2.10")
_TEREDO = (IPv4Address("192.0.2.1"),)
_RULE = MapRule(IPv6Network("2001:db8::/40"), IPv4Network("192.0.2.0/24"), ea_len=16)
_PD = IPv6Network("2001:db8:12:3400::/56")

# what an access network of each kind shows a host (an IPv4 network's host also has a Teredo server
# configured, its own fallback)
OFFERED: dict[str, Observations] = {
    "native": Observations(ipv6_global=_V6, ipv4=_PRIVATE),
    "dslite": Observations(ipv6_global=_V6, aftr_name="aftr.example.net"),
    "map-e": Observations(ipv6_global=_V6, delegated_prefix=_PD, map_e=S46Config(
        translation=False, rules=(_RULE,), border_relays=(IPv6Address("2001:db8:ffff::1"),))),
    "map-t": Observations(ipv6_global=_V6, delegated_prefix=_PD, map_t=S46Config(
        translation=True, rules=(_RULE,), dmr=IPv6Network("2001:db8:ffff::/64"))),
    "464xlat": Observations(ipv6_global=_V6, pref64=IPv6Network("64:ff9b::/96")),
    "6rd": Observations(ipv4=_PRIVATE, teredo_servers=_TEREDO,
                        dhcpv4_6rd=SixRdDomain(IPv6Network("2001:db8::/32"), 8, (IPv4Address("10.0.0.1"),))),
    "isatap": Observations(ipv4=_PRIVATE, teredo_servers=_TEREDO, isatap_prl=(IPv4Address("10.0.0.1"),)),
    "6to4": Observations(ipv4=_PUBLIC, teredo_servers=_TEREDO),
    "6over4": Observations(ipv4=_PRIVATE, ipv4_multicast=True),
    "teredo": Observations(ipv4=_PRIVATE, nat_type="port-restricted", teredo_servers=_TEREDO),
}


@dataclass(slots=True)
class NodeAccess:
    network: str  # what the access network offers
    mechanism: str  # what the node's selection chose ("native": IPv6 alone when nothing else worked)
    fallbacks: int  # candidates tried before the chosen one
    selection_time: float
    blackholed: bool


def select(network: str, probe_rtt: float, blackholed: bool) -> tuple[str, int, float]:
    """Run a node's real selector against a modelled network; (chosen, candidates tried before it,
    seconds it took)."""
    selector = Selector(("native",), cascade=True, probe_interval=PROBE_INTERVAL)
    now = 0.0
    selector.observe(OFFERED[network], now)
    pending: dict[str, float] = {}  # probe -> when its answer arrives
    while selector.active is None:
        for name in selector.probes:
            if not (blackholed and name == network):
                pending[name] = now + probe_rtt
        selector.probes.clear()
        timer = selector.next_timer()
        answers = [t for t in pending.values()]
        now = min([t for t in (timer, *answers) if t is not None])
        for name, at in list(pending.items()):
            if at <= now:
                del pending[name]
                selector.probe_result(name, True, now)
        if selector.active is None:
            selector.handle_timer(now)
    chosen = next(e for e in reversed(selector.events) if isinstance(e, MechanismSelected)).name
    tried = [e.name for e in selector.events if isinstance(e, ProbeStarted)]
    # how far down the cascade it went: the candidates tried before the one chosen (blackholed ones
    # may not have timed out yet when a later one answered: Happy Eyeballs)
    return chosen, tried.index(chosen) if chosen in tried else len(tried), now


class AccessNetworks:
    def __init__(self, networks: Sequence[str], blackholed: Sequence[bool], node_regions: list[int],
                 half_rtt: list[list[float]]):
        """``networks``, ``blackholed``: each node's access network and whether its element drops probes
        (``experiment.access.assign``, the plan's)."""
        self.nodes: list[NodeAccess] = []
        for i, (network, dropped) in enumerate(zip(networks, blackholed, strict=True)):
            probe_rtt = 2 * detour(network, node_regions[i], half_rtt)
            chosen, failed, took = select(network, probe_rtt, dropped)
            self.nodes.append(NodeAccess(network, chosen, failed, took, dropped))
        self.detour = [detour(a.mechanism, node_regions[i], half_rtt) for i, a in enumerate(self.nodes)]
        self.unreachable = [MECHANISMS[a.mechanism].inbound == "no" for a in self.nodes]

    def rtt_inflation(self, base_rtt, pairs: int = 4000) -> dict[str, tuple[float, float]]:
        """Per mechanism, the mean round trip of its nodes to random peers with the mechanism's detour
        at their end and without it (seconds; the peer's own detour left out, so the difference is the
        mechanism's), over ``pairs`` sampled pairs (a fixed stream: deterministic)."""
        rng = random.Random(7)
        n = len(self.nodes)
        sums: dict[str, list[float]] = {}
        for _ in range(pairs):
            a, b = rng.randrange(n), rng.randrange(n)
            if a == b:
                continue
            native = base_rtt(a, b) - 2 * (self.detour[a] + self.detour[b])
            rtt = native + 2 * self.detour[a]
            entry = sums.setdefault(self.nodes[a].mechanism, [0.0, 0.0, 0])
            entry[0] += rtt
            entry[1] += native
            entry[2] += 1
        return {name: (total / count, native / count) for name, (total, native, count) in sums.items()}

    def summary(self, duration: float, base_rtt) -> dict[str, Any]:
        """What ``access.json`` holds: per node, and per mechanism the model's parameters and the mean
        RTT of its nodes' paths with and without the mechanism (``base_rtt(a, b)``, the latency model's)."""
        inflation = self.rtt_inflation(base_rtt)
        used = sorted({a.mechanism for a in self.nodes} | {a.network for a in self.nodes},
                      key=DEFAULT_ORDER.index)
        mechanisms = {}
        for name in used:
            m = MECHANISMS[name]
            payload = m.mtu - (40 if m.carries != "ipv4" else 20) - 8  # UDP over the carried family
            mechanisms[name] = {
                "overhead_bytes": m.overhead, "mtu": m.mtu, "infrastructure": m.infrastructure,
                "inbound": m.inbound, "outbound": True, "public_infrastructure": name in PUBLIC_INFRA,
                "packets_per_kib": math.ceil(1024 / payload),
                "overhead_per_kib": math.ceil(1024 / payload) * m.overhead,
            }
            if name in inflation:
                mechanisms[name]["rtt_ms"] = round(inflation[name][0] * 1000, 3)
                mechanisms[name]["rtt_native_ms"] = round(inflation[name][1] * 1000, 3)
        return {
            "relay_region": RELAY_REGION,
            "probe_interval": PROBE_INTERVAL,
            "reprobes_per_node": int(duration // PROBE_INTERVAL),
            "mechanisms": mechanisms,
            "nodes": [{"network": a.network, "mechanism": a.mechanism, "fallbacks": a.fallbacks,
                       "selection_time": round(a.selection_time, 6), "blackholed": a.blackholed,
                       "detour": round(d, 6)} for a, d in zip(self.nodes, self.detour, strict=True)],
        }
