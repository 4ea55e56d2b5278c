"""Address and port translation state: the NAT44 of a DS-Lite AFTR (RFC 6333 §6.6, keyed by softwire)
and of a MAP CE (into its port set), and the stateful NAT64 of a 464XLAT PLAT (RFC 6146).

Mappings are endpoint-independent (RFC 4787 REQ-1: one external port per internal address and port,
whatever the destination) and filtering is address-and-port dependent for inbound packets only in
that a packet must hit an existing mapping: nothing unsolicited gets in, which is what makes DS-Lite
and 464XLAT unreachable from outside. One port space serves TCP, UDP and ICMP identifiers alike
(simpler than three; a port set is small enough either way).

Time is handed in (``tick(now)``); idle mappings expire after ``timeout`` seconds (RFC 4787 REQ-5
asks for at least 2 minutes; RFC 6146 §4 uses 5 minutes for UDP, which we take for all).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from p2pnode.transition import addresses
from p2pnode.transition.mapping import PortSet


@dataclass(slots=True)
class Mapping:
    context: bytes  # the softwire (B4 IPv6 address) for an AFTR; empty otherwise
    internal: tuple[bytes, int]
    external: tuple[bytes, int]
    last_used: float


class Napt:
    """Endpoint-independent NAPT from internal (context, address, port) to (external address, port)."""

    def __init__(self, external: Iterable[bytes], ports: PortSet | range, rng: random.Random,
                 timeout: float = 300.0):
        self.external = list(external)
        self.ports = ports
        self.timeout = timeout
        self.now = 0.0
        self._out: dict[tuple[bytes, bytes, int], Mapping] = {}
        self._in: dict[tuple[bytes, int], Mapping] = {}
        self._rng = rng
        self._size = len(ports)
        self._swept = float("-inf")

    def __len__(self) -> int:
        return len(self._out)

    def tick(self, now: float) -> None:
        """Advance the clock and forget idle mappings."""
        self.now = now
        if now - self._swept < self.timeout / 10:
            return
        self._swept = now
        for key, entry in list(self._out.items()):
            if now - entry.last_used > self.timeout:
                del self._out[key]
                del self._in[entry.external]

    def outbound(self, context: bytes, addr: bytes, port: int | None) -> tuple[bytes, int] | None:
        """The external address and port for an internal one, made on first use; ``None`` when the port
        space is exhausted or there is no port (a non-first fragment without a mapping)."""
        if port is None:
            return None
        entry = self._out.get((context, addr, port))
        if entry is None:
            external = self._allocate()
            if external is None:
                return None
            entry = Mapping(context, (addr, port), external, self.now)
            self._out[(context, addr, port)] = entry
            self._in[external] = entry
        entry.last_used = self.now
        return entry.external

    def inbound(self, addr: bytes, port: int | None) -> Mapping | None:
        """The mapping an inbound packet to (external address, port) belongs to, if any."""
        if port is None:
            return None
        entry = self._in.get((addr, port))
        if entry is not None:
            entry.last_used = self.now
        return entry

    def _allocate(self) -> tuple[bytes, int] | None:
        for addr in self.external:
            start = self._rng.randrange(self._size)
            for i in range(self._size):
                index = (start + i) % self._size
                port = self.ports.port(index) if isinstance(self.ports, PortSet) else self.ports[index]
                if (addr, port) not in self._in:
                    return addr, port
        return None


class Nat64:
    """Stateful NAT64 (RFC 6146): IPv6 clients behind ``pool`` addresses, IPv4 servers under ``pref64``.
    ``mappers()`` gives the four functions ``translate.Translator`` takes."""

    def __init__(self, pref64: IPv6Network, pool: Iterable[bytes], rng: random.Random,
                 ports: range = range(1024, 65536), timeout: float = 300.0):
        self.pref64 = pref64
        self.napt = Napt(pool, ports, rng, timeout)

    def src6to4(self, addr: bytes, port: int | None):
        if IPv6Address(addr) in self.pref64:
            return None  # a client address, never a server's
        return self.napt.outbound(b"", addr, port)

    def dst6to4(self, addr: bytes, port: int | None):
        v6 = IPv6Address(addr)
        if v6 not in self.pref64:
            return None
        try:
            v4 = addresses.extract(self.pref64, v6)
        except ValueError:
            return None
        return v4.packed, port

    def src4to6(self, addr: bytes, port: int | None):
        try:
            return addresses.synthesize(self.pref64, IPv4Address(addr)).packed, port
        except ValueError:  # a non-global address under the well-known prefix
            return None

    def dst4to6(self, addr: bytes, port: int | None):
        entry = self.napt.inbound(addr, port)
        return None if entry is None else entry.internal

    def mappers(self) -> dict:
        return {"src6to4": self.src6to4, "dst6to4": self.dst6to4, "src4to6": self.src4to6, "dst4to6": self.dst4to6}
