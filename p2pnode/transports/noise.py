"""noise-libp2p (``/noise``): the ``Noise_XX_25519_ChaChaPoly_SHA256`` handshake and secure channel.

libp2p specs ``noise/README.md``. Every message on the wire, handshake or transport, is a 2-byte big-endian
length and at most 65535 bytes of Noise message. The XX handshake runs

    -> e
    <- e, ee, s, es   + the responder's payload
    -> s, se          + the initiator's payload

where a payload is a protobuf ``NoiseHandshakePayload``: the sender's libp2p identity key and that key's
signature over ``"noise-libp2p-static-key:" + the sender's static X25519 public key``. Each side checks the
signature against the static key the handshake authenticated, so the static key is bound to the peer ID.
Extensions (early stream-muxer negotiation, WebTransport certificate hashes) are ignored: Yamux is
negotiated with multistream-select after the handshake, as py-libp2p does.

The handshake uses the ``noiseprotocol`` package. The transport phase calls ``cryptography``'s
ChaCha20-Poly1305 directly with the keys the handshake derived (nonce = 4 zero bytes + the 8-byte
little-endian message counter, empty associated data, exactly as Noise's ``CipherState`` does): it encrypts
into one preallocated buffer per write, without noiseprotocol's per-message checks and copies.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from typing import Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_der_public_key,
)
from google.protobuf.message import DecodeError
from noise.connection import Keypair as NoiseKeypair
from noise.connection import NoiseConnection

from p2pnode.framing import CodecError, decode_uvarint
from p2pnode.identity import Keypair, PeerId, encode_public_key
from p2pnode.transports.base import HandshakeError, TransportError
from p2pnode.transports.pb import noise_pb2

PROTOCOL_ID = "/noise"
NOISE_PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
SIGNATURE_PREFIX = b"noise-libp2p-static-key:"
MAX_MESSAGE = 65535
"""Largest Noise message (the 2-byte length prefix cannot say more)."""
TAG_SIZE = 16
MAX_PLAINTEXT = MAX_MESSAGE - TAG_SIZE
_DH_SIZE = 32
_MAX_NONCE = 2**64 - 1  # reserved by Noise: a session must end before it

_LENGTH = struct.Struct(">H")
_NONCE = struct.Struct("<4xQ")

# libp2p PublicKey.Type
_KEY_RSA = 0
_KEY_ED25519 = 1
_KEY_SECP256K1 = 2
_KEY_ECDSA = 3
_MAX_IDENTITY_INLINE = 42  # keys up to this size are inlined in the peer ID (identity multihash)


class NoiseError(TransportError):
    """A transport message that does not decrypt or is malformed: the connection must be dropped."""


class RawStream(Protocol):
    async def readexactly(self, n: int) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


class NoiseCredentials:
    """A host's Noise static key and the handshake payload that binds it to the host's identity.

    The spec lets the static key live as long as we like (it is authenticated by the identity key each
    time); one per transport saves a signature per handshake.
    """

    def __init__(self, keypair: Keypair):
        self.keypair = keypair
        static = X25519PrivateKey.generate()
        self.static_private = static.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        self.static_public = static.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        payload = noise_pb2.NoiseHandshakePayload(
            identity_key=encode_public_key(keypair.public_key),
            identity_sig=keypair.sign(SIGNATURE_PREFIX + self.static_public),
        )
        self.payload = payload.SerializeToString()


# ---- identities ------------------------------------------------------------------------------------------


def _parse_public_key(proto: bytes) -> tuple[int, bytes]:
    """``(type, data)`` of a protobuf ``PublicKey{Type=1 enum, Data=2 bytes}``."""
    key_type: int | None = None
    data: bytes | None = None
    pos = 0
    try:
        while pos < len(proto):
            tag, pos = decode_uvarint(proto, pos)
            if tag == 0x08:
                key_type, pos = decode_uvarint(proto, pos)
            elif tag == 0x12:
                size, pos = decode_uvarint(proto, pos)
                if pos + size > len(proto):
                    raise HandshakeError("truncated identity key")
                data, pos = proto[pos : pos + size], pos + size
            else:
                raise HandshakeError(f"unexpected field (tag {tag}) in the identity key")
    except CodecError as exc:
        raise HandshakeError(f"malformed identity key: {exc}") from exc
    if key_type is None or data is None:
        raise HandshakeError("identity key lacks its type or data")
    return key_type, data


def _verify_signature(key_type: int, key_data: bytes, signature: bytes, message: bytes) -> bool:
    """libp2p signing rules (peer-ids spec): Ed25519 signs the message; RSA (PKCS#1 v1.5), secp256k1 and
    ECDSA sign its SHA-256."""
    try:
        if key_type == _KEY_ED25519:
            if len(key_data) != 32:
                return False
            Ed25519PublicKey.from_public_bytes(key_data).verify(signature, message)
        elif key_type == _KEY_SECP256K1:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), key_data)
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif key_type in (_KEY_RSA, _KEY_ECDSA):
            loaded = load_der_public_key(key_data)
            if key_type == _KEY_RSA and isinstance(loaded, rsa.RSAPublicKey):
                if loaded.key_size < 2048:
                    return False
                loaded.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            elif key_type == _KEY_ECDSA and isinstance(loaded, ec.EllipticCurvePublicKey):
                loaded.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            else:
                return False
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def peer_id_of_key(proto: bytes) -> PeerId:
    """The peer ID of a protobuf ``PublicKey``: inlined (identity multihash) up to 42 bytes, else SHA-256."""
    if len(proto) <= _MAX_IDENTITY_INLINE:
        return PeerId(bytes([0x00, len(proto)]) + proto)
    return PeerId(bytes([0x12, 32]) + hashlib.sha256(proto).digest())


def verify_payload(payload: bytes, remote_static: bytes) -> PeerId:
    """The peer a handshake payload authenticates for ``remote_static``, or ``HandshakeError``."""
    try:
        message = noise_pb2.NoiseHandshakePayload.FromString(payload)
    except DecodeError as exc:
        raise HandshakeError(f"malformed Noise handshake payload: {exc}") from exc
    if not message.identity_key or not message.identity_sig:
        raise HandshakeError("Noise handshake payload lacks the identity key or its signature")
    key_type, key_data = _parse_public_key(message.identity_key)
    if not _verify_signature(key_type, key_data, message.identity_sig, SIGNATURE_PREFIX + remote_static):
        raise HandshakeError("the identity signature over the Noise static key is invalid")
    try:
        return peer_id_of_key(message.identity_key)
    except ValueError as exc:
        raise HandshakeError(f"identity key gives no valid peer ID: {exc}") from exc


# ---- the handshake ---------------------------------------------------------------------------------------


async def _read_message(conn: RawStream) -> bytes:
    try:
        size = _LENGTH.unpack(await conn.readexactly(2))[0]
        return await conn.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise HandshakeError("connection closed during the Noise handshake") from exc


async def _write_message(conn: RawStream, message: bytes | bytearray) -> None:
    if len(message) > MAX_MESSAGE:
        raise HandshakeError("Noise handshake message too long")
    await conn.write(_LENGTH.pack(len(message)) + bytes(message))


async def handshake(
    conn: RawStream, credentials: NoiseCredentials, *, initiator: bool, expected_peer: PeerId | None = None
) -> tuple[PeerId, NoiseCipher]:
    """Run the XX handshake on ``conn``; returns the authenticated remote peer and the transport cipher.

    ``expected_peer`` (when dialling a known peer) must be who answers, else ``HandshakeError``.
    """
    state = NoiseConnection.from_name(NOISE_PROTOCOL_NAME)
    if initiator:
        state.set_as_initiator()
    else:
        state.set_as_responder()
    state.set_keypair_from_private_bytes(NoiseKeypair.STATIC, credentials.static_private)
    state.start_handshake()
    # noiseprotocol drops its handshake state once the handshake completes; keep it to read the remote's
    # static key after the last message.
    hs = state.noise_protocol.handshake_state
    try:
        if initiator:
            await _write_message(conn, state.write_message(b""))
            payload = state.read_message(await _read_message(conn))
            remote = verify_payload(bytes(payload), hs.rs.public_bytes)
            if expected_peer is not None and remote != expected_peer:
                raise HandshakeError(f"dialled {expected_peer} but {remote} answered")
            await _write_message(conn, state.write_message(credentials.payload))
        else:
            first = await _read_message(conn)
            if len(first) != _DH_SIZE:  # just the ephemeral key: the spec forbids a payload in message 1
                raise HandshakeError(f"first Noise handshake message has {len(first)} bytes, not {_DH_SIZE}")
            state.read_message(first)
            await _write_message(conn, state.write_message(credentials.payload))
            payload = state.read_message(await _read_message(conn))
            remote = verify_payload(bytes(payload), hs.rs.public_bytes)
            if expected_peer is not None and remote != expected_peer:
                raise HandshakeError(f"expected {expected_peer} but {remote} connected")
    except (HandshakeError, OSError):
        raise
    except Exception as exc:  # noiseprotocol and cryptography raise a variety of errors for bad input
        raise HandshakeError(f"Noise handshake failed: {type(exc).__name__}: {exc}") from exc
    if not state.handshake_finished:
        raise HandshakeError("Noise handshake did not complete")
    protocol = state.noise_protocol
    cipher = NoiseCipher(protocol.cipher_state_encrypt.k, protocol.cipher_state_decrypt.k)
    return remote, cipher


# ---- the transport phase ---------------------------------------------------------------------------------


class NoiseCipher:
    """The two directions of an established Noise session, sans-IO.

    ``encrypt`` turns plaintext of any size into framed transport messages; ``decrypt`` takes ciphertext
    bytes as they arrive (any chunking) and returns the plaintext of the messages they complete.
    """

    def __init__(self, send_key: bytes, recv_key: bytes):
        self._send = ChaCha20Poly1305(send_key)
        self._recv = ChaCha20Poly1305(recv_key)
        self._send_nonce = 0
        self._recv_nonce = 0
        self._inbuf = bytearray()

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytearray:
        """``data`` as length-prefixed transport messages of at most 65535 bytes each."""
        size = len(data)
        if not size:
            return bytearray()
        count = -(-size // MAX_PLAINTEXT)
        if self._send_nonce + count >= _MAX_NONCE:
            raise NoiseError("Noise nonce space exhausted")
        out = bytearray(size + count * (2 + TAG_SIZE))
        view = memoryview(out)
        src = memoryview(data)
        nonce = self._send_nonce
        encrypt_into = self._send.encrypt_into
        pack_nonce = _NONCE.pack
        pos = 0
        for offset in range(0, size, MAX_PLAINTEXT):
            chunk = src[offset : offset + MAX_PLAINTEXT]
            length = len(chunk) + TAG_SIZE
            _LENGTH.pack_into(out, pos, length)
            encrypt_into(pack_nonce(nonce), chunk, None, view[pos + 2 : pos + 2 + length])
            nonce += 1
            pos += 2 + length
        self._send_nonce = nonce
        return out

    def decrypt_message(self, message: bytes | memoryview) -> bytes:
        """One transport message (without its length prefix)."""
        if len(message) < TAG_SIZE:
            raise NoiseError("Noise message shorter than its authentication tag")
        if self._recv_nonce >= _MAX_NONCE:
            raise NoiseError("Noise nonce space exhausted")
        try:
            plaintext = self._recv.decrypt(_NONCE.pack(self._recv_nonce), message, None)
        except InvalidTag as exc:
            raise NoiseError("Noise message failed authentication") from exc
        self._recv_nonce += 1
        return plaintext

    def decrypt(self, data: bytes | bytearray | memoryview) -> bytearray:
        """Plaintext of every message ``data`` completes (messages cut short wait for the next call)."""
        buf = self._inbuf
        if buf:
            buf += data
            source: bytes | bytearray | memoryview = buf
        else:
            source = data
        end = len(source)
        # First find the complete messages, so their plaintext can go into one buffer.
        spans: list[tuple[int, int]] = []
        total = 0
        pos = 0
        while end - pos >= 2:
            length = (source[pos] << 8) | source[pos + 1]
            if pos + 2 + length > end:
                break
            if length < TAG_SIZE:
                raise NoiseError("Noise message shorter than its authentication tag")
            spans.append((pos + 2, length))
            total += length - TAG_SIZE
            pos += 2 + length
        out = bytearray(total)
        if spans:
            if self._recv_nonce + len(spans) >= _MAX_NONCE:
                raise NoiseError("Noise nonce space exhausted")
            view = memoryview(out)
            src = memoryview(source)
            decrypt_into = self._recv.decrypt_into
            pack_nonce = _NONCE.pack
            nonce = self._recv_nonce
            at = 0
            try:
                for start, length in spans:
                    plain = length - TAG_SIZE
                    decrypt_into(pack_nonce(nonce), src[start : start + length], None, view[at : at + plain])
                    nonce += 1
                    at += plain
            except InvalidTag as exc:
                raise NoiseError("Noise message failed authentication") from exc
            finally:
                src.release()
                view.release()
            self._recv_nonce = nonce
        if source is buf:
            del buf[:pos]
        elif pos < end:
            self._inbuf = bytearray(source[pos:])
        return out


class SecureChannel:
    """``readexactly`` / ``write`` over a Noise session on a raw stream, for the multistream-select that
    picks the stream muxer; afterwards ``leftover`` is the plaintext already decrypted but not read."""

    def __init__(self, raw: RawStream, cipher: NoiseCipher):
        self._raw = raw
        self.cipher = cipher
        self._plain = bytearray()

    async def readexactly(self, n: int) -> bytes:
        while len(self._plain) < n:
            try:
                size = _LENGTH.unpack(await self._raw.readexactly(2))[0]
                message = await self._raw.readexactly(size)
            except asyncio.IncompleteReadError as exc:
                partial = bytes(self._plain)
                self._plain.clear()
                raise asyncio.IncompleteReadError(partial, n) from exc
            self._plain += self.cipher.decrypt_message(message)
        data = bytes(self._plain[:n])
        del self._plain[:n]
        return data

    async def write(self, data: bytes) -> None:
        await self._raw.write(bytes(self.cipher.encrypt(data)))

    def leftover(self) -> bytes:
        data = bytes(self._plain)
        self._plain.clear()
        return data
