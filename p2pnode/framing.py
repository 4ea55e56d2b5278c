"""Unsigned varints and varint-length-prefixed frames, shared by the protocols' codecs.

libp2p protocols (Kademlia, pub-sub, request/response) put each protobuf on a stream behind its length as
a multiformats unsigned varint; ``FrameReader`` splits such a stream back into frames however its bytes
were chunked, and hands each to the protocol's decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

MAX_UVARINT_BYTES = 9
"""The multiformats unsigned-varint spec caps varints at 9 bytes (63 bits)."""

T = TypeVar("T")


class CodecError(ValueError):
    """Bytes that are not a valid message or frame, or a message that cannot be encoded."""


def encode_uvarint(value: int) -> bytes:
    if not 0 <= value < 1 << (7 * MAX_UVARINT_BYTES):
        raise CodecError(f"{value} does not fit an unsigned varint")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_uvarint(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """``(value, position after it)``, or None if ``buf`` ends before the varint does."""
    value = 0
    for i in range(MAX_UVARINT_BYTES):
        if pos + i >= len(buf):
            return None
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            # A zero final byte after the first would encode the same value in fewer bytes: the spec
            # forbids that, so that every value has exactly one encoding.
            if byte == 0 and i > 0:
                raise CodecError("varint is not minimally encoded")
            return value, pos + i + 1
    raise CodecError(f"varint is longer than {MAX_UVARINT_BYTES} bytes")


def decode_uvarint(data: bytes | bytearray, pos: int = 0) -> tuple[int, int]:
    """Read one varint at ``pos``: ``(value, position after it)``."""
    result = read_uvarint(data, pos)
    if result is None:
        raise CodecError("truncated varint")
    return result


def varint_len(value: int) -> int:
    """Bytes a (protobuf or multiformats) varint of a non-negative value takes."""
    if value < 0x80:
        return 1
    if value < 0x4000:
        return 2
    if value < 0x200000:
        return 3
    return (value.bit_length() + 6) // 7


class FrameReader(Generic[T]):
    """Splits a stream of varint-prefixed frames and decodes each with ``decode``.

    ``feed`` buffers its bytes at once and returns an iterator over the messages now complete; bytes not
    consumed stay buffered for the next ``feed``. Any ``CodecError`` (oversized frame, malformed varint,
    bad message) leaves the reader unusable: the stream must be reset.
    """

    def __init__(self, decode: Callable[[bytes], T], *, max_frame_size: int):
        self.decode = decode
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[T]:
        self._buffer += data
        return self._messages()

    def close(self) -> None:
        """The stream ended: complain if it ended inside a frame."""
        if self._buffer:
            raise CodecError(f"stream ended inside a frame ({len(self._buffer)} bytes buffered)")

    def _messages(self) -> Iterator[T]:
        while (frame := self._next_frame()) is not None:
            yield self.decode(frame)

    def _next_frame(self) -> bytes | None:
        header = read_uvarint(self._buffer, 0)
        if header is None:
            return None
        length, start = header
        # Refused on the header alone, so a peer cannot make us buffer a body over the limit.
        if length > self.max_frame_size:
            raise CodecError(f"frame of {length} bytes exceeds the {self.max_frame_size}-byte limit")
        end = start + length
        if len(self._buffer) < end:
            return None
        frame = bytes(self._buffer[start:end])
        del self._buffer[:end]
        return frame
