"""IP multiaddrs read from and built as their binary form.

py-multiaddr 0.2.0 decodes every component's value through a codec module it looks up by name on each call:
``items()`` takes about 70 µs for ``/ip6/…/udp/…/quic-v1/p2p/…``, ``Multiaddr(text)`` 74 µs and
``decapsulate`` 190 µs, against under 1 µs for ``protocols()`` and ``Multiaddr(bytes)``. A node reads the
addresses in every DHT answer and Identify message and makes one for every connection, so a fresh connection
spent milliseconds in them. The shapes transports dial (an IP address, a TCP or UDP port, fixed-size protocols
such as ``quic-v1``, an optional ``/p2p/<id>``) have a fixed binary layout; this module reads and writes
those bytes directly and leaves every other address to the library.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from functools import lru_cache

from multiaddr import Multiaddr
from multiaddr.protocols import protocol_with_name

from p2pnode.framing import CodecError, decode_uvarint, encode_uvarint
from p2pnode.identity import IdentityError, PeerId

# Value sizes in bytes of the protocols read here; None: a varint length comes first.
_SIZES = {"ip4": 4, "ip6": 16, "tcp": 2, "udp": 2, "quic-v1": 0, "p2p": None}
_CODES = {name: protocol_with_name(name).code for name in _SIZES}
_NAMES = {code: name for name, code in _CODES.items()}


def _components(addr: Multiaddr | bytes) -> list[tuple[str, bytes, int]] | None:
    """``(protocol name, value bytes, offset of the component)`` for each component, or None when a protocol
    is not one of those read here (or the bytes end inside a component)."""
    data = addr if isinstance(addr, bytes) else addr.to_bytes()
    out = []
    pos = 0
    try:
        while pos < len(data):
            start = pos
            code, pos = decode_uvarint(data, pos)
            name = _NAMES.get(code)
            if name is None:
                return None
            size = _SIZES[name]
            if size is None:
                size, pos = decode_uvarint(data, pos)
            if pos + size > len(data):
                return None
            out.append((name, data[pos : pos + size], start))
            pos += size
    except CodecError:
        return None
    return out


def parse(addr: bytes | str) -> Multiaddr:
    """A multiaddr from its binary or text form, checked whole: ``ValueError`` for anything that is not one.

    py-multiaddr takes any bytes and fails only when they are read (``str()`` raises), and it reads some
    truncated values as if zero-padded (``04`` as ``/ip4/0.0.0.0``): the binary form must be exactly the
    encoding of the address it decodes to. The shapes read here are checked by their layout alone."""
    if isinstance(addr, str):
        try:
            data = Multiaddr(addr).to_bytes()
        except Exception as exc:  # the library raises a variety of errors for bad text
            raise ValueError(f"not a multiaddr: {addr[:100]!r} ({str(exc)[:200]})") from None
        # the library checks a text value less than the bytes it makes of it (a /p2p/ value that is base58 but
        # not a multihash): the bytes are checked as if they came from a peer
        return parse(data)
    data = bytes(addr)
    if not data:
        raise ValueError("an empty multiaddr")
    parts = _components(data)
    if parts is not None and all(name != "p2p" or _is_peer_id(value) for name, value, _ in parts):
        return Multiaddr(data)
    try:
        text = str(Multiaddr(data))
        canonical = Multiaddr(text).to_bytes()
    except Exception as exc:
        raise ValueError(f"not a binary multiaddr: {data[:64].hex()} ({str(exc)[:200]})") from None
    if canonical != data:
        raise ValueError(f"not a binary multiaddr: {data[:64].hex()} is not the encoding of {text[:200]}")
    return Multiaddr(data)


def readable(addrs: Iterable[bytes]) -> tuple[bytes, ...]:
    """The binary multiaddrs of ``addrs`` that ``parse`` takes, in order: a peer's unreadable ones left out."""
    return tuple(raw for raw in addrs if _is_readable(bytes(raw)))


@lru_cache(maxsize=16384)
def _is_readable(data: bytes) -> bool:
    """Cached: DHT answers name the same addresses again and again (parsing is ~15 µs, a hit ~0.1 µs)."""
    try:
        parse(data)
    except ValueError:
        return False
    return True


def _is_peer_id(raw: bytes) -> bool:
    try:
        PeerId(raw)
    except IdentityError:
        return False
    return True


def ip_endpoint(addr: Multiaddr, transport: str, *tail: str) -> tuple[str, int, PeerId | None]:
    """``(host, port, peer or None)`` of ``/ip4|ip6/<host>/<transport>/<port>/<tail…>[/p2p/<id>]``.

    ``host`` is in the text form ``socket.inet_ntop`` gives (IPv6 compressed). ValueError for any other address."""
    parts = _components(addr)
    names = tuple(name for name, _, _ in parts) if parts else ()
    peer = None
    if names[-1:] == ("p2p",):
        try:
            peer = PeerId(parts[-1][1])
        except IdentityError as exc:
            raise ValueError(f"bad peer ID in {addr}: {exc}") from exc
        names = names[:-1]
    if names[:1] not in (("ip4",), ("ip6",)) or names[1:] != (transport, *tail):
        raise ValueError(f"not a /{transport}{''.join('/' + t for t in tail)} address: {addr}")
    host = socket.inet_ntop(socket.AF_INET6 if names[0] == "ip6" else socket.AF_INET, parts[0][1])
    return host, int.from_bytes(parts[1][1], "big"), peer


def ip_multiaddr(host: str, port: int, transport: str, *tail: str) -> Multiaddr:
    """``/ip4|ip6/<host>/<transport>/<port>/<tail…>`` (a zone index such as ``%eth0`` is dropped)."""
    host = host.split("%", 1)[0]
    family = "ip6" if ":" in host else "ip4"
    data = (
        encode_uvarint(_CODES[family])
        + socket.inet_pton(socket.AF_INET6 if family == "ip6" else socket.AF_INET, host)
        + encode_uvarint(_CODES[transport])
        + port.to_bytes(2, "big")
        + b"".join(encode_uvarint(_CODES[name]) for name in tail)
    )
    return Multiaddr(data)


def without_peer_id(addr: Multiaddr) -> Multiaddr:
    """``addr`` without a trailing ``/p2p/<id>``."""
    parts = _components(addr)
    if parts is not None:
        return Multiaddr(addr.to_bytes()[: parts[-1][2]]) if parts and parts[-1][0] == "p2p" else addr
    try:  # a protocol not read here: the library's slow path
        peer = addr.get_peer_id()
    except Exception:
        peer = None
    return addr.decapsulate(Multiaddr(f"/p2p/{peer}")) if peer else addr


def peer_id_of(addr: Multiaddr) -> PeerId | None:
    """The peer of a trailing ``/p2p/<id>``, or None (also when that ID is not a valid peer ID)."""
    parts = _components(addr)
    try:
        if parts is not None:
            return PeerId(parts[-1][1]) if parts and parts[-1][0] == "p2p" else None
        text = addr.get_peer_id()
        return PeerId.from_base58(text) if text else None
    except Exception:
        return None
