"""Application request/response messages and their wire form.

A request names its protocol and carries opaque bytes; on the wire (one stream per request, after
multistream-select has agreed on the protocol) it is the uvarint-prefixed protocol name and the
uvarint-prefixed payload. A response is a status byte (0 ok, 1 error) and the uvarint-prefixed payload
(the error text on error). Written by hand: libp2p leaves a request-response protocol's framing to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pnode.framing import decode_uvarint, encode_uvarint, varint_len

MAX_PAYLOAD = 1 << 20


@dataclass(frozen=True, slots=True)
class AppRequest:
    protocol: str
    data: bytes


@dataclass(frozen=True, slots=True)
class AppResponse:
    """``error`` is empty on success; "unsupported" when the peer has no handler for the protocol."""

    data: bytes = b""
    error: str = ""


class ReqRespError(ValueError):
    pass


def encode(message: AppRequest | AppResponse) -> bytes:
    if isinstance(message, AppRequest):
        name = message.protocol.encode()
        return encode_uvarint(len(name)) + name + encode_uvarint(len(message.data)) + message.data
    payload = message.error.encode() if message.error else message.data
    return bytes([1 if message.error else 0]) + encode_uvarint(len(payload)) + payload


def _chunk(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = decode_uvarint(data, pos)
    if length > MAX_PAYLOAD or pos + length > len(data):
        raise ReqRespError("truncated or oversized field")
    return data[pos : pos + length], pos + length


def decode(data: bytes, *, response: bool) -> AppRequest | AppResponse:
    try:
        if response:
            if not data or data[0] not in (0, 1):
                raise ReqRespError("bad response status")
            payload, pos = _chunk(data, 1)
            out: AppRequest | AppResponse = (AppResponse(error=payload.decode()) if data[0]
                                            else AppResponse(payload))
        else:
            name, pos = _chunk(data, 0)
            payload, pos = _chunk(data, pos)
            out = AppRequest(name.decode(), payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReqRespError(str(exc)) from exc
    if pos != len(data):
        raise ReqRespError("trailing bytes")
    return out


def encoded_size(message: AppRequest | AppResponse) -> int:
    if isinstance(message, AppRequest):
        name = len(message.protocol.encode())
        return varint_len(name) + name + varint_len(len(message.data)) + len(message.data)
    payload = len(message.error.encode()) if message.error else len(message.data)
    return 1 + varint_len(payload) + payload
