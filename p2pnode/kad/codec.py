"""Kademlia messages on the wire: typed messages <-> libp2p's protobuf ``Message``; length-prefixed frames.

Mapping onto ``Message`` (``pb/dht.proto``, libp2p kad-dht spec, ``/ipfs/kad/1.0.0``):

=======================  ===============  ==========================================================
message                  type             fields set
=======================  ===============  ==========================================================
FindNode                 FIND_NODE        key
FindNodeResponse         FIND_NODE        closerPeers
GetValue                 GET_VALUE        key
GetValueResponse         GET_VALUE        record (absent when ``record is None``), closerPeers
PutValue                 PUT_VALUE        key = record.key, record
PutValueResponse         PUT_VALUE        stored: key = record.key, record (libp2p echoes the request);
                                          refused (``stored=False``): key only, **no record**, so it
                                          decodes as ``PutValueResponse(None, stored=False)``
AddProvider              ADD_PROVIDER     key, providerPeers = [provider] (exactly one)
GetProviders             GET_PROVIDERS    key
GetProvidersResponse     GET_PROVIDERS    providerPeers, closerPeers
Ping / Pong              PING             nothing else
=======================  ===============  ==========================================================

The type alone cannot tell a request from its response, so ``decode`` is told which one it expects.

A ``DHTRecord`` travels as ``Record{key, value}`` where ``value`` is our ``SignedRecord`` envelope
(``pb/record.proto``): value, publisher (peer-ID bytes), signature, ``ttl_ms`` (the record's ``ttl`` in
seconds, rounded to milliseconds) and version. libp2p nodes accept records only under a namespace they
have a validator for, so these records live under our own key namespace. A record under a namespace that
libp2p defines travels in that namespace's form (``p2pnode.kad.namespaces``): ``/pk/`` records bare, as
``Record{key, value}``; ``/ipns/`` records are refused both ways.

Proto3 leaves out fields that hold their default value (0, empty bytes), and PUT_VALUE is type 0, so a
PUT_VALUE message has no type field at all; ``encoded_size`` follows the same rules.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial

from google.protobuf.message import DecodeError

from p2pnode import framing
from p2pnode.framing import CodecError, encode_uvarint, varint_len
from p2pnode.identity import IdentityError, PeerId
from p2pnode.kad.messages import (
    MESSAGE_TYPE,
    AddProvider,
    ConnectionType,
    DHTRecord,
    FindNode,
    FindNodeResponse,
    GetProviders,
    GetProvidersResponse,
    GetValue,
    GetValueResponse,
    MessageType,
    PeerInfo,
    Ping,
    Pong,
    PutValue,
    PutValueResponse,
    Request,
    Response,
)
from p2pnode.kad.namespaces import is_pk_key, make_pk_record, refuse_unsupported
from p2pnode.kad.pb import dht_pb2, record_pb2
from p2pnode.security.pow import MAX_STAMP
from p2pnode.transports.addresses import readable

KadMessage = Request | Response

FRAME_OVERHEAD = 16 * 1024
"""Room in a frame beside a record's value: the key, signature and publisher, and up to k closer peers."""

MAX_FRAME_SIZE = 64 * 1024 + FRAME_OVERHEAD
"""Default largest frame body ``FrameReader`` accepts: a record of ``KadConfig.max_record_size`` (64 KiB)
and the message around it."""

MAX_TTL_MS = (1 << 50) - 1
"""Largest ``ttl_ms`` we encode or accept. ``ttl`` is a float of seconds: below 2**50 ms, converting
ms -> seconds -> ms gives back the same integer, so a decoded record re-encodes (and verifies) identically.
That is still about 35,000 years."""

SIGNING_PREFIX = b"p2pnode-record:"
"""Domain separation: a record signature can never be mistaken for a signature over anything else."""

_MAX_UINT64 = (1 << 64) - 1


# ---------------------------------------------------------------------------------------------------------
# Records


