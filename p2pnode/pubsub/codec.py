"""GossipSub RPCs on the wire: typed ``RPC`` <-> libp2p's protobuf ``RPC``; length-prefixed frames.

The schema is ``pb/rpc.proto`` (libp2p/specs ``pubsub/README.md`` and ``pubsub/gossipsub/``). It is proto2,
so a field is on the wire exactly when it is set. Which fields we set:

=====================  ============================================================================
typed                  on the wire
=====================  ============================================================================
``SubOpts``            ``subscribe`` and ``topicid`` always
``Message``            ``data`` and ``topic`` always; ``from``, ``seqno``, ``signature``, ``key`` only
                       when not empty (StrictNoSign wants them absent, not empty)
``IHave``/``Graft``    ``topicID`` always; every message ID
``Prune``              ``topicID`` always; ``backoff`` unless None; ``PeerInfo.peerID`` and
                       ``signedPeerRecord`` only when not empty
``RPC.control``        only when the ``Control`` is non-empty (``bool(control)``)
=====================  ============================================================================

Decoding reads an absent ``subscribe`` as False, an absent optional topic ID or bytes field as empty, an
absent ``backoff`` as None and an absent or empty ``ControlMessage`` as None. ``Message.topic`` is required:
a message without one is malformed. IDONTWANT (gossipsub v1.2) is parsed and dropped: we speak v1.1.

A decoded RPC re-encodes to the same typed value, but not always to the bytes received: a peer may have
written empty fields we leave out, left out ``data``, or sent fields we drop (IDONTWANT, unknown fields).
That matters for signatures: see ``signing_payload``.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from p2pnode import framing
from p2pnode.framing import CodecError, encode_uvarint, varint_len
from p2pnode.pubsub.messages import (
    RPC,
    Control,
    Graft,
    IHave,
    IWant,
    Message,
    PeerExchange,
    Prune,
    SubOpts,
)
from p2pnode.pubsub.pb import rpc_pb2

__all__ = [
    "MAX_FRAME_SIZE",
    "MAX_MESSAGE_SIZE",
    "FRAME_OVERHEAD",
    "SIGNING_PREFIX",
    "CodecError",
    "FrameReader",
    "decode",
    "default_message_id",
    "encode",
    "encoded_size",
    "framed_size",
    "message_size",
    "signing_payload",
    "sizes",
    "write_frame",
]

MAX_MESSAGE_SIZE = 1 << 20
"""The spec's suggested limit on a published message (pubsub/README.md, "The Message"): 1 MiB."""

FRAME_OVERHEAD = 64 * 1024
"""Room in a frame for the RPC around a full-size message: its own fields, subscriptions, piggybacked control."""

MAX_FRAME_SIZE = MAX_MESSAGE_SIZE + FRAME_OVERHEAD
"""Default largest frame body ``FrameReader`` accepts: a full-size message and the RPC around it."""

SIGNING_PREFIX = b"libp2p-pubsub:"
"""Prepended to the marshalled ``Message`` before signing (pubsub/README.md, "Message Signing")."""

_MAX_UINT64 = (1 << 64) - 1

# CodecError (from p2pnode.framing, whose uvarint helpers raise it too) is the one exception decoding
# raises: a ValueError for "these bytes are not a valid message or frame".


# ---------------------------------------------------------------------------------------------------------
# Typed -> protobuf


