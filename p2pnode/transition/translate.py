"""RFC 7915 IP/ICMP translation (SIIT), the engine of a MAP-T CE and BR, a 464XLAT CLAT and, with a
session table around it, a stateful NAT64 (RFC 6146).

What the translator does not decide is how addresses (and, for NAT64, ports) map: it is handed four
functions ``(address, port) -> (address, port) | None`` for the source and destination of each
direction; ``None`` drops the packet. For an ICMP error the quoted packet travels the other way, so
its source is mapped with the destination function and vice versa. For ICMP queries the identifier
stands in for the port; a non-first fragment has no port (``None``).

Rules applied (RFC 7915 section numbers):
- §4.1 / §5.1 headers: TOS <-> traffic class, flow label 0, TTL <-> hop limit less one (a translator
  forwards; at 1 an ICMP Time Exceeded goes back), IPv4 options ignored except an unexpired source
  route (Destination Unreachable, source route failed), an IPv6 routing header with segments left
  (Parameter Problem pointing at it).
- Fragments: an IPv4 fragment gets a Fragment header (identification's low 16 bits); an IPv4 packet
  without DF too big for the IPv6 MTU is cut into IPv6 fragments; with DF it is answered with
  Fragmentation Needed giving the IPv6 MTU less 20. The IPv6 -> IPv4 direction sets DF unless the
  result is at most 1260 bytes, and answers a packet too big for the IPv4 MTU with Packet Too Big
  (IPv4 MTU + 20) unless it was an IPv6 fragment, which is refragmented in IPv4.
- §4.2 / §5.2 ICMP type, code, pointer and MTU tables; the quoted packet translated too, ICMPv6
  errors kept within 1280 bytes.
- §4.5 / §5.5 transport checksums updated for the pseudo-header (and port) change; an IPv4 UDP
  datagram with checksum zero gets a computed one, or is dropped when fragmented. ICMP checksums are
  verified and computed afresh (ICMPv6's covers a pseudo-header, ICMPv4's does not).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from p2pnode.transition import packets as pk
from p2pnode.transition.packets import PacketError

Mapper = Callable[[bytes, int | None], tuple[bytes, int | None] | None]

# ICMPv4 -> ICMPv6 (RFC 7915 §4.2): type 3 codes, None: drop; "ptb"/"proto" handled specially
_UNREACH4_TO_6 = {0: 0, 1: 0, 3: 4, 5: 0, 6: 0, 7: 0, 8: 0, 9: 1, 10: 1, 11: 0, 12: 0, 13: 1, 15: 1}
# ICMPv4 parameter-problem pointer -> ICMPv6 pointer (RFC 7915 §4.2, Figure 3)
_POINTER4_TO_6 = {0: 0, 1: 1, 2: 4, 3: 4, 8: 7, 9: 6, **{i: 8 for i in range(12, 16)}, **{i: 24 for i in range(16, 20)}}
# ICMPv6 destination-unreachable codes -> ICMPv4 type 3 codes (RFC 7915 §5.2)
_UNREACH6_TO_4 = {0: 1, 1: 10, 2: 1, 3: 1, 4: 3}
# ICMPv6 parameter-problem pointer -> ICMPv4 pointer (RFC 7915 §5.2, Figure 6)
_POINTER6_TO_4 = {0: 0, 1: 1, 4: 2, 5: 2, 6: 9, 7: 8, **{i: 12 for i in range(8, 24)},
                  **{i: 16 for i in range(24, 40)}}
_PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)  # RFC 1191 §7


@dataclass(slots=True)
class Translated:
    """What came of one packet: packets for the other side, an ICMP error back to the sender's side
    (in the sender's family), or neither, with the reason."""
    packets: list[bytes] = field(default_factory=list)
    reply: bytes | None = None
    dropped: str = ""


def _drop(reason: str) -> Translated:
    return Translated(dropped=reason)


def _ports(proto: int, l4: bytes) -> tuple[int | None, int | None]:
    if proto in (pk.PROTO_TCP, pk.PROTO_UDP) and len(l4) >= 4:
        return int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
    return None, None


def _csum_at(proto: int) -> int | None:
    return {pk.PROTO_TCP: 16, pk.PROTO_UDP: 6}.get(proto)


def _rewrite_l4(proto: int, l4: bytes, old_pseudo: bytes, new_pseudo: bytes, sport: int | None,
                dport: int | None) -> bytes:
    """A TCP/UDP header (or a truncated quote of one) with new ports and its checksum carried over."""
    at = _csum_at(proto)
    if at is None or len(l4) < 4:
        return l4
    new_ports = (sport if sport is not None else int.from_bytes(l4[0:2], "big")).to_bytes(2, "big") \
        + (dport if dport is not None else int.from_bytes(l4[2:4], "big")).to_bytes(2, "big")
    if len(l4) < at + 2:
        return new_ports + l4[4:]
    old = int.from_bytes(l4[at:at + 2], "big")
    if proto == pk.PROTO_UDP and old == 0:
        return new_ports + l4[4:]  # handled by the caller (computed, or dropped)
    csum = pk.adjust(old, old_pseudo + l4[0:4], new_pseudo + new_ports)
    return new_ports + l4[4:at] + csum.to_bytes(2, "big") + l4[at + 2:]


class Translator:
    """A stateless IPv4/IPv6 translator between an IPv4 side and an IPv6 side."""

    def __init__(self, *, src4to6: Mapper, dst4to6: Mapper, src6to4: Mapper, dst6to4: Mapper,
                 own_ipv4: bytes, own_ipv6: bytes, ipv6_mtu: int = pk.IPV6_MIN_MTU, ipv4_mtu: int = 1500):
        if ipv6_mtu < pk.IPV6_MIN_MTU:
            raise ValueError(f"IPv6 MTU {ipv6_mtu} is below the IPv6 minimum 1280")
        self.src4to6, self.dst4to6, self.src6to4, self.dst6to4 = src4to6, dst4to6, src6to4, dst6to4
        self.own_ipv4, self.own_ipv6 = own_ipv4, own_ipv6
        self.ipv6_mtu, self.ipv4_mtu = ipv6_mtu, ipv4_mtu
        self._ident = itertools.count(1)

    # ---- IPv4 -> IPv6 ---------------------------------------------------------------------------

    def to_ipv6(self, packet: bytes) -> Translated:
        try:
            h = pk.parse_ipv4(packet)
        except PacketError as exc:
            return _drop(str(exc))
        packet = packet[:h.total_length]
        if _unexpired_source_route(h.options):
            return self._reply4(packet, 3, 5)
        if h.ttl <= 1:
            return self._reply4(packet, 11, 0)
        l4 = packet[h.header_length:]
        first = h.offset == 0
        if h.proto == pk.PROTO_ICMP:
            if h.is_fragment:
                return _drop("fragmented ICMPv4 (its ICMPv6 checksum needs the whole message)")
            if pk.ones_sum(l4) != 0:
                return _drop("bad ICMPv4 checksum")
            return self._icmp4to6(h, packet, l4)
        sport, dport = _ports(h.proto, l4) if first else (None, None)
        src = self.src4to6(h.src, sport)
        dst = self.dst4to6(h.dst, dport)
        if src is None or dst is None:
            return _drop("no IPv6 mapping for the IPv4 addresses")
        proto = h.proto
        if first and proto == pk.PROTO_UDP and len(l4) >= 8 and l4[6:8] == b"\0\0":
            if h.is_fragment:
                return _drop("fragmented UDP without checksum (RFC 7915 §4.5)")
            l4 = l4[:6] + pk.checksum(pk.pseudo4(h.src, h.dst, proto, len(l4)), l4).to_bytes(2, "big") + l4[8:]
        if first:  # length and protocol appear alike in both pseudo-headers: only the addresses count
            l4 = _rewrite_l4(proto, l4, pk.pseudo4(h.src, h.dst, proto, len(l4)),
                             pk.pseudo6(src[0], dst[0], proto, len(l4)), src[1], dst[1])
        return self._emit6(h, packet, src[0], dst[0], proto, l4)

    def _emit6(self, h: pk.IPv4Header, packet: bytes, src: bytes, dst: bytes, proto: int, l4: bytes) -> Translated:
        size = 40 + len(l4) + (8 if h.is_fragment else 0)
        if size > self.ipv6_mtu:
            if h.df:
                mtu = self.ipv6_mtu - 20 - (8 if h.is_fragment else 0)
                return self._reply4(packet, 3, 4, mtu)
            return Translated(packets=pk.fragment_ipv6(src, dst, proto, l4, self.ipv6_mtu, h.ident,
                                                       hop_limit=h.ttl - 1, traffic_class=h.tos,
                                                       first_offset=h.offset, last_more=h.mf))
        if h.is_fragment:
            l4 = pk.fragment_header(proto, h.offset, h.mf, h.ident) + l4
            proto = pk.PROTO_FRAGMENT
        return Translated(packets=[pk.build_ipv6(src, dst, proto, l4, hop_limit=h.ttl - 1, traffic_class=h.tos)])

    def _icmp4to6(self, h: pk.IPv4Header, packet: bytes, icmp: bytes) -> Translated:
        if len(icmp) < 8:
            return _drop("truncated ICMPv4 message")
        kind, code, rest = icmp[0], icmp[1], int.from_bytes(icmp[4:8], "big")
        if kind in (0, 8):  # echo reply / request: the identifier is the "port"
            mapped = _map_query(self.src4to6, self.dst4to6, h.src, h.dst, icmp)
            if mapped is None:
                return _drop("no IPv6 mapping for the ICMPv4 query")
            src, dst, ident = mapped
            body = bytes([129 if kind == 0 else 128, 0, 0, 0]) + ident + icmp[6:]
            return self._emit6(h, packet, src, dst, pk.PROTO_ICMPV6, _icmp6_checksum(src, dst, body))
        if kind == 3:
            if code == 4:
                mtu = rest & 0xFFFF or _plateau(_inner_length4(icmp[8:]))
                kind6, code6 = 2, 0
                rest6 = max(pk.IPV6_MIN_MTU, min(mtu + 20, self.ipv6_mtu, self.ipv4_mtu + 20))
            elif code == 2:
                kind6, code6, rest6 = 4, 1, 6  # protocol unreachable: parameter problem at next header
            elif code in _UNREACH4_TO_6:
                kind6, code6, rest6 = 1, _UNREACH4_TO_6[code], 0
            else:
                return _drop(f"ICMPv4 destination unreachable code {code} has no ICMPv6 equivalent")
        elif kind == 11:
            kind6, code6, rest6 = 3, code, 0
        elif kind == 12 and code in (0, 2):
            pointer = _POINTER4_TO_6.get(rest >> 24)
            if pointer is None:
                return _drop(f"ICMPv4 parameter problem pointer {rest >> 24} has no IPv6 equivalent")
            kind6, code6, rest6 = 4, 0, pointer
        else:
            return _drop(f"ICMPv4 type {kind} is not translated (RFC 7915 §4.2)")
        inner = self._inner4to6(icmp[8:])
        if inner is None:
            return _drop("quoted IPv4 packet cannot be translated")
        quoted, inner_src, inner_dst, inner_sport, inner_dport = inner
        # the error goes to the quoted packet's source, from where the quoted packet was going
        src, dst = self.src4to6(h.src, inner_dport), self.dst4to6(h.dst, inner_sport)
        if src is None or dst is None:
            return _drop("no IPv6 mapping for the ICMPv4 error")
        body = bytes([kind6, code6, 0, 0]) + rest6.to_bytes(4, "big") + quoted
        body = body[:pk.IPV6_MIN_MTU - 40]
        return self._emit6(h, packet, src[0], dst[0], pk.PROTO_ICMPV6, _icmp6_checksum(src[0], dst[0], body))

    def _inner4to6(self, quoted: bytes):
        try:
            h = pk.parse_ipv4(quoted, verify=False)
        except PacketError:
            return None
        l4 = quoted[h.header_length:h.total_length]
        sport, dport = _ports(h.proto, l4) if h.offset == 0 else (None, None)
        if h.proto == pk.PROTO_ICMP and len(l4) >= 8 and l4[0] in (0, 8):
            sport = dport = int.from_bytes(l4[4:6], "big")
        src, dst = self.dst4to6(h.src, sport), self.src4to6(h.dst, dport)
        if src is None or dst is None:
            return None
        full = h.total_length - h.header_length
        proto = pk.PROTO_ICMPV6 if h.proto == pk.PROTO_ICMP else h.proto
        if h.proto == pk.PROTO_ICMP and len(l4) >= 4 and l4[0] in (0, 8):
            new = bytes([129 if l4[0] == 0 else 128, l4[1]])
            csum = pk.adjust(int.from_bytes(l4[2:4], "big"), l4[0:2], new + pk.pseudo6(src[0], dst[0], proto, full))
            l4 = new + csum.to_bytes(2, "big") + l4[4:]
        elif h.offset == 0:
            l4 = _rewrite_l4(proto, l4, pk.pseudo4(h.src, h.dst, proto, full), pk.pseudo6(src[0], dst[0], proto, full),
                             src[1], dst[1])
        if h.is_fragment:
            l4 = pk.fragment_header(proto, h.offset, h.mf, h.ident) + l4
            proto = pk.PROTO_FRAGMENT
        header = pk.build_ipv6(src[0], dst[0], proto, b"", hop_limit=h.ttl, traffic_class=h.tos)
        header = header[:4] + (full + (8 if h.is_fragment else 0)).to_bytes(2, "big") + header[6:]
        return header + l4, h.src, h.dst, sport, dport

    def _reply4(self, packet: bytes, kind: int, code: int, mtu: int = 0) -> Translated:
        if pk.must_not_answer4(packet):
            return _drop(f"ICMPv4 {kind}/{code} not sent (about an error, a fragment or a non-unicast source)")
        return Translated(reply=pk.icmp4_error(self.own_ipv4, packet, kind, code, mtu), dropped=f"ICMPv4 {kind}/{code}")

    # ---- IPv6 -> IPv4 ---------------------------------------------------------------------------

    def to_ipv4(self, packet: bytes) -> Translated:
        try:
            h = pk.parse_ipv6(packet)
        except PacketError as exc:
            return _drop(str(exc))
        packet = packet[:40 + h.payload_length]
        if h.routing_segments_left and h.routing_segments_left[0]:
            return self._reply6(packet, 4, 0, h.routing_segments_left[1])
        if h.hop_limit <= 1:
            return self._reply6(packet, 3, 0)
        l4 = packet[h.upper_offset:]
        first = h.fragment is None or h.fragment[0] == 0
        if h.proto == pk.PROTO_ICMPV6:
            if h.is_fragment:
                return _drop("fragmented ICMPv6 (its ICMPv4 checksum needs the whole message)")
            if pk.ones_sum(pk.pseudo6(h.src, h.dst, pk.PROTO_ICMPV6, len(l4)), l4) != 0:
                return _drop("bad ICMPv6 checksum")
            return self._icmp6to4(h, packet, l4)
        if h.proto in (pk.PROTO_HOPOPTS, pk.PROTO_ROUTING, pk.PROTO_DSTOPTS, pk.PROTO_NONE) and first:
            return _drop(f"IPv6 next header {h.proto} has no IPv4 equivalent")
        sport, dport = _ports(h.proto, l4) if first else (None, None)
        src, dst = self.src6to4(h.src, sport), self.dst6to4(h.dst, dport)
        if src is None or dst is None:
            return _drop("no IPv4 mapping for the IPv6 addresses")
        if first:
            l4 = _rewrite_l4(h.proto, l4, pk.pseudo6(h.src, h.dst, h.proto, len(l4)),
                             pk.pseudo4(src[0], dst[0], h.proto, len(l4)), src[1], dst[1])
        return self._emit4(h, packet, src[0], dst[0], h.proto, l4)

    def _emit4(self, h: pk.IPv6Header, packet: bytes, src: bytes, dst: bytes, proto: int, l4: bytes) -> Translated:
        size = 20 + len(l4)
        if h.fragment is not None:
            offset, more, ident = h.fragment
            out = pk.build_ipv4(src, dst, proto, l4, ttl=h.hop_limit - 1, tos=h.traffic_class, ident=ident & 0xFFFF,
                                mf=more, offset=offset)
            return Translated(packets=pk.fragment_ipv4(out, self.ipv4_mtu))
        if size > self.ipv4_mtu:
            return self._reply6(packet, 2, 0, self.ipv4_mtu + 20)
        df = size > pk.IPV6_MIN_MTU - 20
        ident = 0 if df else next(self._ident) & 0xFFFF
        return Translated(packets=[pk.build_ipv4(src, dst, proto, l4, ttl=h.hop_limit - 1, tos=h.traffic_class,
                                                 ident=ident, df=df)])

    def _icmp6to4(self, h: pk.IPv6Header, packet: bytes, icmp: bytes) -> Translated:
        if len(icmp) < 8:
            return _drop("truncated ICMPv6 message")
        kind, code, rest = icmp[0], icmp[1], int.from_bytes(icmp[4:8], "big")
        if kind in (128, 129):
            mapped = _map_query(self.src6to4, self.dst6to4, h.src, h.dst, icmp)
            if mapped is None:
                return _drop("no IPv4 mapping for the ICMPv6 query")
            src, dst, ident = mapped
            body = bytes([8 if kind == 128 else 0, 0, 0, 0]) + ident + icmp[6:]
            body = body[:2] + pk.checksum(body).to_bytes(2, "big") + body[4:]
            return self._emit4(h, packet, src, dst, pk.PROTO_ICMP, body)
        if kind == 1:
            if code not in _UNREACH6_TO_4:
                return _drop(f"ICMPv6 destination unreachable code {code} has no ICMPv4 equivalent")
            kind4, code4, rest4 = 3, _UNREACH6_TO_4[code], 0
        elif kind == 2:
            kind4, code4 = 3, 4
            rest4 = max(pk.IPV4_MIN_MTU, min(rest - 20, self.ipv4_mtu, self.ipv6_mtu - 20)) & 0xFFFF
        elif kind == 3:
            kind4, code4, rest4 = 11, code, 0
        elif kind == 4 and code == 0:
            pointer = _POINTER6_TO_4.get(rest)
            if pointer is None:
                return _drop(f"ICMPv6 parameter problem pointer {rest} has no IPv4 equivalent")
            kind4, code4, rest4 = 12, 0, pointer << 24
        elif kind == 4 and code == 1:
            kind4, code4, rest4 = 3, 2, 0
        else:
            return _drop(f"ICMPv6 type {kind} code {code} is not translated (RFC 7915 §5.2)")
        inner = self._inner6to4(icmp[8:])
        if inner is None:
            return _drop("quoted IPv6 packet cannot be translated")
        quoted, inner_sport, inner_dport = inner
        src, dst = self.src6to4(h.src, inner_dport), self.dst6to4(h.dst, inner_sport)
        if src is None or dst is None:
            return _drop("no IPv4 mapping for the ICMPv6 error")
        body = bytes([kind4, code4, 0, 0]) + rest4.to_bytes(4, "big") + quoted
        body = body[:576 - 20]
        body = body[:2] + pk.checksum(body).to_bytes(2, "big") + body[4:]
        return self._emit4(h, packet, src[0], dst[0], pk.PROTO_ICMP, body)

    def _inner6to4(self, quoted: bytes):
        try:
            h = pk.parse_ipv6(quoted, verify=False)
        except PacketError:
            return None
        l4 = quoted[h.upper_offset:]
        first = h.fragment is None or h.fragment[0] == 0
        sport, dport = _ports(h.proto, l4) if first else (None, None)
        if h.proto == pk.PROTO_ICMPV6 and len(l4) >= 8 and l4[0] in (128, 129):
            sport = dport = int.from_bytes(l4[4:6], "big")
        src, dst = self.dst6to4(h.src, sport), self.src6to4(h.dst, dport)
        if src is None or dst is None:
            return None
        full = 40 + h.payload_length - h.upper_offset
        proto = pk.PROTO_ICMP if h.proto == pk.PROTO_ICMPV6 else h.proto
        if h.proto == pk.PROTO_ICMPV6 and len(l4) >= 4 and l4[0] in (128, 129):
            new = bytes([8 if l4[0] == 128 else 0, l4[1]])
            csum = pk.adjust(int.from_bytes(l4[2:4], "big"), l4[0:2] + pk.pseudo6(h.src, h.dst, h.proto, full), new)
            l4 = new + csum.to_bytes(2, "big") + l4[4:]
        elif first:
            l4 = _rewrite_l4(proto, l4, pk.pseudo6(h.src, h.dst, proto, full), pk.pseudo4(src[0], dst[0], proto, full),
                             src[1], dst[1])
        offset, more, ident = h.fragment or (0, False, 0)
        header = pk.build_ipv4(src[0], dst[0], proto, b"", ttl=h.hop_limit, tos=h.traffic_class, ident=ident & 0xFFFF,
                               mf=more, offset=offset)
        total = 20 + full
        header = header[:2] + total.to_bytes(2, "big") + header[4:10] + b"\0\0" + header[12:]
        header = header[:10] + pk.checksum(header).to_bytes(2, "big") + header[12:]
        return header + l4, sport, dport

    def _reply6(self, packet: bytes, kind: int, code: int, rest: int = 0) -> Translated:
        if pk.must_not_answer6(packet):
            return _drop(f"ICMPv6 {kind}/{code} not sent (about an error or a non-unicast source)")
        return Translated(reply=pk.icmp6_error(self.own_ipv6, packet, kind, code, rest),
                          dropped=f"ICMPv6 {kind}/{code}")


def _map_query(src_map: Mapper, dst_map: Mapper, src: bytes, dst: bytes, icmp: bytes):
    """Addresses and identifier of an echo message: the identifier stands in for both ports, and
    whichever side rewrites it (a NAT64's client side) gives the new one."""
    ident = int.from_bytes(icmp[4:6], "big")
    new_src, new_dst = src_map(src, ident), dst_map(dst, ident)
    if new_src is None or new_dst is None:
        return None
    new_id = new_src[1] if new_src[1] != ident else new_dst[1]
    return new_src[0], new_dst[0], new_id.to_bytes(2, "big")


def _icmp6_checksum(src: bytes, dst: bytes, body: bytes) -> bytes:
    csum = pk.checksum(pk.pseudo6(src, dst, pk.PROTO_ICMPV6, len(body)), body)
    return body[:2] + csum.to_bytes(2, "big") + body[4:]


def _inner_length4(quoted: bytes) -> int:
    return int.from_bytes(quoted[2:4], "big") if len(quoted) >= 4 else 0


def _plateau(length: int) -> int:
    """RFC 1191 §7: the next plateau below a packet's length, for an old router's MTU of zero."""
    return next((p for p in _PLATEAUS if p < length), 68)


def _unexpired_source_route(options: bytes) -> bool:
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            return False
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            return False
        size = options[i + 1]
        if kind in (131, 137) and i + 2 < len(options) and options[i + 2] <= size:  # LSRR/SSRR pointer not past end
            return True
        i += size
    return False