def _ttl_to_ms(ttl: float) -> int:
    if not math.isfinite(ttl) or ttl < 0:
        raise CodecError(f"record ttl must be a finite, non-negative number of seconds, not {ttl!r}")
    ttl_ms = round(ttl * 1000)
    if ttl_ms > MAX_TTL_MS:
        raise CodecError(f"record ttl {ttl!r} s is longer than the {MAX_TTL_MS} ms we carry")
    return ttl_ms


def _check_version(version: int) -> int:
    if not 0 <= version <= _MAX_UINT64:
        raise CodecError(f"record version {version} is not a uint64")
    return version


def _signed_record_bytes(
    value: bytes, publisher: PeerId, signature: bytes, ttl_ms: int, version: int, stamp: bytes = b""
) -> bytes:
    signed = record_pb2.SignedRecord(
        value=value, publisher=publisher.raw, signature=signature, ttl_ms=ttl_ms, version=version, stamp=stamp
    )
    return signed.SerializeToString(deterministic=True)


def signing_payload(key: bytes, value: bytes, publisher: PeerId, ttl: float, version: int) -> bytes:
    """The bytes a record's signature covers.

    ``b"p2pnode-record:" || uvarint(len(key)) || key || SignedRecord{value, publisher, ttl_ms, version}``,
    the SignedRecord serialised deterministically with its signature field empty (hence absent). The key
    is length-prefixed so that no (key, record) pair shares its payload with another; binding the key
    stops a valid record from being replayed under a different key.
    """
    signed = _signed_record_bytes(value, publisher, b"", _ttl_to_ms(ttl), _check_version(version))
    return SIGNING_PREFIX + encode_uvarint(len(key)) + key + signed


def _is_bare(record: DHTRecord) -> bool:
    """Whether ``record`` travels in libp2p's bare form (a ``/pk/`` record), not in our envelope."""
    if not is_pk_key(record.key):
        return False
    if record.signature or record.stamp:
        raise CodecError("a /pk/ record travels bare: it certifies itself and carries no signature or stamp")
    return True


def _check_record(record: DHTRecord) -> int:
    """Refuse what ``decode`` would refuse, so that every encodable record decodes; returns ttl_ms."""
    refuse_unsupported(record.key)
    if not record.key:
        raise CodecError("a record needs a key")
    if not record.signature:
        raise CodecError("a record needs a signature")
    if len(record.stamp) > MAX_STAMP:
        raise CodecError(f"a record stamp has at most {MAX_STAMP} bytes, not {len(record.stamp)}")
    _check_version(record.version)
    return _ttl_to_ms(record.ttl)


def _record_to_pb(record: DHTRecord, out: dht_pb2.Record) -> None:
    if _is_bare(record):
        out.key, out.value = record.key, record.value
        return
    ttl_ms = _check_record(record)
    out.key = record.key
    out.value = _signed_record_bytes(record.value, record.publisher, record.signature, ttl_ms, record.version,
                                     record.stamp)


def _record_from_pb(pb: dht_pb2.Record) -> DHTRecord:
    if not pb.key:
        raise CodecError("record has no key")
    if not pb.value:
        raise CodecError("record has no value (expected a p2pnode SignedRecord)")
    if is_pk_key(pb.key):  # libp2p's form only: a /pk/ record in our envelope is refused, not served
        return make_pk_record(pb.key, pb.value)
    refuse_unsupported(pb.key)
    try:
        signed = record_pb2.SignedRecord.FromString(pb.value)
    except DecodeError as exc:
        raise CodecError(f"record value is not a SignedRecord: {exc}") from exc
    if not signed.publisher:
        raise CodecError("record has no publisher")
    if not signed.signature:
        raise CodecError("record has no signature")
    if signed.ttl_ms > MAX_TTL_MS:
        raise CodecError(f"record ttl_ms {signed.ttl_ms} exceeds {MAX_TTL_MS}")
    if len(signed.stamp) > MAX_STAMP:
        raise CodecError(f"record stamp of {len(signed.stamp)} bytes; at most {MAX_STAMP}")
    return DHTRecord(
        key=pb.key,
        value=signed.value,
        publisher=_peer_id(signed.publisher, "record publisher"),
        signature=signed.signature,
        ttl=signed.ttl_ms / 1000,
        version=signed.version,
        stamp=signed.stamp,
    )


