"""Ed25519 identities and libp2p peer IDs.

A peer ID is the multihash of the protobuf-encoded public key (libp2p peer-ids spec): Ed25519 keys
serialise to 36 bytes, under the 42-byte limit, so the multihash is the identity one and the text form
(base58btc) starts with ``12D3KooW``. The Kademlia key of a peer is SHA-256 of the peer-ID bytes.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

KEY_TYPE_ED25519 = 1
# protobuf PublicKey{Type=1 (varint, tag 0x08), Data=2 (bytes, tag 0x12)} for a 32-byte Ed25519 key
_ED25519_PROTO_PREFIX = bytes([0x08, KEY_TYPE_ED25519, 0x12, 32])
_MULTIHASH_IDENTITY = 0x00
_MULTIHASH_SHA256 = 0x12


class IdentityError(ValueError):
    """A peer ID or key that cannot be decoded."""


@lru_cache(maxsize=1 << 14)
def kad_key(data: bytes) -> int:
    """The 256-bit Kademlia key of a peer ID or record key: SHA-256, read as a big-endian integer.
    Memoised: one lookup's key is hashed by every peer it asks."""
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def encode_public_key(public_key: bytes) -> bytes:
    """The protobuf ``PublicKey`` of an Ed25519 key (deterministic encoding, as the spec requires)."""
    if len(public_key) != 32:
        raise IdentityError(f"an Ed25519 public key has 32 bytes, not {len(public_key)}")
    return _ED25519_PROTO_PREFIX + public_key


def decode_public_key(proto: bytes) -> bytes:
    """The raw Ed25519 key inside a protobuf ``PublicKey``; other key types are refused."""
    if len(proto) != 36 or proto[:4] != _ED25519_PROTO_PREFIX:
        raise IdentityError("not an Ed25519 PublicKey protobuf")
    return proto[4:]


def peer_id_of_key(proto: bytes) -> PeerId:
    """The peer ID of a protobuf ``PublicKey`` of any key type (peer-ids.md): the identity multihash of the
    serialized key when it has at most 42 bytes (Ed25519), else its sha2-256 multihash (RSA, ECDSA...).
    ``IdentityError`` for bytes that are not a ``PublicKey``. Whether we can check that key's signatures is
    another matter: only Ed25519 ones (``decode_public_key``)."""
    from google.protobuf.message import DecodeError

    from p2pnode.pb import envelope_pb2

    try:
        key = envelope_pb2.PublicKey.FromString(proto)
    except DecodeError as exc:
        raise IdentityError(f"not a PublicKey protobuf: {exc}") from None
    if not (key.HasField("Type") and key.Data):
        raise IdentityError("a PublicKey protobuf needs its Type and Data")
    if len(proto) <= 42:
        return PeerId(bytes([_MULTIHASH_IDENTITY, len(proto)]) + proto)
    return PeerId(bytes([_MULTIHASH_SHA256, 32]) + hashlib.sha256(proto).digest())


class PeerId:
    """A libp2p peer ID: the multihash bytes, with the Kademlia key computed once."""

    __slots__ = ("raw", "kad_id", "_hash", "_text")

    def __init__(self, raw: bytes):
        if len(raw) < 2:
            raise IdentityError("a peer ID multihash needs at least two bytes")
        code, length = raw[0], raw[1]
        if code not in (_MULTIHASH_IDENTITY, _MULTIHASH_SHA256) or length != len(raw) - 2:
            raise IdentityError("peer ID is not an identity or sha2-256 multihash")
        self.raw = bytes(raw)
        self.kad_id = kad_key(self.raw)
        # From the SHA-256 key, not hash(raw): bytes hashes change with PYTHONHASHSEED, and sets of peers
        # must iterate in the same order in every process for a seed to give the same run.
        self._hash = hash(self.kad_id)
        self._text: str | None = None

    @classmethod
    def from_public_key(cls, public_key: bytes) -> PeerId:
        proto = encode_public_key(public_key)
        return cls(bytes([_MULTIHASH_IDENTITY, len(proto)]) + proto)

    @classmethod
    def from_base58(cls, text: str) -> PeerId:
        try:
            raw = base58.b58decode(text)
        except ValueError as exc:
            raise IdentityError(f"peer ID {text!r} is not base58btc") from exc
        return cls(raw)

    def to_base58(self) -> str:
        if self._text is None:  # logs and correlation IDs ask for it on every request
            self._text = base58.b58encode(self.raw).decode("ascii")
        return self._text

    def public_key(self) -> bytes:
        """The Ed25519 key inlined in an identity-multihash peer ID."""
        if self.raw[0] != _MULTIHASH_IDENTITY:
            raise IdentityError("this peer ID hashes its key; the key is not recoverable from it")
        return decode_public_key(self.raw[2:])

    def short(self) -> str:
        """A shortened form for logs: enough to tell peers apart, not the whole identity."""
        text = self.to_base58()
        return f"{text[:4]}…{text[-6:]}"

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, PeerId) and other.raw == self.raw)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"PeerId({self.short()})"

    def __str__(self) -> str:
        return self.to_base58()


class Keypair:
    """An Ed25519 key pair and the peer ID it gives."""

    __slots__ = ("_private", "public_key", "peer_id")

    def __init__(self, private_key: Ed25519PrivateKey):
        self._private = private_key
        self.public_key = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.peer_id = PeerId.from_public_key(self.public_key)

    @classmethod
    def generate(cls) -> Keypair:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Keypair:
        """A key from a 32-byte seed: how the simulator makes reproducible identities."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def to_protobuf(self) -> bytes:
        """The libp2p ``PrivateKey`` protobuf (Type=Ed25519, Data=seed||public key), as key files hold it."""
        return bytes([0x08, KEY_TYPE_ED25519, 0x12, 64]) + self.seed() + self.public_key

    @classmethod
    def from_protobuf(cls, data: bytes) -> Keypair:
        if len(data) != 68 or data[:4] != bytes([0x08, KEY_TYPE_ED25519, 0x12, 64]):
            raise IdentityError("not an Ed25519 PrivateKey protobuf")
        keypair = cls.from_seed(data[4:36])
        if keypair.public_key != data[36:]:
            raise IdentityError("the private key's public half does not match its seed")
        return keypair

    def seed(self) -> bytes:
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)


@lru_cache(maxsize=1 << 16)
def verify(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """Check an Ed25519 signature. Pure, so memoised: in simulation one record reaches many replicas."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
