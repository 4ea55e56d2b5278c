"""Proof of work for DHT writes: a hashcash-style stamp on each record.

The stamp is a nonce N such that SHA-256(payload || N) starts with ``difficulty`` zero bits, where the
payload binds what is written: the record's key, the SHA-256 of its value, its publisher and its version.
Minting takes about 2**difficulty hashes, checking one, so a node that stores records for others makes each
write cost its writer that much: a write storm costs the attacker per record, not the replicas. A republish
of the same version carries the same stamp (nothing to mint again); a new version needs a new one.
"""

from __future__ import annotations

import hashlib

from p2pnode.framing import encode_uvarint
from p2pnode.identity import PeerId

POW_PREFIX = b"p2pnode-pow:"
MAX_STAMP = 16  # bytes: a nonce beyond 2**128 tries is never minted


def stamp_payload(key: bytes, value: bytes, publisher: PeerId, version: int) -> bytes:
    """``b"p2pnode-pow:" || uvarint(len(key)) || key || SHA-256(value) || publisher || version (8 bytes)``."""
    return (POW_PREFIX + encode_uvarint(len(key)) + key + hashlib.sha256(value).digest() + publisher.raw
            + version.to_bytes(8, "big"))


def stamp_bits(payload: bytes, stamp: bytes) -> int:
    """Leading zero bits of SHA-256(payload || stamp); 0 for a stamp longer than ``MAX_STAMP``."""
    if len(stamp) > MAX_STAMP:
        return 0
    digest = hashlib.sha256(payload + stamp).digest()
    return 256 - int.from_bytes(digest, "big").bit_length()


def mint(payload: bytes, difficulty: int) -> tuple[bytes, int]:
    """The first nonce (counting up from 0, as its shortest big-endian bytes) whose stamp meets
    ``difficulty``, and how many hashes that took. Deterministic: the same payload gives the same stamp."""
    if difficulty <= 0:
        return b"", 0
    limit = 1 << (256 - difficulty)
    base = hashlib.sha256(payload)  # the payload is hashed once; each try hashes only the nonce on top
    n = 0
    while True:
        nonce = n.to_bytes((n.bit_length() + 7) // 8, "big")
        h = base.copy()
        h.update(nonce)
        if int.from_bytes(h.digest(), "big") < limit:
            return nonce, n + 1
        n += 1
