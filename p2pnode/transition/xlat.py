"""Translating endpoints (RFC 7915 through ``translate.Translator``): a MAP-T CE and BR (RFC 7599 §8),
a 464XLAT CLAT and a PLAT with stateful NAT64 (RFC 6877, RFC 6146).

A translator's one TUN device carries both families: the stack routes IPv4 (and the translated
IPv6 addresses) into it, and what comes out is written back for the stack to forward.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from p2pnode.transition import addresses, mapping, nat
from p2pnode.transition import packets as pk
from p2pnode.transition.endpoint import TUN, Endpoint, Out
from p2pnode.transition.mapping import MapCe, MapRule
from p2pnode.transition.packets import PacketError
from p2pnode.transition.translate import Translated, Translator

CLAT_IPV4 = IPv4Address("192.0.0.1")  # RFC 7335: the host's IPv4 address behind a CLAT (192.0.0.0/29)
CLAT_GATEWAY = IPv4Address("192.0.0.2")


class _Translating(Endpoint):
    translator: Translator

    def _out(self, result: Translated) -> list[Out]:
        if result.dropped:
            self.drops[result.dropped] += 1
        if result.reply is not None:
            return [Out(TUN, result.reply)]
        return [Out(TUN, p) for p in result.packets]

    def from_tun(self, packet: bytes) -> list[Out]:
        if not packet:
            return self.drop("empty packet")
        version = packet[0] >> 4
        if version == 4:
            return self.from_ipv4(packet)
        if version == 6:
            return self.from_ipv6(packet)
        return self.drop(f"IP version {version}")

    def from_ipv4(self, packet: bytes) -> list[Out]:
        return self._out(self.translator.to_ipv6(packet))

    def from_ipv6(self, packet: bytes) -> list[Out]:
        return self._out(self.translator.to_ipv4(packet))


class Clat(_Translating):
    """The customer-side translator: the host's 192.0.0.1 becomes the CLAT's own IPv6 address, every
    other IPv4 address its Pref64 form (stateless, RFC 6877 §6.3)."""
    mechanism, role = "464xlat", "clat"

    def __init__(self, clat6: IPv6Address, pref64: IPv6Network, host4: IPv4Address = CLAT_IPV4,
                 mtu6: int = pk.IPV6_MIN_MTU):
        super().__init__()
        self.clat6, self.pref64, self.host4 = clat6, pref64, host4

        def v4to6(addr, port):
            if addr == host4.packed:
                return clat6.packed, port
            try:
                return addresses.synthesize(pref64, IPv4Address(addr)).packed, port
            except ValueError:
                return None

        def v6to4(addr, port):
            if addr == clat6.packed:
                return host4.packed, port
            v6 = IPv6Address(addr)
            if v6 not in pref64:
                return None
            try:
                return addresses.extract(pref64, v6).packed, port
            except ValueError:
                return None

        self.translator = Translator(src4to6=v4to6, dst4to6=v4to6, src6to4=v6to4, dst6to4=v6to4,
                                     own_ipv4=CLAT_GATEWAY.packed, own_ipv6=clat6.packed, ipv6_mtu=mtu6)


class Plat(_Translating):
    """The provider-side translator: stateful NAT64 from IPv6 clients to IPv4 servers."""
    mechanism, role = "464xlat", "plat"

    def __init__(self, pref64: IPv6Network, pool: list[IPv4Address], own6: IPv6Address, rng: random.Random,
                 mtu6: int = pk.IPV6_MIN_MTU, timeout: float = 300.0):
        super().__init__()
        self.nat64 = nat.Nat64(pref64, [a.packed for a in pool], rng, timeout=timeout)
        self.translator = Translator(**self.nat64.mappers(), own_ipv4=pool[0].packed, own_ipv6=own6.packed,
                                     ipv6_mtu=mtu6)

    def tick(self, now):
        self.now = now
        self.nat64.napt.tick(now)
        return []


class MapTCe(_Translating):
    """A MAP-T CE: NAPT44 into the port set, then translation with the CE's MAP IPv6 address as
    source and the DMR (or an FMR's CE) as destination."""
    mechanism, role = "map-t", "ce"

    def __init__(self, ce: MapCe, dmr: IPv6Network, rng: random.Random, fmrs: tuple[MapRule, ...] = (),
                 mtu6: int = pk.IPV6_MIN_MTU, timeout: float = 300.0,
                 forwards: tuple[tuple[IPv4Address, int], ...] = ()):
        super().__init__()
        self.ce, self.dmr, self.fmrs = ce, dmr, fmrs
        self.napt = nat.Napt([ce.address.packed], ce.port_set, rng, timeout)
        nat.forward_ports(self.napt, ce, forwards)
        own4, own6 = ce.address.packed, ce.ipv6.packed

        def src4to6(addr, port):
            return (own6, port) if addr == own4 else None

        def dst4to6(addr, port):
            v4 = IPv4Address(addr)
            rule = mapping.match_ipv4(fmrs, v4)
            try:
                if rule is not None:
                    return mapping.ce_address(rule, v4, port).packed, port
                return mapping.dmr_address(dmr, v4).packed, port
            except ValueError:
                return None

        def src6to4(addr, port):
            v6 = IPv6Address(addr)
            if v6 in dmr:
                return addresses.extract(dmr, v6).packed, port
            rule = mapping.match_ipv6(fmrs, v6)
            if rule is None:
                return None
            v4, psid = mapping.parse_ce_address(rule, v6)
            if port is not None and rule.psid_len and mapping.psid_of(port, rule.psid_len, rule.psid_offset) != psid:
                return None
            return v4.packed, port

        def dst6to4(addr, port):
            if addr != own6 or (port is not None and port not in ce.port_set):
                return None
            return own4, port

        self.translator = Translator(src4to6=src4to6, dst4to6=dst4to6, src6to4=src6to4, dst6to4=dst6to4,
                                     own_ipv4=own4, own_ipv6=own6, ipv6_mtu=mtu6)

    def tick(self, now):
        self.now = now
        self.napt.tick(now)
        return []

    def from_ipv4(self, packet: bytes) -> list[Out]:
        try:
            h = pk.parse_ipv4(packet)
        except PacketError as exc:
            return self.drop(str(exc))
        external = self.napt.outbound(b"", h.src, nat.l4_port(packet, h.header_length, h.proto, source=True)
                                      if h.offset == 0 else None)
        if external is None:
            return self.drop("no port left in the port set (or unmappable packet)")
        out = []
        for item in self._out(self.translator.to_ipv6(nat.rewrite4(packet[:h.total_length], src=external))):
            if item.data[0] >> 4 == 4:  # an ICMPv4 error (too big) quoting the packet as the NAPT made it
                error = self._error_to_host(item.data)
                if error is not None:
                    out.append(error)
                continue
            out.append(item)
        return out

    def _error_to_host(self, error: bytes) -> Out | None:
        """An ICMPv4 error about a packet of the NAPT's, rewritten for the host that sent the packet."""
        quote = nat.icmp_error_quote(error)
        if quote is None:
            self.drops["an IPv4 answer of the translator that is no ICMP error"] += 1
            return None
        qh = quote[1]
        entry = self.napt.inbound(qh[12:16], nat.l4_port(qh, (qh[0] & 15) * 4, qh[9], source=True))
        if entry is None:
            self.drops["ICMP error about no known mapping"] += 1
            return None
        return Out(TUN, nat.rewrite_icmp_error4(error, entry.internal))

    def from_ipv6(self, packet: bytes) -> list[Out]:
        out = []
        for item in self._out(self.translator.to_ipv4(packet)):
            if item.data[0] >> 4 != 4:
                out.append(item)  # an ICMPv6 error back to the IPv6 side
                continue
            h = pk.parse_ipv4(item.data, verify=False)
            if nat.icmp_error_quote(item.data) is not None:
                error = self._error_to_host(item.data)
                if error is not None:
                    out.append(error)
                continue
            port = nat.l4_port(item.data, h.header_length, h.proto, source=False) if h.offset == 0 else None
            entry = self.napt.inbound(h.dst, port)
            if entry is None:
                self.drops["no NAT44 mapping (unsolicited inbound)"] += 1
                continue
            out.append(Out(TUN, nat.rewrite4(item.data, dst=entry.internal)))
        return out


class MapTBr(_Translating):
    """A MAP-T border relay: stateless; checks a CE's source port against the PSID its address embeds."""
    mechanism, role = "map-t", "br"

    def __init__(self, rules: tuple[MapRule, ...], dmr: IPv6Network, own4: IPv4Address, own6: IPv6Address,
                 mtu6: int = pk.IPV6_MIN_MTU):
        super().__init__()
        self.rules, self.dmr = rules, dmr

        def src6to4(addr, port):
            v6 = IPv6Address(addr)
            rule = mapping.match_ipv6(rules, v6)
            if rule is None:
                return None
            v4, psid = mapping.parse_ce_address(rule, v6)
            if port is not None and rule.psid_len and mapping.psid_of(port, rule.psid_len, rule.psid_offset) != psid:
                return None  # RFC 7599 §8.3: a source port outside the CE's set
            return v4.packed, port

        def dst6to4(addr, port):
            v6 = IPv6Address(addr)
            if v6 not in dmr:
                return None
            try:
                return addresses.extract(dmr, v6).packed, port
            except ValueError:
                return None

        def src4to6(addr, port):
            try:
                return mapping.dmr_address(dmr, IPv4Address(addr)).packed, port
            except ValueError:
                return None

        def dst4to6(addr, port):
            v4 = IPv4Address(addr)
            rule = mapping.match_ipv4(rules, v4)
            if rule is None:
                return None
            try:
                return mapping.ce_address(rule, v4, port).packed, port
            except ValueError:
                return None

        self.translator = Translator(src4to6=src4to6, dst4to6=dst4to6, src6to4=src6to4, dst6to4=dst6to4,
                                     own_ipv4=own4.packed, own_ipv6=own6.packed, ipv6_mtu=mtu6)
