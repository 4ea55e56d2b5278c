"""Circuit Relay v2 messages (libp2p/specs ``relay/circuit-v2.md``, r3) as typed objects, and their wire form.

Hop (``/libp2p/circuit/relay/0.2.0/hop``, client to relay): ``Reserve`` asks for a slot, ``Connect`` for a
circuit to a peer with a slot; the relay answers either with a ``HopStatus``. Stop (``.../stop``, relay to the
circuit's target): ``StopConnect`` announces who is connecting, and the target answers ``StopStatus``. After an
``OK`` answer to a ``Connect``/``StopConnect`` the stream carries the relayed connection's bytes.

On the wire each message is one ``HopMessage``/``StopMessage`` protobuf behind its unsigned-varint length;
``decode_hop``/``decode_stop`` refuse anything malformed with a ``CodecError`` that names what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from google.protobuf.message import DecodeError

from p2pnode.framing import CodecError
from p2pnode.identity import IdentityError, PeerId
from p2pnode.pb import circuit_pb2
from p2pnode.transports.addresses import readable

HOP_PROTOCOL = "/libp2p/circuit/relay/0.2.0/hop"
STOP_PROTOCOL = "/libp2p/circuit/relay/0.2.0/stop"
MAX_MESSAGE = 4096  # go- and rust-libp2p cap a hop/stop message at 4 KiB (the spec sets no number)


class Status(IntEnum):
    OK = 100
    RESERVATION_REFUSED = 200
    RESOURCE_LIMIT_EXCEEDED = 201
    PERMISSION_DENIED = 202
    CONNECTION_FAILED = 203
    NO_RESERVATION = 204
    MALFORMED_MESSAGE = 400
    UNEXPECTED_MESSAGE = 401


@dataclass(frozen=True, slots=True)
class Limit:
    """What a relayed connection may use: seconds open and bytes each way (0: no limit)."""

    duration: int = 0
    data: int = 0


@dataclass(frozen=True, slots=True)
class Reservation:
    expire: int  # UNIX seconds (UTC)
    addrs: tuple[bytes, ...]  # the relay's public addresses, each ending in /p2p/<relay>
    voucher: bytes = b""  # a signed envelope (p2pnode.relay.voucher)


@dataclass(frozen=True, slots=True)
class Reserve:
    pass


@dataclass(frozen=True, slots=True)
class Connect:
    peer: PeerId
    addrs: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class HopStatus:
    status: Status
    reservation: Reservation | None = None
    limit: Limit | None = None


@dataclass(frozen=True, slots=True)
class StopConnect:
    peer: PeerId  # the circuit's initiator
    limit: Limit | None = None


@dataclass(frozen=True, slots=True)
class StopStatus:
    status: Status


HopMessage = Reserve | Connect | HopStatus
StopMessage = StopConnect | StopStatus


# ---- encoding --------------------------------------------------------------------------------------


def _set_limit(target, limit: Limit | None) -> None:
    if limit is not None:
        target.limit.SetInParent()
        if limit.duration:
            target.limit.duration = limit.duration
        if limit.data:
            target.limit.data = limit.data


def encode_hop(message: HopMessage) -> bytes:
    pb = circuit_pb2.HopMessage()
    if isinstance(message, Reserve):
        pb.type = circuit_pb2.HopMessage.RESERVE
    elif isinstance(message, Connect):
        pb.type = circuit_pb2.HopMessage.CONNECT
        pb.peer.id = message.peer.raw
        pb.peer.addrs.extend(message.addrs)
    else:
        pb.type = circuit_pb2.HopMessage.STATUS
        pb.status = int(message.status)
        if message.reservation is not None:
            r = message.reservation
            pb.reservation.expire = r.expire
            pb.reservation.addrs.extend(r.addrs)
            if r.voucher:
                pb.reservation.voucher = r.voucher
        _set_limit(pb, message.limit)
    return pb.SerializeToString(deterministic=True)


def encode_stop(message: StopMessage) -> bytes:
    pb = circuit_pb2.StopMessage()
    if isinstance(message, StopConnect):
        pb.type = circuit_pb2.StopMessage.CONNECT
        pb.peer.id = message.peer.raw
        _set_limit(pb, message.limit)
    else:
        pb.type = circuit_pb2.StopMessage.STATUS
        pb.status = int(message.status)
    return pb.SerializeToString(deterministic=True)


# ---- decoding --------------------------------------------------------------------------------------


def _parse(cls, data: bytes, what: str):
    if len(data) > MAX_MESSAGE:
        raise CodecError(f"{what} of {len(data)} bytes is over the {MAX_MESSAGE}-byte limit")
    try:
        return cls.FromString(data)
    except DecodeError as exc:
        raise CodecError(f"malformed {what}: {exc}") from None


def _peer(pb, what: str) -> PeerId:
    if not pb.HasField("peer") or not pb.peer.id:
        raise CodecError(f"{what} without a peer")
    try:
        return PeerId(pb.peer.id)
    except IdentityError as exc:
        raise CodecError(f"{what}: bad peer ID: {exc}") from None


def _status(pb, what: str) -> Status:
    if not pb.HasField("status"):
        raise CodecError(f"{what} STATUS without a status")
    try:
        return Status(pb.status)
    except ValueError:
        raise CodecError(f"{what} STATUS with unknown status {pb.status}") from None


def _limit(pb) -> Limit | None:
    return Limit(pb.limit.duration, pb.limit.data) if pb.HasField("limit") else None


def decode_hop(data: bytes) -> HopMessage:
    pb = _parse(circuit_pb2.HopMessage, data, "hop message")
    if not pb.HasField("type"):
        raise CodecError("hop message without a type")
    if pb.type == circuit_pb2.HopMessage.RESERVE:
        return Reserve()
    if pb.type == circuit_pb2.HopMessage.CONNECT:
        return Connect(_peer(pb, "hop CONNECT"), readable(pb.peer.addrs))  # the unreadable ones left out
    if pb.type == circuit_pb2.HopMessage.STATUS:
        reservation = None
        if pb.HasField("reservation"):
            r = pb.reservation
            if not r.HasField("expire"):
                raise CodecError("hop STATUS reservation without an expiry")
            reservation = Reservation(r.expire, readable(r.addrs), r.voucher)
        return HopStatus(_status(pb, "hop"), reservation, _limit(pb))
    raise CodecError(f"hop message of unknown type {pb.type}")


def decode_stop(data: bytes) -> StopMessage:
    pb = _parse(circuit_pb2.StopMessage, data, "stop message")
    if not pb.HasField("type"):
        raise CodecError("stop message without a type")
    if pb.type == circuit_pb2.StopMessage.CONNECT:
        return StopConnect(_peer(pb, "stop CONNECT"), _limit(pb))
    if pb.type == circuit_pb2.StopMessage.STATUS:
        return StopStatus(_status(pb, "stop"))
    raise CodecError(f"stop message of unknown type {pb.type}")