# ---------------------------------------------------------------------------------------------------------
# Peers


def _peer_id(raw: bytes, where: str) -> PeerId:
    try:
        return _known_peer_id(raw)
    except IdentityError as exc:
        raise CodecError(f"bad peer ID in {where}: {exc}") from exc


@lru_cache(maxsize=65536)
def _known_peer_id(raw: bytes) -> PeerId:
    """Answers name the same few peers again and again; a peer ID costs a SHA-256 to build."""
    return PeerId(raw)


_CONNECTION_TYPES = {int(c): c for c in ConnectionType}
MAX_PUZZLE = 32
"""A dynamic-puzzle solution is XORed with a 256-bit node ID: longer ones are refused."""


def _add_peers(field, peers: tuple[PeerInfo, ...]) -> None:
    for peer in peers:
        pb = field.add()
        pb.id = peer.peer_id.raw
        pb.addrs.extend(peer.addrs)
        pb.connection = peer.connection
        if peer.puzzle:
            pb.puzzle = peer.puzzle


def _peer_from_pb(pb: dht_pb2.Message.Peer, where: str) -> PeerInfo:
    # The connection type is only a hint; an unknown one (proto3 enums are open) tells us nothing.
    connection = _CONNECTION_TYPES.get(pb.connection, ConnectionType.NOT_CONNECTED)
    if len(pb.puzzle) > MAX_PUZZLE:
        raise CodecError(f"a puzzle solution of {len(pb.puzzle)} bytes in {where}; at most {MAX_PUZZLE}")
    # addresses that are not multiaddrs are left out: they would be kept, served to others and fail when printed
    return PeerInfo(_peer_id(pb.id, where), readable(pb.addrs), connection, pb.puzzle)


def _peers_from_pb(field, where: str) -> tuple[PeerInfo, ...]:
    return tuple(_peer_from_pb(pb, where) for pb in field)


# ---------------------------------------------------------------------------------------------------------
# Messages


def encode(message: KadMessage) -> bytes:
    """The protobuf ``Message`` bytes (without the length prefix; see ``write_frame``)."""
    kind = MESSAGE_TYPE.get(type(message))
    if kind is None:
        raise TypeError(f"not a Kademlia message: {message!r}")
    pb = dht_pb2.Message(type=kind)
    match message:
        case FindNode(key=key) | GetValue(key=key) | GetProviders(key=key):
            pb.key = key
        case FindNodeResponse(closer_peers=closer):
            _add_peers(pb.closerPeers, closer)
        case GetValueResponse(record=record, closer_peers=closer):
            if record is not None:
                _record_to_pb(record, pb.record)
            _add_peers(pb.closerPeers, closer)
        case PutValue(record=record):
            pb.key = record.key
            _record_to_pb(record, pb.record)
        case PutValueResponse(record=record, stored=stored):
            if record is not None:
                pb.key = record.key
                if stored:
                    _record_to_pb(record, pb.record)
            elif stored:
                raise CodecError("a PutValueResponse with stored=True must carry the stored record")
        case AddProvider(key=key, provider=provider):
            pb.key = key
            _add_peers(pb.providerPeers, (provider,))
        case GetProvidersResponse(provider_peers=providers, closer_peers=closer):
            _add_peers(pb.providerPeers, providers)
            _add_peers(pb.closerPeers, closer)
        case Ping() | Pong():
            pass
    return pb.SerializeToString(deterministic=True)


def decode(data: bytes, *, response: bool) -> KadMessage:
    """Parse one protobuf ``Message``; ``response`` says whether it answers a request of ours.

    Raises ``CodecError`` (and nothing else) for anything malformed.
    """
    try:
        pb = dht_pb2.Message.FromString(bytes(data))
    except DecodeError as exc:
        raise CodecError(f"not a Kademlia protobuf Message: {exc}") from exc
    try:
        kind = MessageType(pb.type)
    except ValueError:
        raise CodecError(f"unknown Kademlia message type {pb.type}") from None
    return _decode_response(kind, pb) if response else _decode_request(kind, pb)


