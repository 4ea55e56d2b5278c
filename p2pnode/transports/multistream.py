"""multistream-select 1.0 (libp2p ``connections/README.md``): agreeing on a protocol for a stream.

Each message is an unsigned-varint length, a UTF-8 string and ``\\n`` (the newline counts in the length).
Both sides first send ``/multistream/1.0.0``; the initiator then proposes protocols one by one and the
responder echoes the one it accepts or answers ``na``. The initiator sends its first proposal right after
the header without waiting (as other implementations do), which saves a round trip.

Works on anything with ``readexactly(n)`` and ``write(data)`` coroutines: a ``Stream``, or a raw TCP
connection before its security handshake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Protocol

from p2pnode.framing import MAX_UVARINT_BYTES, CodecError, encode_uvarint
from p2pnode.transports.base import Stream, TransportError

PROTOCOL_ID = "/multistream/1.0.0"
NA = "na"
LS = "ls"
MAX_MESSAGE = 1024  # protocol IDs are short; anything longer is an attack or garbage
MAX_ATTEMPTS = 32  # proposals a responder entertains on one stream


class NegotiationError(TransportError):
    """No common protocol, or the peer broke multistream-select."""


class ByteStream(Protocol):
    async def readexactly(self, n: int) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


def encode_message(text: str) -> bytes:
    data = text.encode() + b"\n"
    return encode_uvarint(len(data)) + data


async def read_uvarint(stream: ByteStream) -> int:
    """One unsigned varint read byte by byte (minimal encoding enforced)."""
    value = 0
    for i in range(MAX_UVARINT_BYTES):
        byte = (await stream.readexactly(1))[0]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if byte == 0 and i > 0:
                raise CodecError("varint is not minimally encoded")
            return value
    raise CodecError(f"varint is longer than {MAX_UVARINT_BYTES} bytes")


async def read_frame(stream: ByteStream, max_size: int) -> bytes:
    """One varint-length-prefixed frame of at most ``max_size`` bytes. On a ``Stream``, the body must keep
    arriving once its length is known (``Stream.frame_idle_timeout``), or the stream is reset."""
    size = await read_uvarint(stream)
    if size > max_size:
        raise CodecError(f"frame of {size} bytes is over the {max_size}-byte limit")
    if isinstance(stream, Stream):
        return await stream.readexactly(size, stream.frame_idle_timeout)
    return await stream.readexactly(size)


async def read_message(stream: ByteStream) -> str:
    try:
        data = await read_frame(stream, MAX_MESSAGE)
    except CodecError as exc:
        raise NegotiationError(f"bad multistream message: {exc}") from exc
    except asyncio.IncompleteReadError as exc:
        raise NegotiationError("stream ended during protocol negotiation") from exc
    if not data.endswith(b"\n"):
        raise NegotiationError("multistream message does not end with a newline")
    try:
        return data[:-1].decode()
    except UnicodeDecodeError as exc:
        raise NegotiationError("multistream message is not UTF-8") from exc


async def _read_header(stream: ByteStream) -> None:
    header = await read_message(stream)
    if header != PROTOCOL_ID:
        raise NegotiationError(f"peer speaks {header[:64]!r}, not {PROTOCOL_ID}")


async def select(stream: ByteStream, protocols: Sequence[str]) -> str:
    """As initiator: the first of ``protocols`` (in our order of preference) the responder accepts."""
    if not protocols:
        raise ValueError("no protocol to propose")
    await stream.write(encode_message(PROTOCOL_ID) + encode_message(protocols[0]))
    await _read_header(stream)
    for i, protocol in enumerate(protocols):
        if i:
            await stream.write(encode_message(protocol))
        answer = await read_message(stream)
        if answer == protocol:
            return protocol
        if answer != NA:
            raise NegotiationError(f"peer answered {answer[:64]!r} to {protocol!r}")
    raise NegotiationError(f"peer supports none of {', '.join(protocols)}")


async def propose(stream: ByteStream, protocol: str) -> None:
    """Lazy negotiation, first half: send the header and the one protocol we want, read nothing yet."""
    await stream.write(encode_message(PROTOCOL_ID) + encode_message(protocol))


async def confirm(stream: ByteStream, protocol: str) -> None:
    """Lazy negotiation, second half: the responder's header and its acceptance of ``protocol``."""
    await _read_header(stream)
    answer = await read_message(stream)
    if answer != protocol:
        raise NegotiationError(f"peer does not support {protocol}" if answer == NA
                               else f"peer answered {answer[:64]!r} to {protocol!r}")


async def handle(stream: ByteStream, supported: Collection[str]) -> str:
    """As responder: wait for a proposal we support and accept it (``ls`` lists what we support)."""
    await stream.write(encode_message(PROTOCOL_ID))
    await _read_header(stream)
    for _ in range(MAX_ATTEMPTS):
        proposal = await read_message(stream)
        if proposal in supported:
            await stream.write(encode_message(proposal))
            return proposal
        if proposal == LS:
            listing = b"".join(encode_message(p) for p in supported)
            await stream.write(encode_uvarint(len(listing) + 1) + listing + b"\n")
        else:
            await stream.write(encode_message(NA))
    raise NegotiationError(f"peer proposed {MAX_ATTEMPTS} protocols we do not support")
