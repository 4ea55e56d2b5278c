"""The packet side of a data plane, sans-IO: an endpoint takes packets from the local stack (its TUN
device) or from the network (a raw or UDP socket) and says what to send where.

``p2pnode/tunnels/`` owns the devices and sockets and feeds every endpoint the same way; the
endpoints here only see bytes, so each mechanism's host and infrastructure side is tested without
root. Each refused packet increments a drop counter named by its reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

TUN, IP4, IP6, UDP = "tun", "ip4", "ip6", "udp"


@dataclass(frozen=True, slots=True)
class Out:
    via: str  # TUN: to the local stack; IP4 / IP6: a raw socket of the endpoint's protocol; UDP
    data: bytes
    dest: bytes | tuple[bytes, int] | None = None  # IPv4/IPv6 address, or (IPv4 address, port) for UDP


@dataclass(frozen=True, slots=True)
class Socket:
    """The network socket an endpoint needs: ("ip4", 41), ("ip6", 4), ("udp", port), or none."""
    kind: str
    number: int
    bind: bytes | None = None  # local address to send from (a MAP CE's MAP IPv6 address, say)
    groups: tuple[bytes, ...] = ()  # IPv4 multicast groups to join (6over4)


class Endpoint:
    mechanism = ""
    role = ""
    socket: Socket | None = None

    def __init__(self):
        self.drops: Counter[str] = Counter()
        self.events: list[dict] = []  # things the runtime should know (a Teredo address obtained)
        self.now = 0.0

    def drop(self, reason: str) -> list[Out]:
        self.drops[reason] += 1
        return []

    def from_tun(self, packet: bytes) -> list[Out]:
        return self.drop("this endpoint takes nothing from its TUN device")

    def from_net(self, packet: bytes, source) -> list[Out]:
        """``packet`` as the socket gives it: a whole IPv4 packet (raw IPv4), the payload after the IPv6
        header (raw IPv6, ``source`` the IPv6 address bytes) or a UDP payload (``source`` (ip, port))."""
        return self.drop("this endpoint has no network socket")

    def tick(self, now: float) -> list[Out]:
        """Time passes (NAT mappings expire, qualification is retried)."""
        self.now = now
        return []