def _decode_request(kind: MessageType, pb: dht_pb2.Message) -> Request:
    match kind:
        case MessageType.FIND_NODE:
            return FindNode(pb.key)
        case MessageType.GET_VALUE:
            return GetValue(pb.key)
        case MessageType.GET_PROVIDERS:
            return GetProviders(pb.key)
        case MessageType.PUT_VALUE:
            if not pb.HasField("record"):
                raise CodecError("PUT_VALUE request without a record")
            record = _record_from_pb(pb.record)
            # libp2p nodes refuse a PUT whose message key differs from its record's key; so do we.
            if pb.key != record.key:
                raise CodecError("PUT_VALUE key does not match its record's key")
            return PutValue(record)
        case MessageType.ADD_PROVIDER:
            # Implementations announce themselves, one provider per message; we accept nothing else.
            if len(pb.providerPeers) != 1:
                raise CodecError(f"ADD_PROVIDER must carry one provider, not {len(pb.providerPeers)}")
            return AddProvider(pb.key, _peer_from_pb(pb.providerPeers[0], "providerPeers"))
        case MessageType.PING:
            return Ping()
    raise CodecError(f"unhandled request type {kind!r}")  # unreachable while MessageType has six members


def _decode_response(kind: MessageType, pb: dht_pb2.Message) -> Response:
    match kind:
        case MessageType.FIND_NODE:
            return FindNodeResponse(_peers_from_pb(pb.closerPeers, "closerPeers"))
        case MessageType.GET_VALUE:
            record = _record_from_pb(pb.record) if pb.HasField("record") else None
            return GetValueResponse(record, _peers_from_pb(pb.closerPeers, "closerPeers"))
        case MessageType.GET_PROVIDERS:
            providers = _peers_from_pb(pb.providerPeers, "providerPeers")
            return GetProvidersResponse(providers, _peers_from_pb(pb.closerPeers, "closerPeers"))
        case MessageType.PUT_VALUE:
            if not pb.HasField("record"):
                return PutValueResponse(None, stored=False)
            record = _record_from_pb(pb.record)
            if pb.key != record.key:
                raise CodecError("PUT_VALUE response key does not match its record's key")
            return PutValueResponse(record, stored=True)
        case MessageType.ADD_PROVIDER:
            raise CodecError("ADD_PROVIDER has no response")
        case MessageType.PING:
            return Pong()
    raise CodecError(f"unhandled response type {kind!r}")  # unreachable while MessageType has six members


# ---------------------------------------------------------------------------------------------------------
# Sizes, by arithmetic: the simulator charges every message its size, so this must not build protobufs.
# All field numbers in dht.proto and record.proto are below 16, so every tag is one byte.


def _bytes_field(length: int) -> int:
    """A length-delimited field that is always written (a repeated element or a sub-message)."""
    return 1 + varint_len(length) + length


def _optional_bytes_field(length: int) -> int:
    """A proto3 singular bytes field: left out when empty."""
    return 1 + varint_len(length) + length if length else 0


def _optional_varint_field(value: int) -> int:
    """A proto3 singular integer/enum field: left out when zero."""
    return 1 + varint_len(value) if value else 0


_TYPE_FIELD = {kind: _optional_varint_field(kind) for kind in MessageType}


def _peer_field(peer: PeerInfo) -> int:
    """Size of one ``closerPeers``/``providerPeers`` element, tag and length included."""
    # keyed on the fields, not the PeerInfo: infos of one peer are equal whatever their addresses
    return _peer_field_size(len(peer.peer_id.raw), peer.addrs, peer.connection, len(peer.puzzle))


@lru_cache(maxsize=1 << 16)
def _peer_field_size(id_len: int, addrs: tuple[bytes, ...], connection: int, puzzle_len: int = 0) -> int:
    size = _bytes_field(id_len)  # never empty: a peer ID has at least two bytes
    for addr in addrs:
        size += _bytes_field(len(addr))  # repeated elements are written even when empty
    size += _optional_varint_field(connection) + _optional_bytes_field(puzzle_len)
    return _bytes_field(size)


