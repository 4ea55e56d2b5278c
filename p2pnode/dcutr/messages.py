"""DCUtR messages (``/libp2p/dcutr``): ``HolePunch{type CONNECT=100 | SYNC=300, ObsAddrs}``, each behind its
unsigned-varint length. The spec says to refuse messages over 4 KiB."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from p2pnode.framing import CodecError
from p2pnode.pb import holepunch_pb2
from p2pnode.transports.addresses import readable

PROTOCOL = "/libp2p/dcutr"
MAX_MESSAGE = 4096


@dataclass(frozen=True, slots=True)
class HolePunchConnect:
    addrs: tuple[bytes, ...]  # the sender's observed (public) addresses, binary multiaddrs


@dataclass(frozen=True, slots=True)
class HolePunchSync:
    pass


HolePunchMessage = HolePunchConnect | HolePunchSync


def encode(message: HolePunchMessage) -> bytes:
    if isinstance(message, HolePunchConnect):
        pb = holepunch_pb2.HolePunch(type=holepunch_pb2.HolePunch.CONNECT, ObsAddrs=list(message.addrs))
    else:
        pb = holepunch_pb2.HolePunch(type=holepunch_pb2.HolePunch.SYNC)
    return pb.SerializeToString()


def decode(data: bytes) -> HolePunchMessage:
    if len(data) > MAX_MESSAGE:
        raise CodecError(f"hole-punch message of {len(data)} bytes is over the {MAX_MESSAGE}-byte limit")
    try:
        pb = holepunch_pb2.HolePunch.FromString(data)
    except DecodeError as exc:
        raise CodecError(f"malformed hole-punch message: {exc}") from None
    if not pb.HasField("type"):
        raise CodecError("hole-punch message without a (known) type")
    if pb.type == holepunch_pb2.HolePunch.CONNECT:
        return HolePunchConnect(readable(pb.ObsAddrs))  # the ones that are not multiaddrs left out
    return HolePunchSync()
