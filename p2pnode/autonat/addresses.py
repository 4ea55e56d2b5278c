"""Which addresses are public, and the addresses others observe us at (Identify's ``observedAddr``).

AutoNAT servers must not dial private addresses, and clients should not ask them to (autonat-v2: RFC 1918
and the like): ``public_ip`` says which addresses count as public. A lab network (emulation, tests) names the
ranges it uses as its "internet" (``[nat] public_ranges``) so that its addresses count as public there too.

``ObservedAddrs`` keeps what our peers report as our address (Identify's observed address, per connection):
an address several distinct peers (in distinct /24 or /48 networks, so one network cannot vote many times)
agree on is what our NAT maps our listen port to, the address to test with AutoNAT and to send in DCUtR.
A symmetric NAT shows each peer another port, so no address gathers votes: such a node has nothing to
advertise and hole punching towards it is hopeless, as in real networks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from multiaddr import Multiaddr

from p2pnode.relay.addrs import is_circuit

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_of(addr: Multiaddr | bytes) -> str | None:
    """The IP address an ``/ip4|ip6/...`` multiaddr starts with; None for other addresses."""
    try:
        addr = addr if isinstance(addr, Multiaddr) else Multiaddr(addr)
        first = addr.protocols()[0].name
        if first not in ("ip4", "ip6"):
            return None
        return addr.value_for_protocol(first)
    except Exception:  # the multiaddr package raises a variety of errors for bad input
        return None


def public_ip(ip: str, public_ranges: Iterable[IpNetwork] = ()) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if any(address in network for network in public_ranges if network.version == address.version):
        return True
    return address.is_global


def public_addr(addr: Multiaddr | bytes, public_ranges: Iterable[IpNetwork] = ()) -> bool:
    """A direct (not circuit) address of a public IP."""
    ip = ip_of(addr)
    return ip is not None and not is_circuit(addr) and public_ip(ip, public_ranges)


def _group(ip: str) -> str:
    """The network one vote counts for: the /24 of an IPv4 address, the /48 of an IPv6 one."""
    address = ipaddress.ip_address(ip)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


@dataclass(slots=True)
class _Votes:
    by_group: dict[str, float] = field(default_factory=dict)  # observer's network -> when last seen


class ObservedAddrs:
    def __init__(self, threshold: int = 2, ttl: float = 1800.0):
        """An address counts once ``threshold`` distinct networks reported it in the last ``ttl`` seconds."""
        self.threshold = threshold
        self.ttl = ttl
        self._votes: dict[bytes, _Votes] = {}

    def record(self, observed: bytes, observer_ip: str | None, now: float) -> None:
        if not observed or observer_ip is None or is_circuit(observed) or ip_of(observed) is None:
            return
        try:
            group = _group(observer_ip)
        except ValueError:
            return
        self._votes.setdefault(observed, _Votes()).by_group[group] = now
        if len(self._votes) > 64:
            self._forget(now)

    def _forget(self, now: float) -> None:
        for addr, votes in list(self._votes.items()):
            votes.by_group = {g: t for g, t in votes.by_group.items() if now - t <= self.ttl}
            if not votes.by_group:
                del self._votes[addr]

    def confirmed(self, now: float) -> list[bytes]:
        """Addresses enough networks agree on, the best supported first."""
        self._forget(now)
        ranked = sorted(self._votes.items(), key=lambda item: -len(item[1].by_group))
        return [addr for addr, votes in ranked if len(votes.by_group) >= self.threshold]

    def all(self, now: float) -> list[bytes]:
        """Every address reported lately, the best supported first."""
        self._forget(now)
        return [a for a, _ in sorted(self._votes.items(), key=lambda item: -len(item[1].by_group))]