# A peer with no addresses (as in simulation) costs only its ID: sizes by ID length, no cache lookup.
_BARE_PEER_FIELD = [_bytes_field(_bytes_field(n)) for n in range(128)]


def _peers_field(peers: tuple[PeerInfo, ...]) -> int:
    bare = _BARE_PEER_FIELD
    return sum([
        _peer_field(p) if p.addrs or p.connection or p.puzzle else bare[len(p.peer_id.raw)]
        for p in peers
    ])


@lru_cache(maxsize=1 << 16)
def _record_field(record: DHTRecord) -> int:
    """Size of the ``Message.record`` field, tag and length included."""
    if _is_bare(record):
        return _bytes_field(_bytes_field(len(record.key)) + _optional_bytes_field(len(record.value)))
    ttl_ms = _check_record(record)
    signed = (
        _optional_bytes_field(len(record.value))
        + _bytes_field(len(record.publisher.raw))
        + _bytes_field(len(record.signature))  # _check_record made sure it is not empty
        + _optional_varint_field(ttl_ms)
        + _optional_varint_field(record.version)
        + _optional_bytes_field(len(record.stamp))
    )
    return _bytes_field(_bytes_field(len(record.key)) + _bytes_field(signed))


def _key_message_size(message: FindNode | GetValue | GetProviders) -> int:
    return _TYPE_FIELD[MESSAGE_TYPE[type(message)]] + _optional_bytes_field(len(message.key))


def _put_value_response_size(message: PutValueResponse) -> int:
    if message.record is None:
        if message.stored:
            raise CodecError("a PutValueResponse with stored=True must carry the stored record")
        return 0  # type PUT_VALUE is 0, so nothing at all is written
    size = _optional_bytes_field(len(message.record.key))
    return size + _record_field(message.record) if message.stored else size


_SIZERS = {
    FindNode: _key_message_size,
    GetValue: _key_message_size,
    GetProviders: _key_message_size,
    FindNodeResponse: lambda m: _TYPE_FIELD[MessageType.FIND_NODE] + _peers_field(m.closer_peers),
    GetValueResponse: lambda m: (
        _TYPE_FIELD[MessageType.GET_VALUE]
        + (_record_field(m.record) if m.record is not None else 0)
        + _peers_field(m.closer_peers)
    ),
    PutValue: lambda m: _optional_bytes_field(len(m.record.key)) + _record_field(m.record),
    PutValueResponse: _put_value_response_size,
    AddProvider: lambda m: (
        _TYPE_FIELD[MessageType.ADD_PROVIDER] + _optional_bytes_field(len(m.key)) + _peer_field(m.provider)
    ),
    GetProvidersResponse: lambda m: (
        _TYPE_FIELD[MessageType.GET_PROVIDERS] + _peers_field(m.provider_peers) + _peers_field(m.closer_peers)
    ),
    Ping: lambda m: _TYPE_FIELD[MessageType.PING],
    Pong: lambda m: _TYPE_FIELD[MessageType.PING],
}


def encoded_size(message: KadMessage) -> int:
    """``len(encode(message))``, computed without encoding (and raising what ``encode`` would raise)."""
    sizer = _SIZERS.get(type(message))
    if sizer is None:
        raise TypeError(f"not a Kademlia message: {message!r}")
    return sizer(message)


def framed_size(message: KadMessage) -> int:
    """``len(write_frame(message))``: the encoded size plus its varint length prefix."""
    size = encoded_size(message)
    return varint_len(size) + size


# ---------------------------------------------------------------------------------------------------------
# Frames: every message on a stream is prefixed with its length as an unsigned varint.


def write_frame(message: KadMessage) -> bytes:
    body = encode(message)
    return encode_uvarint(len(body)) + body


class FrameReader(framing.FrameReader):
    """Splits a Kademlia stream into frames and decodes them (requests, or responses with ``response``)."""

    def __init__(self, *, response: bool, max_frame_size: int = MAX_FRAME_SIZE):
        super().__init__(partial(decode, response=response), max_frame_size=max_frame_size)
        self.response = response
