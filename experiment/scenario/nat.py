"""The scenario's ``nat`` section (docs/nat.md): carrier-grade NATs, mapping lifetimes, keepalives, relays and
their limits, hole punching; each node's own NAT type is ``nodes.nat``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, Strict

from experiment.scenario.fields import (
    MAX_NODES,
    MAX_TIME,
    MAX_TIMEOUT,
    Count,
    Flag,
    Span,
    _between,
    _choice,
    _Model,
)
from p2pnode.transition.profiles import NAT_TYPES

if TYPE_CHECKING:
    from experiment.scenario.schema import Nodes


NatBehind = Annotated[Literal[NAT_TYPES[1:]], _choice(NAT_TYPES[1:])]
Share01 = Annotated[float, Strict(), Field(ge=0, le=1)]


class Cgnat(_Model):
    """Carrier-grade NATs: a second layer in front of ``share`` of the nodes (their home NAT, if any, behind
    it), ``subscribers`` nodes per carrier NAT."""

    share: Share01 = 0.0
    type: NatBehind = "port-restricted"
    subscribers: Annotated[int, Strict(), _between(1, MAX_NODES)] = 32


class MappingTimeout(_Model):
    """Seconds an idle NAT mapping lives (RFC 4787 REQ-5 asks at least 120 for UDP; RFC 5382 7440 for TCP)."""

    udp: Span = 120.0
    tcp: Span = 7440.0


class Relays(_Model):
    """Which public nodes serve Circuit Relay v2 (bootstrap nodes count among the public ones) and with
    what limits (go-libp2p's defaults)."""

    share: Share01 = 0.1
    max_reservations: Annotated[int, Strict(), _between(1, MAX_NODES)] = 128
    max_circuits: Annotated[int, Strict(), _between(1, MAX_NODES)] = 16
    max_circuits_total: Annotated[int, Strict(), _between(1, MAX_NODES)] = 1024
    circuit_duration: Annotated[int, Strict(), _between(0, MAX_TIME)] = 120  # seconds
    circuit_data: Annotated[int, Strict(), _between(0, 1 << 40)] = 1 << 17  # bytes
    reservation_ttl: Span = 3600.0


class Nat(_Model):
    """NAT behaviour and traversal (docs/nat.md); node NAT types are ``nodes.nat``."""

    cgnat: Cgnat = Field(default_factory=Cgnat)
    mapping_timeout: MappingTimeout = Field(default_factory=MappingTimeout)
    # seconds between an open connection's keepalives (they hold its mapping)
    keepalive: Annotated[float, Strict(), _between(1, MAX_TIMEOUT)] = 15.0
    hairpinning: Flag = True
    relays: Relays = Field(default_factory=Relays)
    reservations: Count = 2  # relays a private node keeps a reservation at
    hole_punching: Flag = True
    quic_share: Share01 = 0.5  # of node pairs whose connection (and hole punch) runs over QUIC, else TCP
    port_mapping: Share01 = 0.0  # of home NATs whose UPnP IGD / NAT-PMP maps the node's port

    def active(self, nodes: Nodes) -> bool:
        return set(nodes.nat) != {"none"} or self.cgnat.share > 0
