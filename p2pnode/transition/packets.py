"""IPv4 and IPv6 headers, Internet checksums, fragmentation and ICMP errors, on raw bytes.

The data planes run these once per packet, so they work on ``bytes`` with slicing and ``int``
arithmetic: scapy takes tens of microseconds to build or dissect one packet, which would cap a
translator at a few thousand packets a second. The tests build and check packets with scapy.

The ones'-complement sum uses the identity 2^16 = 1 (mod 0xFFFF): the sum of a run of big-endian
16-bit words is congruent to the run read as one integer, which ``int.from_bytes`` does in C.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PROTO_ICMP, PROTO_IPV4, PROTO_TCP, PROTO_UDP, PROTO_IPV6, PROTO_ICMPV6 = 1, 4, 6, 17, 41, 58
PROTO_FRAGMENT, PROTO_HOPOPTS, PROTO_ROUTING, PROTO_DSTOPTS, PROTO_NONE = 44, 0, 43, 60, 59
IPV6_MIN_MTU = 1280
IPV4_MIN_MTU = 68
_EXTENSIONS = (PROTO_HOPOPTS, PROTO_ROUTING, PROTO_DSTOPTS)


class PacketError(ValueError):
    """A packet that cannot be parsed; the message says why (and becomes a drop counter's reason)."""


def ones_sum(*parts: bytes) -> int:
    """The ones'-complement sum of ``parts`` (each word-aligned; only the last may be odd-length)."""
    total = 0
    for part in parts:
        if len(part) % 2:
            part = part + b"\0"
        total += int.from_bytes(part, "big") % 0xFFFF
    return total % 0xFFFF


def checksum(*parts: bytes) -> int:
    """The Internet checksum of ``parts``. A zero sum gives 0xFFFF, never 0 (0 means "none" in UDP)."""
    s = ones_sum(*parts)
    return 0xFFFF - s if s else 0xFFFF


def adjust(csum: int, old: bytes, new: bytes) -> int:
    """A checksum updated for ``old`` bytes replaced by ``new`` (RFC 1624), both word-aligned."""
    s = (0xFFFF - csum) + int.from_bytes(new, "big") % 0xFFFF - int.from_bytes(old, "big") % 0xFFFF
    s %= 0xFFFF
    return 0xFFFF - s if s else 0xFFFF


def pseudo4(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + bytes([0, proto]) + length.to_bytes(2, "big")


def pseudo6(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + length.to_bytes(4, "big") + bytes([0, 0, 0, proto])


# ---- IPv4 ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class IPv4Header:
    tos: int
    total_length: int
    ident: int
    df: bool
    mf: bool
    offset: int  # in 8-byte units
    ttl: int
    proto: int
    src: bytes
    dst: bytes
    header_length: int
    options: bytes = b""

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.offset != 0


def parse_ipv4(packet: bytes, verify: bool = True) -> IPv4Header:
    """The header of an IPv4 packet; ``verify`` checks the header checksum and the lengths."""
    if len(packet) < 20:
        raise PacketError(f"IPv4 packet of {len(packet)} bytes is shorter than a header")
    vihl = packet[0]
    if vihl >> 4 != 4:
        raise PacketError(f"not IPv4 (version {vihl >> 4})")
    ihl = (vihl & 15) * 4
    total = int.from_bytes(packet[2:4], "big")
    if ihl < 20 or total < ihl or (verify and total > len(packet)) or len(packet) < ihl:
        raise PacketError(f"bad IPv4 lengths (header {ihl}, total {total}, have {len(packet)})")
    if verify and ones_sum(packet[:ihl]) != 0:
        raise PacketError("bad IPv4 header checksum")
    flags = int.from_bytes(packet[6:8], "big")
    return IPv4Header(tos=packet[1], total_length=total, ident=int.from_bytes(packet[4:6], "big"),
                      df=bool(flags & 0x4000), mf=bool(flags & 0x2000), offset=flags & 0x1FFF, ttl=packet[8],
                      proto=packet[9], src=packet[12:16], dst=packet[16:20], header_length=ihl,
                      options=packet[20:ihl])


def build_ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, *, ttl: int = 64, tos: int = 0, ident: int = 0,
               df: bool = False, mf: bool = False, offset: int = 0) -> bytes:
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0) | offset
    header = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident, flags, ttl, proto, 0, src, dst)
    return header[:10] + checksum(header).to_bytes(2, "big") + header[12:] + payload