def _utf8(text: str, where: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CodecError(f"{where} {text!r} is not encodable as UTF-8") from exc


def _check_backoff(backoff: int) -> None:
    if not 0 <= backoff <= _MAX_UINT64:
        raise CodecError(f"PRUNE backoff {backoff} is not a uint64")


def _message_to_pb(msg: Message, pb: rpc_pb2.Message, *, signed: bool = True) -> None:
    """Fill ``pb``; with ``signed=False`` leave out ``signature`` and ``key``."""
    if msg.source:
        setattr(pb, "from", msg.source)  # `from` is a Python keyword
    pb.data = msg.data
    if msg.seqno:
        pb.seqno = msg.seqno
    _utf8(msg.topic, "topic")
    pb.topic = msg.topic
    if signed:
        if msg.signature:
            pb.signature = msg.signature
        if msg.key:
            pb.key = msg.key


def _control_to_pb(control: Control, pb: rpc_pb2.ControlMessage) -> None:
    for ihave in control.ihave:
        _utf8(ihave.topic, "IHAVE topic")
        pb.ihave.add(topicID=ihave.topic, messageIDs=ihave.message_ids)
    for iwant in control.iwant:
        pb.iwant.add(messageIDs=iwant.message_ids)
    for graft in control.graft:
        _utf8(graft.topic, "GRAFT topic")
        pb.graft.add(topicID=graft.topic)
    for prune in control.prune:
        _utf8(prune.topic, "PRUNE topic")
        prune_pb = pb.prune.add(topicID=prune.topic)
        for peer in prune.peers:
            peer_pb = prune_pb.peers.add()
            if peer.peer_id:
                peer_pb.peerID = peer.peer_id
            if peer.signed_peer_record:
                peer_pb.signedPeerRecord = peer.signed_peer_record
        if prune.backoff is not None:
            _check_backoff(prune.backoff)
            prune_pb.backoff = prune.backoff


def encode(rpc: RPC) -> bytes:
    """The protobuf ``RPC`` bytes (without the length prefix; see ``write_frame``)."""
    if not isinstance(rpc, RPC):
        raise TypeError(f"not a pubsub RPC: {rpc!r}")
    pb = rpc_pb2.RPC()
    for sub in rpc.subscriptions:
        _utf8(sub.topic, "subscription topic")
        pb.subscriptions.add(subscribe=sub.subscribe, topicid=sub.topic)
    for msg in rpc.publish:
        _message_to_pb(msg, pb.publish.add())
    if rpc.control:
        _control_to_pb(rpc.control, pb.control)
    return pb.SerializeToString(deterministic=True)


def signing_payload(msg: Message) -> bytes:
    """The bytes a StrictSign signature covers: ``b"libp2p-pubsub:"`` + the marshalled ``Message`` without
    its ``signature`` and ``key`` fields.

    The spec text says only "excluding the signature field", but the reference implementations (go- and
    rust-libp2p) sign before attaching the key and clear both fields to verify; so do we. The payload is
    our own encoding of ``msg``: a peer that wrote a field we leave out (an empty ``from``, no ``data``)
    signed bytes we cannot reproduce, and its signature will not verify here.
    """
    pb = rpc_pb2.Message()
    _message_to_pb(msg, pb, signed=False)
    return SIGNING_PREFIX + pb.SerializeToString(deterministic=True)


def default_message_id(msg: Message) -> bytes:
    """The spec's default message ID: ``from`` concatenated with ``seqno`` (origin stamping)."""
    return msg.source + msg.seqno


# ---------------------------------------------------------------------------------------------------------
# Protobuf -> typed


def _text(value: str | bytes, where: str) -> str:
    # For proto2 strings the upb runtime does not validate UTF-8: it hands back the raw bytes, not a str.
    # Other runtimes may decode invalid UTF-8 with surrogateescape; lone surrogates do not re-encode.
    if isinstance(value, str) and (value.isascii() or _is_utf8(value)):
        return value
    raise CodecError(f"{where} is not valid UTF-8")


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")  # lone surrogates (surrogateescape'd bytes) do not encode
    except UnicodeEncodeError:
        return False
    return True


def _message_from_pb(pb: rpc_pb2.Message) -> Message:
    if not pb.HasField("topic"):
        raise CodecError("published message has no topic")
    return Message(
        source=getattr(pb, "from"),
        data=pb.data,
        seqno=pb.seqno,
        topic=_text(pb.topic, "message topic"),
        signature=pb.signature,
        key=pb.key,
    )


def _control_from_pb(pb: rpc_pb2.ControlMessage) -> Control | None:
    control = Control(
        ihave=tuple(IHave(_text(i.topicID, "IHAVE topic"), tuple(i.messageIDs)) for i in pb.ihave),
        iwant=tuple(IWant(tuple(i.messageIDs)) for i in pb.iwant),
        graft=tuple(Graft(_text(g.topicID, "GRAFT topic")) for g in pb.graft),
        prune=tuple(
            Prune(
                topic=_text(p.topicID, "PRUNE topic"),
                peers=tuple(PeerExchange(peer.peerID, peer.signedPeerRecord) for peer in p.peers),
                backoff=p.backoff if p.HasField("backoff") else None,
            )
            for p in pb.prune
        ),
    )
    return control if control else None  # nothing (or only IDONTWANT) in it


def decode(data: bytes) -> RPC:
    """Parse one protobuf ``RPC``. Raises ``CodecError`` (and nothing else) for anything malformed."""
    try:
        pb = rpc_pb2.RPC.FromString(bytes(data))
    except DecodeError as exc:
        raise CodecError(f"not a pubsub protobuf RPC: {exc}") from exc
    except UnicodeDecodeError as exc:  # the pure-Python protobuf runtime checks UTF-8 while parsing
        raise CodecError(f"a string field is not valid UTF-8: {exc}") from exc
    # upb checks neither UTF-8 nor proto2's `required` here: _text and _message_from_pb do.
    return RPC(
        subscriptions=tuple(
            SubOpts(subscribe=s.subscribe, topic=_text(s.topicid, "subscription topic")) for s in pb.subscriptions
        ),
        publish=tuple(_message_from_pb(m) for m in pb.publish),
        control=_control_from_pb(pb.control) if pb.HasField("control") else None,
    )


# ---------------------------------------------------------------------------------------------------------
# Sizes, by arithmetic: the simulator charges every RPC its size, so this must not build protobufs.
# Every field number in rpc.proto is below 16, so every tag is one byte.


def _field(length: int) -> int:
    """A length-delimited field with ``length`` bytes of content: tag, length prefix, content."""
    return 1 + varint_len(length) + length


def _text_len(text: str, where: str) -> int:
    return len(text) if text.isascii() else len(_utf8(text, where))


def message_size(msg: Message) -> int:
    """``len`` of ``msg`` as a marshalled protobuf ``Message`` (its body: without the tag and length
    prefix it has inside an RPC)."""
    size = _field(len(msg.data)) + _field(_text_len(msg.topic, "topic"))
    if msg.source:
        size += _field(len(msg.source))
    if msg.seqno:
        size += _field(len(msg.seqno))
    if msg.signature:
        size += _field(len(msg.signature))
    if msg.key:
        size += _field(len(msg.key))
    return size


def _publish_size(publish: tuple[Message, ...]) -> int:
    return sum([_field(message_size(msg)) for msg in publish])


def _ids_size(message_ids: tuple[bytes, ...]) -> int:
    return sum([_field(len(mid)) for mid in message_ids])


def _prune_size(prune: Prune) -> int:
    size = _field(_text_len(prune.topic, "PRUNE topic"))
    for peer in prune.peers:
        info = _field(len(peer.peer_id)) if peer.peer_id else 0
        if peer.signed_peer_record:
            info += _field(len(peer.signed_peer_record))
        size += _field(info)
    if prune.backoff is not None:
        _check_backoff(prune.backoff)
        size += 1 + varint_len(prune.backoff)
    return size


def _control_size(control: Control | None) -> int:
    """The ``RPC.control`` field, tag and length included; 0 when it is left out."""
    if not control:
        return 0
    size = 0
    for ihave in control.ihave:
        size += _field(_field(_text_len(ihave.topic, "IHAVE topic")) + _ids_size(ihave.message_ids))
    for iwant in control.iwant:
        size += _field(_ids_size(iwant.message_ids))
    for graft in control.graft:
        size += _field(_field(_text_len(graft.topic, "GRAFT topic")))
    for prune in control.prune:
        size += _field(_prune_size(prune))
    return _field(size)


def sizes(rpc: RPC) -> tuple[int, int]:
    """``(data, overhead)``: bytes of the ``publish`` fields, and bytes of everything else (subscriptions
    and control). Each counts its fields' tags and length prefixes; they sum to ``encoded_size(rpc)``."""
    if not isinstance(rpc, RPC):
        raise TypeError(f"not a pubsub RPC: {rpc!r}")
    overhead = 0
    for sub in rpc.subscriptions:
        # SubOpts: subscribe (tag + one-byte bool) and topicid
        overhead += _field(2 + _field(_text_len(sub.topic, "subscription topic")))
    return _publish_size(rpc.publish), overhead + _control_size(rpc.control)


def encoded_size(rpc: RPC) -> int:
    """``len(encode(rpc))``, computed without encoding (and raising what ``encode`` would raise)."""
    data, overhead = sizes(rpc)
    return data + overhead


def framed_size(rpc: RPC) -> int:
    """``len(write_frame(rpc))``: the encoded size plus its varint length prefix."""
    size = encoded_size(rpc)
    return varint_len(size) + size


# ---------------------------------------------------------------------------------------------------------
# Frames: a pubsub stream is a sequence of RPCs, each prefixed with its length as an unsigned varint.


def write_frame(rpc: RPC) -> bytes:
    body = encode(rpc)
    return encode_uvarint(len(body)) + body


class FrameReader(framing.FrameReader):
    """Splits a pubsub stream (varint-prefixed RPCs) into frames and decodes them."""

    def __init__(self, *, max_frame_size: int = MAX_FRAME_SIZE):
        super().__init__(decode, max_frame_size=max_frame_size)
