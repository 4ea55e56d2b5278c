"""Encapsulating endpoints: IPv6 in IPv4 (protocol 41: 6to4, 6rd, ISATAP, 6over4) and IPv4 in IPv6
(next header 4: a DS-Lite B4 and AFTR, a MAP-E CE and BR).

Every endpoint checks what it decapsulates: the inner header must parse and the inner source must be
what the outer source may send (RFC 3964 §5 for 6to4, RFC 5969 §12 for 6rd, RFC 5214 §8.5 for ISATAP,
RFC 7597 §8.1 for MAP); a packet too big for the tunnel MTU is answered with Packet Too Big or
Fragmentation Needed (or, IPv4 without DF, fragmented), never silently cut.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from p2pnode.transition import addresses, mapping, nat
from p2pnode.transition import packets as pk
from p2pnode.transition.endpoint import IP4, IP6, TUN, Endpoint, Out, Socket
from p2pnode.transition.mapping import MapCe, MapRule
from p2pnode.transition.packets import PacketError

B4_ADDRESS, AFTR_ADDRESS = IPv4Address("192.0.0.2"), IPv4Address("192.0.0.1")  # RFC 6333 §5.7
IN4_MTU, IN6_MTU = 1480, 1460  # on a 1500-byte link
LINK_LOCAL = IPv6Network("fe80::/64")


class SixInFour(Endpoint):
    """IPv6 over IPv4, protocol 41. ``next_hop`` gives the IPv4 end point for an inner destination
    (``None``: unreachable); ``accept`` says whether an outer source may send an inner source."""

    def __init__(self, mechanism: str, role: str, own4: IPv4Address, own6: IPv6Address,
                 next_hop: Callable[[IPv6Address], IPv4Address | None],
                 accept: Callable[[IPv6Address, IPv4Address], bool], mtu: int = IN4_MTU,
                 groups: tuple[IPv4Address, ...] = ()):
        super().__init__()
        self.mechanism, self.role = mechanism, role
        self.own4, self.own6, self.mtu = own4, own6, mtu
        self.next_hop, self.accept = next_hop, accept
        self.socket = Socket(IP4, pk.PROTO_IPV6, own4.packed, tuple(g.packed for g in groups))

    def from_tun(self, packet: bytes) -> list[Out]:
        try:
            h = pk.parse_ipv6(packet)
        except PacketError as exc:
            return self.drop(str(exc))
        if len(packet) > self.mtu:
            return self._error6(packet, 2, 0, self.mtu, "too big for the tunnel")
        hop = self.next_hop(IPv6Address(h.dst))
        if hop is None:
            return self._error6(packet, 1, 3, 0, "no IPv4 end point for the destination")
        return [Out(IP4, packet[:40 + h.payload_length], hop.packed)]

    def _error6(self, packet: bytes, kind: int, code: int, rest: int, reason: str) -> list[Out]:
        self.drops[reason] += 1
        if pk.must_not_answer6(packet):
            return []
        return [Out(TUN, pk.icmp6_error(self.own6.packed, packet, kind, code, rest))]

    def from_net(self, packet: bytes, source) -> list[Out]:
        try:
            outer = pk.parse_ipv4(packet)
        except PacketError as exc:
            return self.drop(str(exc))
        if outer.proto != pk.PROTO_IPV6:
            return self.drop("outer protocol is not 41")
        inner = packet[outer.header_length:outer.total_length]
        try:
            h = pk.parse_ipv6(inner)
        except PacketError as exc:
            return self.drop(f"inner packet: {exc}")
        if not self.accept(IPv6Address(h.src), IPv4Address(outer.src)):
            return self.drop("inner source not allowed from this IPv4 source (spoofed)")
        return [Out(TUN, inner[:40 + h.payload_length])]


def sixtofour(own4: IPv4Address, role: str = "host", relay: IPv4Address = addresses.SIXTOFOUR_RELAY_ANYCAST,
              mtu: int = IN4_MTU) -> SixInFour:
    """A 6to4 host or router (native destinations go to ``relay``), or a relay (``role="relay"``)."""
    own6 = IPv6Address(int(addresses.sixtofour_prefix(own4).network_address) | int(own4)) if role == "host" \
        else IPv6Address(int(addresses.sixtofour_prefix(own4).network_address) | 1)

    def next_hop(dst):
        if dst in addresses.SIXTOFOUR_PREFIX:
            v4 = dst.sixtofour
            return v4 if addresses.is_globally_unique(v4) else None
        return relay if role == "host" else None

    def accept(src, outer):
        if src in addresses.SIXTOFOUR_PREFIX:
            return src.sixtofour == outer
        return role == "host" and outer == relay  # native sources arrive only through the relay

    return SixInFour("6to4", role, own4, own6, next_hop, accept, mtu)


def sixrd(domain: addresses.SixRdDomain, own4: IPv4Address, role: str = "ce", mtu: int = IN4_MTU) -> SixInFour:
    """A 6rd CE (native destinations go to the first border relay) or border relay (``role="br"``)."""
    own6 = domain.delegated_prefix(own4).network_address + 1 if role == "ce" else domain.prefix.network_address + 1
    br = domain.border_relays[0] if domain.border_relays else None

    def next_hop(dst):
        if dst in domain.prefix:
            return domain.ipv4_of(dst, own4)
        return br if role == "ce" else None

    def accept(src, outer):
        if src in domain.prefix:
            return domain.ipv4_of(src, own4) == outer
        return role == "ce" and outer == br

    return SixInFour("6rd", role, own4, own6, next_hop, accept, mtu)


def isatap(own4: IPv4Address, prefix: IPv6Network, role: str = "host", router: IPv4Address | None = None,
           mtu: int = IN4_MTU) -> SixInFour:
    """An ISATAP host (off-link destinations go to ``router``, from its potential router list) or
    router. On-link ISATAP addresses are reached directly at the IPv4 address they embed."""
    own6 = addresses.isatap_address(prefix, own4)

    def on_link(addr):
        if addr in prefix or addr.is_link_local:
            try:
                return addresses.isatap_ipv4(addr)
            except ValueError:
                return None
        return None

    def next_hop(dst):
        return on_link(dst) or (router if role == "host" else None)

    def accept(src, outer):
        embedded = on_link(src)
        if embedded is not None:
            return embedded == outer
        return role == "host" and outer == router

    return SixInFour("isatap", role, own4, own6, next_hop, accept, mtu)


def sixover4(own4: IPv4Address, prefix: IPv6Network = LINK_LOCAL, ols: int = addresses.SIXOVER4_OLS,
             mtu: int = IN4_MTU, router: IPv4Address | None = None) -> SixInFour:
    """A 6over4 host: unicast to the IPv4 address in the destination's identifier, multicast (ND,
    all-nodes) to 239.OLS.x.y (RFC 2529 §6). With ``router`` (the IPv4 address of a 6over4 router on the
    segment, configured here where RFC 2529 hosts find it by Router Discovery over multicast), destinations
    off ``prefix`` go to it, and it may send from beyond the prefix."""
    own6 = addresses.sixover4_address(prefix, own4)
    groups = tuple({addresses.sixover4_multicast(g, ols) for g in
                    ("ff02::1", f"ff02::1:ff{(int(own4) >> 16) & 0xFF:02x}:{int(own4) & 0xFFFF:x}")})
    on_link = prefix if router is not None else None

    def next_hop(dst):
        if dst.is_multicast:
            return addresses.sixover4_multicast(dst, ols)
        if on_link is not None and dst not in on_link and not dst.is_link_local:
            return router
        try:
            return addresses.sixover4_ipv4(dst)
        except ValueError:
            return None

    def accept(src, outer):
        if on_link is not None and src not in on_link and not src.is_link_local:
            return outer == router
        try:
            return addresses.sixover4_ipv4(src) == outer
        except ValueError:
            return False

    return SixInFour("6over4", "host", own4, own6, next_hop, accept, mtu, groups)


# ---- IPv4 in IPv6 -----------------------------------------------------------------------------------

def _to_softwire(packet: bytes, mtu: int, own4: bytes) -> tuple[list[bytes], bytes | None, str]:
    """An IPv4 packet entering a 1460-byte softwire: itself, its fragments, or Fragmentation Needed."""
    try:
        h = pk.parse_ipv4(packet)
    except PacketError as exc:
        return [], None, str(exc)
    packet = packet[:h.total_length]
    if len(packet) <= mtu:
        return [packet], None, ""
    if h.df:
        reply = None if pk.must_not_answer4(packet) else pk.icmp4_error(own4, packet, 3, 4, mtu)
        return [], reply, "too big for the softwire"
    return pk.fragment_ipv4(packet, mtu), None, ""


class _Softwire(Endpoint):
    """What the IPv4-in-IPv6 endpoints share: reading an inner IPv4 packet, sending into the softwire,
    and a NAT44 clock."""
    mtu = IN6_MTU
    napt: nat.Napt | None = None

    def _inner(self, packet: bytes, prefix: str = "inner packet: ") -> tuple[pk.IPv4Header, bytes] | None:
        try:
            h = pk.parse_ipv4(packet)
        except PacketError as exc:
            self.drops[f"{prefix}{exc}"] += 1
            return None
        return h, packet[:h.total_length]

    def _into_softwire(self, packet: bytes, own4: bytes, target: bytes) -> list[Out]:
        out, reply, reason = _to_softwire(packet, self.mtu, own4)
        if reason:
            self.drops[reason] += 1
        return [Out(TUN, reply)] if reply else [Out(IP6, p, target) for p in out]

    def tick(self, now):
        self.now = now
        if self.napt is not None:
            self.napt.tick(now)
        return []


class DsLiteB4(_Softwire):
    """The host side of DS-Lite (RFC 6333 §5): IPv4 from the stack into a softwire to the AFTR."""
    mechanism, role = "dslite", "b4"

    def __init__(self, aftr: IPv6Address, mtu: int = IN6_MTU, bind: IPv6Address | None = None):
        super().__init__()
        self.aftr, self.mtu = aftr, mtu
        self.socket = Socket(IP6, pk.PROTO_IPV4, bind.packed if bind else None)

    def from_tun(self, packet: bytes) -> list[Out]:
        return self._into_softwire(packet, AFTR_ADDRESS.packed, self.aftr.packed)

    def from_net(self, packet: bytes, source) -> list[Out]:
        if source != self.aftr.packed:
            return self.drop("softwire packet not from the AFTR")
        parsed = self._inner(packet)
        return [Out(TUN, parsed[1])] if parsed else []


class DsLiteAftr(_Softwire):
    """The AFTR (RFC 6333 §6): decapsulates softwires and runs a NAT44 keyed by softwire, so every
    B4 may use 192.0.0.2 and the same ports; nothing unsolicited gets in."""
    mechanism, role = "dslite", "aftr"

    def __init__(self, pool: list[IPv4Address], rng: random.Random, mtu: int = IN6_MTU,
                 bind: IPv6Address | None = None, timeout: float = 300.0):
        super().__init__()
        self.mtu = mtu
        self.napt = nat.Napt([a.packed for a in pool], range(1024, 65536), rng, timeout)
        self.socket = Socket(IP6, pk.PROTO_IPV4, bind.packed if bind else None)

    def from_net(self, packet: bytes, source) -> list[Out]:
        parsed = self._inner(packet)
        if parsed is None:
            return []
        h, packet = parsed
        port = nat.l4_port(packet, h.header_length, h.proto, source=True) if h.offset == 0 else None
        external = self.napt.outbound(source, h.src, port)
        if external is None:
            return self.drop("no NAT44 mapping (port space exhausted or unmappable packet)")
        return [Out(TUN, nat.rewrite4(packet, src=external))]

    def from_tun(self, packet: bytes) -> list[Out]:
        parsed = self._inner(packet, "")
        if parsed is None:
            return []
        h, packet = parsed
        quote = nat.icmp_error_quote(packet)
        if quote is not None:  # an error about a packet we translated: find it by the quoted source
            qh = quote[1]
            entry = self.napt.inbound(qh[12:16], nat.l4_port(qh, (qh[0] & 15) * 4, qh[9], source=True))
            if entry is None:
                return self.drop("ICMP error about no known mapping")
            packet = nat.rewrite_icmp_error4(packet, entry.internal)
        else:
            entry = self.napt.inbound(h.dst, nat.l4_port(packet, h.header_length, h.proto, source=False)
                                      if h.offset == 0 else None)
            if entry is None:
                return self.drop("no NAT44 mapping (unsolicited inbound)")
            packet = nat.rewrite4(packet, dst=entry.internal)
        return self._into_softwire(packet, AFTR_ADDRESS.packed, entry.context)


class MapECe(_Softwire):
    """A MAP-E CE (RFC 7597 §8): NAPT44 into its port set, then IPv4 in IPv6 to the BR, or straight
    to another CE of a Forwarding Mapping Rule (mesh)."""
    mechanism, role = "map-e", "ce"

    def __init__(self, ce: MapCe, br: IPv6Address, rng: random.Random, fmrs: tuple[MapRule, ...] = (),
                 mtu: int = IN6_MTU, timeout: float = 300.0, forwards: tuple[tuple[IPv4Address, int], ...] = ()):
        super().__init__()
        self.ce, self.br, self.fmrs, self.mtu = ce, br, fmrs, mtu
        self.napt = nat.Napt([ce.address.packed], ce.port_set, rng, timeout)
        nat.forward_ports(self.napt, ce, forwards)
        self.socket = Socket(IP6, pk.PROTO_IPV4, ce.ipv6.packed)

    def from_tun(self, packet: bytes) -> list[Out]:
        parsed = self._inner(packet, "")
        if parsed is None:
            return []
        h, packet = parsed
        if len(packet) > self.mtu:  # refused before the NAPT: the error goes to the host's own address
            _, reply, reason = _to_softwire(packet, self.mtu, self.ce.address.packed)
            if reply:
                self.drops[reason] += 1
                return [Out(TUN, reply)]
        external = self.napt.outbound(b"", h.src, nat.l4_port(packet, h.header_length, h.proto, source=True)
                                      if h.offset == 0 else None)
        if external is None:
            return self.drop("no port left in the port set (or unmappable packet)")
        packet = nat.rewrite4(packet, src=external)
        dst = IPv4Address(h.dst)
        rule = mapping.match_ipv4(self.fmrs, dst)
        dport = nat.l4_port(packet, h.header_length, h.proto, source=False)
        target = mapping.ce_address(rule, dst, dport).packed if rule is not None else self.br.packed
        return self._into_softwire(packet, self.ce.address.packed, target)

    def from_net(self, packet: bytes, source) -> list[Out]:
        parsed = self._inner(packet)
        if parsed is None:
            return []
        h, packet = parsed
        if source != self.br.packed:
            rule = mapping.match_ipv6(self.fmrs, IPv6Address(source))
            if rule is None or not _source_matches(rule, source, packet, h):
                return self.drop("softwire packet neither from the BR nor from a CE of a mapping rule (spoofed)")
        dport = nat.l4_port(packet, h.header_length, h.proto, source=False) if h.offset == 0 else None
        if dport is not None and dport not in self.ce.port_set:
            return self.drop("destination port outside the CE's port set")
        entry = self.napt.inbound(h.dst, dport)
        if entry is None:
            return self.drop("no NAT44 mapping (unsolicited inbound)")
        return [Out(TUN, nat.rewrite4(packet, dst=entry.internal))]


def _source_matches(rule: MapRule, source: bytes, packet: bytes, h: pk.IPv4Header) -> bool:
    """RFC 7597 §8.1: the inner source address and port must be the ones the outer source's EA bits give."""
    v4, psid = mapping.parse_ce_address(rule, IPv6Address(source))
    if v4.packed != h.src:
        return False
    if rule.psid_len and h.offset == 0:
        port = nat.l4_port(packet, h.header_length, h.proto, source=True)
        if port is not None and mapping.psid_of(port, rule.psid_len, rule.psid_offset) != psid:
            return False
    return True


