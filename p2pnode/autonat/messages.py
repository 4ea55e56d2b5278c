"""AutoNAT messages as typed objects and their wire forms (each protobuf behind its unsigned-varint length).

v2 (libp2p/specs ``autonat/autonat-v2.md``): on ``/libp2p/autonat/2/dial-request`` the client sends a
``DialRequest`` (addresses in priority order, a nonce); the server may answer ``DialDataRequest`` (pay
``num_bytes`` in ``DialDataResponse`` chunks of at most 4096 bytes before it dials an address not of the
client's IP), then ``DialResponse``. On ``/libp2p/autonat/2/dial-back`` the server sends ``DialBack`` (the
nonce) on a connection of its own to the chosen address and the client answers ``DialBackResponse``.

v1 (``autonat/autonat-v1.md``, ``/libp2p/autonat/1.0.0``): ``Dial`` (peer and addresses), ``DialResponse``
(status, text, the address that worked).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from google.protobuf.message import DecodeError

from p2pnode.framing import CodecError
from p2pnode.identity import IdentityError, PeerId
from p2pnode.pb import autonat_pb2, autonatv2_pb2

V1_PROTOCOL = "/libp2p/autonat/1.0.0"
DIAL_REQUEST_PROTOCOL = "/libp2p/autonat/2/dial-request"
DIAL_BACK_PROTOCOL = "/libp2p/autonat/2/dial-back"
MAX_MESSAGE = 8192  # a DialDataResponse chunk is at most 4096 bytes of data; requests are small
MAX_DIAL_DATA_CHUNK = 4096


class ResponseStatus(IntEnum):  # v2 DialResponse.ResponseStatus
    E_INTERNAL_ERROR = 0
    E_REQUEST_REJECTED = 100
    E_DIAL_REFUSED = 101
    OK = 200


class DialStatus(IntEnum):  # v2
    UNUSED = 0
    E_DIAL_ERROR = 100
    E_DIAL_BACK_ERROR = 101
    OK = 200


class V1Status(IntEnum):
    OK = 0
    E_DIAL_ERROR = 100
    E_DIAL_REFUSED = 101
    E_BAD_REQUEST = 200
    E_INTERNAL_ERROR = 300


@dataclass(frozen=True, slots=True)
class DialRequest:
    addrs: tuple[bytes, ...]
    nonce: int


@dataclass(frozen=True, slots=True)
class DialDataRequest:
    index: int
    num_bytes: int


@dataclass(frozen=True, slots=True)
class DialDataResponse:
    data: bytes


@dataclass(frozen=True, slots=True)
class DialResponse:
    status: ResponseStatus
    index: int = 0
    dial_status: DialStatus = DialStatus.UNUSED


@dataclass(frozen=True, slots=True)
class DialBack:
    nonce: int


@dataclass(frozen=True, slots=True)
class DialBackResponse:
    pass  # its one status is OK


@dataclass(frozen=True, slots=True)
class V1Dial:
    peer: PeerId
    addrs: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class V1DialResponse:
    status: V1Status
    text: str = ""
    addr: bytes = b""


V2Message = DialRequest | DialDataRequest | DialDataResponse | DialResponse


def _parse(cls, data: bytes, what: str):
    if len(data) > MAX_MESSAGE:
        raise CodecError(f"{what} of {len(data)} bytes is over the {MAX_MESSAGE}-byte limit")
    try:
        return cls.FromString(data)
    except DecodeError as exc:
        raise CodecError(f"malformed {what}: {exc}") from None


# ---- v2 --------------------------------------------------------------------------------------------


def encode_v2(message: V2Message) -> bytes:
    pb = autonatv2_pb2.Message()
    if isinstance(message, DialRequest):
        pb.dialRequest.addrs.extend(message.addrs)
        pb.dialRequest.nonce = message.nonce
    elif isinstance(message, DialDataRequest):
        pb.dialDataRequest.SetInParent()
        pb.dialDataRequest.addrIdx = message.index
        pb.dialDataRequest.numBytes = message.num_bytes
    elif isinstance(message, DialDataResponse):
        pb.dialDataResponse.SetInParent()
        pb.dialDataResponse.data = message.data
    else:
        pb.dialResponse.SetInParent()
        pb.dialResponse.status = int(message.status)
        pb.dialResponse.addrIdx = message.index
        pb.dialResponse.dialStatus = int(message.dial_status)
    return pb.SerializeToString()


def decode_v2(data: bytes) -> V2Message:
    pb = _parse(autonatv2_pb2.Message, data, "AutoNAT v2 message")
    kind = pb.WhichOneof("msg")
    if kind == "dialRequest":
        return DialRequest(tuple(pb.dialRequest.addrs), pb.dialRequest.nonce)
    if kind == "dialDataRequest":
        return DialDataRequest(pb.dialDataRequest.addrIdx, pb.dialDataRequest.numBytes)
    if kind == "dialDataResponse":
        if len(pb.dialDataResponse.data) > MAX_DIAL_DATA_CHUNK:
            raise CodecError(f"DialDataResponse of {len(pb.dialDataResponse.data)} bytes is over "
                             f"{MAX_DIAL_DATA_CHUNK}")
        return DialDataResponse(pb.dialDataResponse.data)
    if kind == "dialResponse":
        r = pb.dialResponse
        try:
            return DialResponse(ResponseStatus(r.status), r.addrIdx, DialStatus(r.dialStatus))
        except ValueError:
            # the spec: implementations MUST discard responses with status codes they do not understand
            raise CodecError(f"DialResponse with unknown status {r.status}/{r.dialStatus}") from None
    raise CodecError("AutoNAT v2 message with no message set")


def encode_dial_back(message: DialBack | DialBackResponse) -> bytes:
    if isinstance(message, DialBack):
        return autonatv2_pb2.DialBack(nonce=message.nonce).SerializeToString()
    return autonatv2_pb2.DialBackResponse(status=autonatv2_pb2.DialBackResponse.OK).SerializeToString()


def decode_dial_back(data: bytes) -> DialBack:
    return DialBack(_parse(autonatv2_pb2.DialBack, data, "DialBack").nonce)


def decode_dial_back_response(data: bytes) -> DialBackResponse:
    pb = _parse(autonatv2_pb2.DialBackResponse, data, "DialBackResponse")
    if pb.status != autonatv2_pb2.DialBackResponse.OK:
        raise CodecError(f"DialBackResponse with unknown status {pb.status}")
    return DialBackResponse()


# ---- v1 --------------------------------------------------------------------------------------------


def encode_v1(message: V1Dial | V1DialResponse) -> bytes:
    pb = autonat_pb2.Message()
    if isinstance(message, V1Dial):
        pb.type = autonat_pb2.Message.DIAL
        pb.dial.peer.id = message.peer.raw
        pb.dial.peer.addrs.extend(message.addrs)
    else:
        pb.type = autonat_pb2.Message.DIAL_RESPONSE
        pb.dialResponse.status = int(message.status)
        if message.text:
            pb.dialResponse.statusText = message.text
        if message.addr:
            pb.dialResponse.addr = message.addr
    return pb.SerializeToString()


def decode_v1(data: bytes) -> V1Dial | V1DialResponse:
    pb = _parse(autonat_pb2.Message, data, "AutoNAT v1 message")
    if pb.type == autonat_pb2.Message.DIAL and pb.HasField("dial"):
        try:
            peer = PeerId(pb.dial.peer.id)
        except IdentityError as exc:
            raise CodecError(f"AutoNAT v1 DIAL: bad peer ID: {exc}") from None
        return V1Dial(peer, tuple(pb.dial.peer.addrs))
    if pb.type == autonat_pb2.Message.DIAL_RESPONSE and pb.HasField("dialResponse"):
        r = pb.dialResponse
        try:
            status = V1Status(r.status)
        except ValueError:
            raise CodecError(f"AutoNAT v1 DIAL_RESPONSE with unknown status {r.status}") from None
        return V1DialResponse(status, r.statusText, r.addr)
    raise CodecError("AutoNAT v1 message that is neither a DIAL nor a DIAL_RESPONSE")
