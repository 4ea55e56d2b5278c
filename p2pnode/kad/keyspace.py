"""Keys that land in a chosen part of the key space.

Kademlia keys are SHA-256 of the key bytes, so a bucket refresh cannot pick its target directly: it needs
key bytes whose hash starts with a given prefix. Like go-libp2p's refresh (which ships such a table as
code), we build once a table from every 14-bit prefix to key bytes hashing to it, and refresh only buckets
with a common prefix length below 14 (enough for networks of ~300k nodes; building
the table takes ~160k hashes, a fraction of a second); closer buckets are covered by the lookup for our own ID.
"""

from __future__ import annotations

import hashlib

PREFIX_BITS = 14
MAX_REFRESH_CPL = PREFIX_BITS - 1

_table: list[bytes] | None = None


def _build_table() -> list[bytes]:
    table: list[bytes | None] = [None] * (1 << PREFIX_BITS)
    missing = len(table)
    counter = 0
    sha256 = hashlib.sha256
    while missing:
        key = b"kad-refresh:" + counter.to_bytes(4, "big")
        digest = sha256(key).digest()
        prefix = ((digest[0] << 8) | digest[1]) >> (16 - PREFIX_BITS)
        if table[prefix] is None:
            table[prefix] = key
            missing -= 1
        counter += 1
    return table  # type: ignore[return-value]


def key_with_prefix(target: int, bits: int) -> bytes:
    """Key bytes whose Kademlia key (SHA-256) shares its first ``bits`` (<= 14) bits with ``target``."""
    global _table
    if _table is None:
        _table = _build_table()
    if not 0 <= bits <= PREFIX_BITS:
        raise ValueError(f"can only match up to {PREFIX_BITS} prefix bits")
    return _table[target >> (256 - PREFIX_BITS)]


def refresh_key(local_id: int, cpl: int, random_bits: int) -> bytes:
    """A key whose common prefix with ``local_id`` is exactly ``cpl`` bits (cpl <= 13)."""
    if not 0 <= cpl <= MAX_REFRESH_CPL:
        raise ValueError(f"refresh covers common prefix lengths 0..{MAX_REFRESH_CPL}")
    flip = 1 << (255 - cpl)
    # same first cpl bits as us, the next bit flipped, the rest random
    keep = ~((flip << 1) - 1) & ((1 << 256) - 1)
    target = (local_id & keep) | ((local_id ^ flip) & flip) | (random_bits & (flip - 1))
    return key_with_prefix(target, PREFIX_BITS)
