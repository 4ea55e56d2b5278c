"""Fuzz targets: what a peer sends before and around the application's bytes — multistream-select, the Noise
handshake and transport frames, Yamux frames, and the libp2p TLS certificate (QUIC's handshake).

Contract of each: any bytes end in a value or the module's own error (``TransportError`` and its subclasses
``NegotiationError``, ``HandshakeError``/``CertificateError``, ``NoiseError``); Yamux raises nothing at
all (a bad frame ends the session with a ``ConnectionTerminated`` event). The asynchronous negotiations run
on an in-memory stream whose reads never wait, so each input runs to its end in one step.
"""

from __future__ import annotations

import asyncio
import datetime

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding

from fuzz._keys import ALICE, first_byte_picks
from fuzz._runner import target
from p2pnode.transports import multistream, noise, tls, yamux
from p2pnode.transports.base import TransportError


class MemoryStream:
    """``readexactly``/``write`` over fixed input bytes; reading past their end is the peer closing."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.written = bytearray()

    async def readexactly(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            partial = self.data[self.pos:]
            self.pos = len(self.data)
            raise asyncio.IncompleteReadError(partial, n)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    async def write(self, data: bytes) -> None:
        self.written += data


def run_to_end(coro):
    """Run a coroutine that never waits on anything external: it must finish in its first step."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the negotiation waited for something other than its input")


PROTOCOLS = ("/p2pnode/kad/1.0.0", "/meshsub/1.1.0")


def _multistream_seeds() -> list[bytes]:
    header = multistream.encode_message(multistream.PROTOCOL_ID)
    return [bytes([0]) + header + multistream.encode_message("/x/1") + multistream.encode_message(PROTOCOLS[1]),
            bytes([0]) + header + multistream.encode_message(multistream.LS),
            bytes([1]) + header + multistream.encode_message(multistream.NA) + multistream.encode_message(PROTOCOLS[1]),
            bytes([2]) + header + multistream.encode_message(PROTOCOLS[0])]


@target("multistream", seeds=_multistream_seeds)
def check_multistream(data: bytes) -> None:
    """The responder, the initiator, and the lazy initiator's confirmation, reading the peer's bytes."""
    which, rest = first_byte_picks(data, 3)
    stream = MemoryStream(rest)
    roles = (lambda: multistream.handle(stream, set(PROTOCOLS)), lambda: multistream.select(stream, PROTOCOLS),
             lambda: multistream.confirm(stream, PROTOCOLS[0]))
    try:
        agreed = run_to_end(roles[which]())
    except TransportError:
        return
    assert agreed is None or agreed in PROTOCOLS


_CREDENTIALS = noise.NoiseCredentials(ALICE)
_KEY_A, _KEY_B = bytes(range(32)), bytes(range(32, 64))
_EPHEMERAL = X25519PrivateKey.from_private_bytes(bytes(range(7, 39))).public_key().public_bytes_raw()


def _noise_seeds() -> list[bytes]:
    sender = noise.NoiseCipher(_KEY_B, _KEY_A)
    frames = bytes(sender.encrypt(b"hello")) + bytes(sender.encrypt(b"x" * 100))
    return [bytes([0]) + _CREDENTIALS.static_public + _CREDENTIALS.payload,
            bytes([1]) + _EPHEMERAL + b"\x00\x30" + bytes(48), bytes([2]) + frames,
            bytes([3]) + b"plaintext of a few frames", bytes([4]) + b"\x00\x60" + bytes(96)]


@target("noise", seeds=_noise_seeds)
def check_noise(data: bytes) -> None:
    """The handshake payload (the identity key and its signature), both handshake roles reading the peer's
    messages, and transport frames: raw ones, and valid ones split at every byte (which must give back the
    plaintext)."""
    which, rest = first_byte_picks(data, 5)
    try:
        if which == 0:
            noise.verify_payload(rest[32:], rest[:32])  # the static key the payload signs, then the payload
        elif which in (1, 4):
            # the responder's first message is a 32-byte key: its length prefix is given, not fuzzed
            stream = MemoryStream(b"\x00\x20" + rest if which == 1 else rest)
            run_to_end(noise.handshake(stream, _CREDENTIALS, initiator=which == 4))
        elif which == 2:
            noise.NoiseCipher(_KEY_A, _KEY_B).decrypt(rest)
        else:
            frames = noise.NoiseCipher(_KEY_B, _KEY_A).encrypt(rest)
            receiver = noise.NoiseCipher(_KEY_A, _KEY_B)
            plain = bytearray()
            for at in range(0, len(frames), 5):
                plain += receiver.decrypt(frames[at:at + 5])
            assert plain == rest
    except TransportError:
        pass


def _yamux_seeds() -> list[bytes]:
    client = yamux.YamuxSession(is_client=True)
    stream = client.open_stream()
    client.send_data(stream, b"hello")
    client.ping()
    client.send_fin(stream)
    other = client.open_stream()
    client.reset_stream(other)
    client.go_away()
    frames = client.data_to_send()
    return [bytes([0]) + frames, bytes([1]) + frames[:30]]


@target("yamux", seeds=_yamux_seeds)
def check_yamux(data: bytes) -> None:
    """Frames from the peer, whole and split at every byte: the same events either way."""
    which, rest = first_byte_picks(data, 2)
    whole = yamux.YamuxSession(is_client=bool(which))
    chunked = yamux.YamuxSession(is_client=bool(which))
    expected = whole.receive_data(rest)
    got = []
    for at in range(len(rest)):
        got.extend(chunked.receive_data(rest[at:at + 1]))
    assert got == expected or whole.terminated, (got, expected)
    whole.data_to_send()


_NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def _tls_seeds() -> list[bytes]:
    certificate, _ = tls.make_certificate(ALICE, now=_NOW, validity=datetime.timedelta(days=3650))
    der = certificate.public_bytes(Encoding.DER)
    signed_key = tls.encode_signed_key(b"\x08\x01\x12\x20" + bytes(32), bytes(64))
    return [bytes([0]) + der, bytes([1]) + signed_key]


@target("tls_cert", seeds=_tls_seeds)
def check_tls_cert(data: bytes) -> None:
    """A peer's certificate (DER), and the libp2p extension's SignedKey on its own."""
    which, rest = first_byte_picks(data, 2)
    try:
        if which == 0:
            tls.verify_certificate_chain([rest], now=_NOW)
        else:
            tls.decode_signed_key(rest)
    except tls.CertificateError:
        pass
