"""Teredo (RFC 4380): IPv6 in UDP/IPv4 through NATs; a client, a server and a relay.

- Qualification (§5.2.1): the client sends a Router Solicitation to its server's UDP port 3544; the
  server answers with a Router Advertisement preceded by an origin indication (§5.1.1: indicator
  0x0000, then the port and IPv4 address it saw, inverted) and carrying the 2001:0:SERVER::/64
  prefix. The client's address is that prefix, the flags (RFC 5991: 12 random bits), and what the
  origin indication says, inverted (``addresses.TeredoAddress``).
- Data: to another Teredo address, straight to the mapped address and port it embeds; to a native
  address, through the relay. Received packets must come from where their source says (§5.2.3): a
  Teredo source from its embedded address and port, a native one from the relay.
- Bubbles (an IPv6 header with next header 59 and no payload) open NAT mappings and are not delivered.

Not implemented: the authentication encapsulation (§5.1.1, optional), the server forwarding of
bubbles between clients and relay discovery by ICMPv6 echo (§5.2.4-5.2.6): the client is configured
with its relay, as the emulated networks are.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from p2pnode.transition import addresses
from p2pnode.transition import packets as pk
from p2pnode.transition.addresses import TEREDO_PORT, TEREDO_PREFIX, TeredoAddress
from p2pnode.transition.endpoint import TUN, UDP, Endpoint, Out, Socket
from p2pnode.transition.packets import PacketError

CLIENT_LINK_LOCAL = IPv6Address("fe80::ffff:ffff:fffe")
SERVER_LINK_LOCAL = IPv6Address("fe80::8000:f227:bec9:1c81")
ALL_ROUTERS = IPv6Address("ff02::2")
TEREDO_MTU = 1280
QUALIFY_RETRY = 4.0  # RFC 4380 §5.2.1: retry the solicitation after a few seconds


def origin_indication(port: int, addr: IPv4Address) -> bytes:
    return b"\0\0" + addresses.teredo_obfuscate(port, addr)


def split_indication(payload: bytes) -> tuple[tuple[int, IPv4Address] | None, bytes]:
    """The origin indication (if any) and the IPv6 packet of a Teredo UDP payload."""
    if payload[:2] == b"\0\0" and len(payload) >= 8:
        return addresses.teredo_deobfuscate(payload[2:8]), payload[8:]
    if payload[:2] == b"\0\1":
        raise PacketError("Teredo authentication encapsulation is not supported")
    return None, payload


def router_solicitation() -> bytes:
    body = bytes([133, 0, 0, 0, 0, 0, 0, 0])
    csum = pk.checksum(pk.pseudo6(CLIENT_LINK_LOCAL.packed, ALL_ROUTERS.packed, pk.PROTO_ICMPV6, len(body)), body)
    body = body[:2] + csum.to_bytes(2, "big") + body[4:]
    return pk.build_ipv6(CLIENT_LINK_LOCAL.packed, ALL_ROUTERS.packed, pk.PROTO_ICMPV6, body, hop_limit=255)


def router_advertisement(dst: bytes, prefix: IPv6Network) -> bytes:
    prefix_option = bytes([3, 4, 64, 0x40]) + (3600).to_bytes(4, "big") + (3600).to_bytes(4, "big") + bytes(4) \
        + prefix.network_address.packed
    body = bytes([134, 0, 0, 0, 255, 0]) + (0).to_bytes(2, "big") + bytes(8) + prefix_option
    csum = pk.checksum(pk.pseudo6(SERVER_LINK_LOCAL.packed, dst, pk.PROTO_ICMPV6, len(body)), body)
    body = body[:2] + csum.to_bytes(2, "big") + body[4:]
    return pk.build_ipv6(SERVER_LINK_LOCAL.packed, dst, pk.PROTO_ICMPV6, body, hop_limit=255)


def _unwrap(endpoint: Endpoint, packet: bytes) -> tuple[pk.IPv6Header, bytes] | None:
    """The IPv6 packet of a Teredo UDP payload after any origin indication (drop counted if none)."""
    try:
        _, inner = split_indication(packet)
        return pk.parse_ipv6(inner), inner
    except PacketError as exc:
        endpoint.drops[str(exc)] += 1
        return None


def _is_bubble(h: pk.IPv6Header) -> bool:
    return h.proto == pk.PROTO_NONE and h.payload_length == 0


class TeredoClient(Endpoint):
    mechanism, role = "teredo", "client"

    def __init__(self, server: IPv4Address, relay: tuple[IPv4Address, int], rng: random.Random,
                 server_port: int = TEREDO_PORT, local_port: int = 0):
        super().__init__()
        self.server, self.server_port, self.relay = server, server_port, relay
        self.flags = addresses.teredo_flags(rng)
        self.address: TeredoAddress | None = None
        self._asked = float("-inf")
        self.socket = Socket(UDP, local_port)

    def tick(self, now: float) -> list[Out]:
        self.now = now
        if self.address is None and now - self._asked >= QUALIFY_RETRY:
            self._asked = now
            return [Out(UDP, router_solicitation(), (self.server.packed, self.server_port))]
        return []

    def from_net(self, packet: bytes, source) -> list[Out]:
        addr, port = IPv4Address(source[0]), source[1]
        try:
            indication, inner = split_indication(packet)
            h = pk.parse_ipv6(inner)
        except PacketError as exc:
            return self.drop(str(exc))
        if addr == self.server and port == self.server_port and indication is not None:
            return self._qualify(indication, inner, h)
        if _is_bubble(h):
            return self.drop("bubble")
        src = IPv6Address(h.src)
        if src in TEREDO_PREFIX:
            peer = TeredoAddress.parse(src)
            if (peer.client, peer.port) != (addr, port):
                return self.drop("Teredo source not sent from the address and port it embeds (spoofed)")
        elif (addr, port) != self.relay:
            return self.drop("native source not through the relay")
        if self.address is None or h.dst != self.address.address().packed:
            return self.drop("not addressed to our Teredo address")
        return [Out(TUN, inner[:40 + h.payload_length])]

    def _qualify(self, indication, inner: bytes, h: pk.IPv6Header) -> list[Out]:
        l4 = inner[h.upper_offset:]
        if h.proto != pk.PROTO_ICMPV6 or not l4 or l4[0] != 134:
            return self.drop("server sent something other than a router advertisement")
        prefix = _prefix_option(l4[16:])
        if prefix is None or prefix.prefixlen != 64 or not prefix.subnet_of(TEREDO_PREFIX):
            return self.drop("router advertisement without a Teredo prefix")
        port, mapped = indication
        self.address = TeredoAddress(self.server, self.flags, port, mapped)
        self.events.append({"qualified": str(self.address.address())})
        return []

    def from_tun(self, packet: bytes) -> list[Out]:
        if self.address is None:
            return self.drop("not qualified yet")
        try:
            h = pk.parse_ipv6(packet)
        except PacketError as exc:
            return self.drop(str(exc))
        if len(packet) > TEREDO_MTU:
            self.drops["too big for Teredo"] += 1
            if pk.must_not_answer6(packet):
                return []
            return [Out(TUN, pk.icmp6_error(self.address.address().packed, packet, 2, 0, TEREDO_MTU))]
        dst = IPv6Address(h.dst)
        if dst in TEREDO_PREFIX:
            peer = TeredoAddress.parse(dst)
            return [Out(UDP, packet, (peer.client.packed, peer.port))]
        return [Out(UDP, packet, (self.relay[0].packed, self.relay[1]))]


def _prefix_option(options: bytes) -> IPv6Network | None:
    i = 0
    while i + 2 <= len(options):
        kind, size = options[i], options[i + 1] * 8
        if size == 0:
            return None
        if kind == 3 and size == 32 and i + 32 <= len(options):
            length = options[i + 2]
            value = int.from_bytes(options[i + 16:i + 32], "big")
            try:
                return IPv6Network((value, length))
            except ValueError:
                return None
        i += size
    return None


class TeredoServer(Endpoint):
    """Answers qualification: who you look like from here (origin indication) and the prefix."""
    mechanism, role = "teredo", "server"

    def __init__(self, own4: IPv4Address, port: int = TEREDO_PORT):
        super().__init__()
        self.prefix = IPv6Network((int(TEREDO_PREFIX.network_address) | (int(own4) << 64), 64))
        self.socket = Socket(UDP, port)

    def from_net(self, packet: bytes, source) -> list[Out]:
        unwrapped = _unwrap(self, packet)
        if unwrapped is None:
            return []
        h, inner = unwrapped
        l4 = inner[h.upper_offset:]
        if h.proto != pk.PROTO_ICMPV6 or len(l4) < 8 or l4[0] != 133:
            return self.drop("not a router solicitation")
        if pk.ones_sum(pk.pseudo6(h.src, h.dst, pk.PROTO_ICMPV6, len(l4)), l4) != 0:
            return self.drop("bad ICMPv6 checksum")
        if not IPv6Address(h.src).is_link_local:
            return self.drop("solicitation not from a link-local address")
        addr, port = IPv4Address(source[0]), source[1]
        reply = origin_indication(port, addr) + router_advertisement(h.src, self.prefix)
        return [Out(UDP, reply, source)]


class TeredoRelay(Endpoint):
    """Between Teredo clients and native IPv6 (its TUN device): forwards a client's packets after the
    source check, and native packets for a Teredo address to the mapping that address embeds."""
    mechanism, role = "teredo", "relay"

    def __init__(self, port: int = TEREDO_PORT, mtu: int = TEREDO_MTU, own6: IPv6Address | None = None):
        super().__init__()
        self.mtu, self.own6 = mtu, own6
        self.socket = Socket(UDP, port)

    def from_net(self, packet: bytes, source) -> list[Out]:
        unwrapped = _unwrap(self, packet)
        if unwrapped is None:
            return []
        h, inner = unwrapped
        if _is_bubble(h):
            return self.drop("bubble")
        src = IPv6Address(h.src)
        if src not in TEREDO_PREFIX:
            return self.drop("source is not a Teredo address")
        peer = TeredoAddress.parse(src)
        if (peer.client.packed, peer.port) != (source[0], source[1]):
            return self.drop("Teredo source not sent from the address and port it embeds (spoofed)")
        return [Out(TUN, inner[:40 + h.payload_length])]

    def from_tun(self, packet: bytes) -> list[Out]:
        try:
            h = pk.parse_ipv6(packet)
        except PacketError as exc:
            return self.drop(str(exc))
        dst = IPv6Address(h.dst)
        if dst not in TEREDO_PREFIX:
            return self.drop("destination is not a Teredo address")
        if len(packet) > self.mtu:
            self.drops["too big for Teredo"] += 1
            if self.own6 is None or pk.must_not_answer6(packet):
                return []
            return [Out(TUN, pk.icmp6_error(self.own6.packed, packet, 2, 0, self.mtu))]
        peer = TeredoAddress.parse(dst)
        return [Out(UDP, packet[:40 + h.payload_length], (peer.client.packed, peer.port))]