def fragment_ipv4(packet: bytes, mtu: int) -> list[bytes]:
    """An IPv4 packet without DF cut to ``mtu``-sized fragments (options are not copied; ours have none)."""
    header = parse_ipv4(packet, verify=False)
    payload = packet[header.header_length:header.total_length]
    if len(packet) <= mtu:
        return [packet]
    step = (mtu - 20) // 8 * 8
    out = []
    for start in range(0, len(payload), step):
        chunk = payload[start:start + step]
        last = start + step >= len(payload)
        out.append(build_ipv4(header.src, header.dst, header.proto, chunk, ttl=header.ttl, tos=header.tos,
                              ident=header.ident, mf=header.mf or not last, offset=header.offset + start // 8))
    return out


def icmp4_error(own: bytes, offending: bytes, kind: int, code: int, rest: int = 0, limit: int = 576) -> bytes:
    """An ICMPv4 error about ``offending`` from ``own`` to its source (RFC 792; at most 576 bytes)."""
    quoted = offending[:limit - 28]
    body = bytes([kind, code, 0, 0]) + rest.to_bytes(4, "big") + quoted
    body = body[:2] + checksum(body).to_bytes(2, "big") + body[4:]
    return build_ipv4(own, offending[12:16], PROTO_ICMP, body, ttl=64)


# ---- IPv6 ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class IPv6Header:
    traffic_class: int
    flow_label: int
    payload_length: int
    hop_limit: int
    src: bytes
    dst: bytes
    proto: int  # the upper-layer protocol after the extension headers
    upper_offset: int  # where the upper-layer header starts
    fragment: tuple[int, bool, int] | None = None  # (offset in 8-byte units, more fragments, identification)
    routing_segments_left: tuple[int, int] | None = None  # (value, its byte offset) of a routing header

    @property
    def is_fragment(self) -> bool:
        return self.fragment is not None and (self.fragment[0] != 0 or self.fragment[1])


def parse_ipv6(packet: bytes, verify: bool = True) -> IPv6Header:
    """The fixed header and extension-header chain of an IPv6 packet."""
    if len(packet) < 40:
        raise PacketError(f"IPv6 packet of {len(packet)} bytes is shorter than a header")
    first = int.from_bytes(packet[:4], "big")
    if first >> 28 != 6:
        raise PacketError(f"not IPv6 (version {first >> 28})")
    length = int.from_bytes(packet[4:6], "big")
    if verify and 40 + length > len(packet):
        raise PacketError(f"IPv6 payload length {length} exceeds the {len(packet) - 40} bytes present")
    proto, offset, fragment, routing = packet[6], 40, None, None
    end = min(len(packet), 40 + length)
    while proto in _EXTENSIONS or proto == PROTO_FRAGMENT:
        if offset + 8 > end:
            raise PacketError("truncated IPv6 extension header")
        if proto == PROTO_FRAGMENT:
            field = int.from_bytes(packet[offset + 2:offset + 4], "big")
            fragment = (field >> 3, bool(field & 1), int.from_bytes(packet[offset + 4:offset + 8], "big"))
            proto, offset = packet[offset], offset + 8
            if fragment[0]:
                break  # a later fragment: what follows is payload, not headers
            continue
        if proto == PROTO_ROUTING:
            routing = (packet[offset + 3], offset + 3)
        proto, offset = packet[offset], offset + (packet[offset + 1] + 1) * 8
    if offset > end:
        raise PacketError("IPv6 extension headers run past the packet")
    return IPv6Header(traffic_class=(first >> 20) & 0xFF, flow_label=first & 0xFFFFF, payload_length=length,
                      hop_limit=packet[7], src=packet[8:24], dst=packet[24:40], proto=proto, upper_offset=offset,
                      fragment=fragment, routing_segments_left=routing)


def build_ipv6(src: bytes, dst: bytes, proto: int, payload: bytes, *, hop_limit: int = 64,
               traffic_class: int = 0, flow_label: int = 0) -> bytes:
    first = (6 << 28) | (traffic_class << 20) | flow_label
    return first.to_bytes(4, "big") + len(payload).to_bytes(2, "big") + bytes([proto, hop_limit]) + src + dst \
        + payload


def fragment_header(next_header: int, offset: int, more: bool, ident: int) -> bytes:
    return bytes([next_header, 0]) + ((offset << 3) | int(more)).to_bytes(2, "big") + ident.to_bytes(4, "big")


def fragment_ipv6(src: bytes, dst: bytes, proto: int, payload: bytes, mtu: int, ident: int, *,
                  hop_limit: int = 64, traffic_class: int = 0, first_offset: int = 0,
                  last_more: bool = False) -> list[bytes]:
    """``payload`` (an upper-layer packet, or a fragment of one starting at ``first_offset`` 8-byte units)
    carried in IPv6 fragments no larger than ``mtu``."""
    step = (mtu - 48) // 8 * 8
    out = []
    for start in range(0, len(payload), step):
        last = start + step >= len(payload)
        header = fragment_header(proto, first_offset + start // 8, last_more or not last, ident)
        out.append(build_ipv6(src, dst, PROTO_FRAGMENT, header + payload[start:start + step], hop_limit=hop_limit,
                              traffic_class=traffic_class))
    return out


def icmp6_error(own: bytes, offending: bytes, kind: int, code: int, rest: int = 0) -> bytes:
    """An ICMPv6 error about ``offending`` from ``own`` to its source (RFC 4443; at most 1280 bytes)."""
    dst = offending[8:24]
    quoted = offending[:IPV6_MIN_MTU - 48]
    body = bytes([kind, code, 0, 0]) + rest.to_bytes(4, "big") + quoted
    csum = checksum(pseudo6(own, dst, PROTO_ICMPV6, len(body)), body)
    body = body[:2] + csum.to_bytes(2, "big") + body[4:]
    return build_ipv6(own, dst, PROTO_ICMPV6, body)


def must_not_answer4(packet: bytes) -> bool:
    """RFC 1812 §4.3.2.7: no ICMP error about an ICMP error, a non-first fragment or a non-unicast source."""
    if len(packet) < 20 or packet[12] >= 224 or packet[12:16] == b"\0\0\0\0":
        return True
    ihl = (packet[0] & 15) * 4
    if int.from_bytes(packet[6:8], "big") & 0x1FFF:
        return True
    return packet[9] == PROTO_ICMP and len(packet) > ihl and packet[ihl] not in (0, 8, 13, 14, 15, 16, 17, 18)


def must_not_answer6(packet: bytes) -> bool:
    """RFC 4443 §2.4 (e): no ICMPv6 error about an error message or a multicast/unspecified source."""
    if len(packet) < 40 or packet[8] == 0xFF or packet[8:24] == bytes(16):
        return True
    try:
        header = parse_ipv6(packet, verify=False)
    except PacketError:
        return True
    return header.proto == PROTO_ICMPV6 and len(packet) > header.upper_offset \
        and packet[header.upper_offset] < 128
