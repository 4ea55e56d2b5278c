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
from p2pnode.transition.packets import adjust as pk_adjust
from p2pnode.transition.packets import checksum as pk_checksum


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

    def forward(self, addr: bytes, port: int, external: tuple[bytes, int]) -> None:
        """A static mapping (a port forward): unsolicited packets to ``external`` reach (addr, port), and
        that host's packets from the port leave from ``external``; it never expires."""
        entry = Mapping(b"", (addr, port), external, float("inf"))
        self._out[(b"", addr, port)] = entry
        self._in[external] = entry

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
        entry.last_used = max(entry.last_used, self.now)
        return entry.external

    def inbound(self, addr: bytes, port: int | None) -> Mapping | None:
        """The mapping an inbound packet to (external address, port) belongs to, if any."""
        if port is None:
            return None
        entry = self._in.get((addr, port))
        if entry is not None:
            entry.last_used = max(entry.last_used, self.now)
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


def forward_ports(napt: Napt, ce, forwards) -> None:
    """A MAP CE's port forwards: each (internal IPv4 address, port) reachable from outside at the CE's own
    address and the same port, which must be in the CE's port set (RFC 7597 §5.1: inbound is only into it)."""
    for addr, port in forwards:
        if port not in ce.port_set:
            raise ValueError(f"port {port} is outside the CE's port set (PSID {ce.psid:#x})")
        napt.forward(addr.packed, port, (ce.address.packed, port))


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


# ---- rewriting IPv4 packets for a NAPT44 -----------------------------------------------------------

def l4_port(packet: bytes, header_length: int, proto: int, source: bool) -> int | None:
    """The source or destination port of a TCP/UDP packet, or the identifier of an ICMP echo."""
    l4 = packet[header_length:]
    if proto in (6, 17) and len(l4) >= 4:
        return int.from_bytes(l4[0:2] if source else l4[2:4], "big")
    if proto == 1 and len(l4) >= 8 and l4[0] in (0, 8):
        return int.from_bytes(l4[4:6], "big")
    return None


def rewrite4(packet: bytes, *, src: tuple[bytes, int | None] | None = None,
             dst: tuple[bytes, int | None] | None = None) -> bytes:
    """``packet`` with a new source and/or destination address and port (the ICMP echo identifier
    for ICMP), its IPv4 header checksum and transport checksum carried over (RFC 1624)."""
    ihl = (packet[0] & 15) * 4
    proto = packet[9]
    head, l4 = bytearray(packet[:ihl]), bytearray(packet[ihl:])
    old_addrs = bytes(head[12:20])
    if src is not None:
        head[12:16] = src[0]
    if dst is not None:
        head[16:20] = dst[0]
    head[10:12] = b"\0\0"
    head[10:12] = pk_checksum(bytes(head)).to_bytes(2, "big")
    first = int.from_bytes(packet[6:8], "big") & 0x1FFF == 0
    if first and proto in (6, 17) and len(l4) >= 4:
        old_ports = bytes(l4[0:4])
        if src is not None and src[1] is not None:
            l4[0:2] = src[1].to_bytes(2, "big")
        if dst is not None and dst[1] is not None:
            l4[2:4] = dst[1].to_bytes(2, "big")
        at = 16 if proto == 6 else 6
        if len(l4) >= at + 2 and not (proto == 17 and l4[at:at + 2] == b"\0\0"):
            old = int.from_bytes(l4[at:at + 2], "big")
            new = pk_adjust(old, old_addrs + old_ports, bytes(head[12:20]) + bytes(l4[0:4]))
            l4[at:at + 2] = new.to_bytes(2, "big")
    elif first and proto == 1 and len(l4) >= 8 and l4[0] in (0, 8):
        new = src[1] if src is not None and src[1] is not None else dst[1] if dst is not None else None
        if new is not None:
            old = bytes(l4[4:6])
            l4[4:6] = new.to_bytes(2, "big")
            l4[2:4] = pk_adjust(int.from_bytes(l4[2:4], "big"), old, bytes(l4[4:6])).to_bytes(2, "big")
    return bytes(head) + bytes(l4)


def icmp_error_quote(packet: bytes) -> tuple[int, bytes] | None:
    """Where the quoted packet of an ICMPv4 error starts, and the quote, if ``packet`` is one."""
    ihl = (packet[0] & 15) * 4
    if packet[9] != 1 or len(packet) < ihl + 8 + 20 or packet[ihl] not in (3, 4, 5, 11, 12):
        return None
    return ihl + 8, packet[ihl + 8:]


def rewrite_icmp_error4(packet: bytes, internal: tuple[bytes, int]) -> bytes:
    """An inbound ICMPv4 error about a translated packet, turned back to its internal host: the outer
    destination and the quoted packet's source become ``internal``; both checksums are recomputed."""
    start, quote = icmp_error_quote(packet)
    quote = rewrite4(quote, src=internal)
    ihl = (packet[0] & 15) * 4
    icmp = bytearray(packet[ihl:start] + quote)
    icmp[2:4] = b"\0\0"
    icmp[2:4] = pk_checksum(bytes(icmp)).to_bytes(2, "big")
    head = bytearray(packet[:ihl])
    head[2:4] = (ihl + len(icmp)).to_bytes(2, "big")
    out = rewrite4(bytes(head) + bytes(icmp), dst=(internal[0], None))
    return out