class MapEBr(_Softwire):
    """A MAP-E border relay: stateless, checks each CE's source against its rule, and sends IPv4 for a
    CE's address (and, when shared, port) to the CE's MAP IPv6 address."""
    mechanism, role = "map-e", "br"

    def __init__(self, rules: tuple[MapRule, ...], own6: IPv6Address, own4: IPv4Address, mtu: int = IN6_MTU):
        super().__init__()
        self.rules, self.own4, self.mtu = rules, own4, mtu
        self.socket = Socket(IP6, pk.PROTO_IPV4, own6.packed)

    def from_net(self, packet: bytes, source) -> list[Out]:
        parsed = self._inner(packet)
        if parsed is None:
            return []
        h, packet = parsed
        rule = mapping.match_ipv6(self.rules, IPv6Address(source))
        if rule is None:
            return self.drop("softwire source under no mapping rule")
        if not _source_matches(rule, source, packet, h):
            return self.drop("inner source address or port not the CE's (spoofed)")
        return [Out(TUN, packet)]

    def from_tun(self, packet: bytes) -> list[Out]:
        parsed = self._inner(packet, "")
        if parsed is None:
            return []
        h, packet = parsed
        dst = IPv4Address(h.dst)
        rule = mapping.match_ipv4(self.rules, dst)
        if rule is None:
            return self.drop("destination under no mapping rule")
        quote = nat.icmp_error_quote(packet)
        if quote is not None:
            qh = quote[1]
            port = nat.l4_port(qh, (qh[0] & 15) * 4, qh[9], source=True)
        else:
            port = nat.l4_port(packet, h.header_length, h.proto, source=False) if h.offset == 0 else None
        try:
            target = mapping.ce_address(rule, dst, port)
        except ValueError:
            return self.drop("shared address without a port to find its CE")
        return self._into_softwire(packet, self.own4.packed, target.packed)
