"""libp2p signed envelopes (libp2p/specs ``RFC/0002-signed-envelopes.md``): a payload, what type it is, and a
signature over both by the key the envelope carries, scoped to a domain string.

The signature covers ``uvarint(len(domain)) || domain || uvarint(len(payload_type)) || payload_type ||
uvarint(len(payload)) || payload``, never the key; the signer's peer ID is derived from the key. A signature
made for one domain is worthless in another, so each use has its own: signed peer records
(``p2pnode.peer_record``, ``libp2p-peer-record``), circuit relay v2 reservation vouchers
(``libp2p-relay-rsvp``). The payload type is a multicodec code (as the bytes the using spec gives).

Only Ed25519 signatures can be checked here (the key type this node has); an envelope signed with another key
type is refused with an ``EnvelopeError`` that says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from p2pnode.framing import CodecError, encode_uvarint
from p2pnode.identity import IdentityError, Keypair, PeerId, encode_public_key, verify
from p2pnode.pb import envelope_pb2

MAX_SIZE = 8192  # peer records and vouchers are a few hundred bytes; Identify caps its whole message near this


class EnvelopeError(CodecError):
    """An envelope that is malformed, of another domain or payload type, or not validly signed."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """An opened envelope whose signature checked out."""

    signer: PeerId
    public_key: bytes  # the signer's protobuf PublicKey
    payload_type: bytes
    payload: bytes


def signed_bytes(domain: str, payload_type: bytes, payload: bytes) -> bytes:
    """What the envelope's signature covers."""
    out = bytearray()
    for part in (domain.encode(), payload_type, payload):
        out += encode_uvarint(len(part))
        out += part
    return bytes(out)


def seal(keypair: Keypair, domain: str, payload_type: bytes, payload: bytes) -> bytes:
    """The serialized envelope of ``payload``, signed by ``keypair`` for ``domain``."""
    envelope = envelope_pb2.Envelope(
        public_key=envelope_pb2.PublicKey(Type=envelope_pb2.Ed25519, Data=keypair.public_key),
        payload_type=payload_type,
        payload=payload,
        signature=keypair.sign(signed_bytes(domain, payload_type, payload)),
    )
    return envelope.SerializeToString(deterministic=True)


def consume(data: bytes, domain: str, payload_type: bytes) -> Envelope:
    """Open a serialized envelope: check its payload type and its signature for ``domain``. Raises
    ``EnvelopeError`` (and nothing else) when it does not hold."""
    if len(data) > MAX_SIZE:
        raise EnvelopeError(f"envelope of {len(data)} bytes is over {MAX_SIZE}")
    try:
        envelope = envelope_pb2.Envelope.FromString(data)
    except DecodeError as exc:
        raise EnvelopeError(f"not a signed envelope: {exc}") from None
    if not envelope.HasField("public_key"):
        raise EnvelopeError("envelope without a public key")
    if envelope.payload_type != payload_type:
        raise EnvelopeError(f"envelope payload type {envelope.payload_type.hex() or '(none)'} is not "
                            f"{payload_type.hex()}")
    key = envelope.public_key
    if key.Type != envelope_pb2.Ed25519:
        raise EnvelopeError(f"envelope signed with a {envelope_pb2.KeyType.Name(key.Type)} key, which this node "
                            "cannot verify (Ed25519 only)")
    try:
        proto = encode_public_key(key.Data)
    except IdentityError as exc:
        raise EnvelopeError(f"envelope key: {exc}") from None
    if not verify(key.Data, envelope.signature, signed_bytes(domain, envelope.payload_type, envelope.payload)):
        raise EnvelopeError(f"envelope signature does not verify for domain {domain!r}")
    return Envelope(PeerId.from_public_key(key.Data), proto, envelope.payload_type, envelope.payload)
