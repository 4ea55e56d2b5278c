"""S/Kademlia's node-ID puzzles (Baumgart & Mies 2007, section 4.1), over our node IDs.

A node's ID is its Kademlia key, SHA-256 of its peer ID, and an Ed25519 peer ID inlines the public key: the
ID is bound to the key, and only the holder of the private key can speak for it.

- static puzzle (``c1``): SHA-256(node ID) must start with ``c1`` zero bits. The ID is a hash of the key,
  so the only way to meet it is to generate key pairs until one does (2**c1 expected): an attacker can no
  longer pick an ID near a victim's key without paying that for every try.
- dynamic puzzle (``c2``): a value X such that SHA-256(node ID xor X) starts with ``c2`` zero bits
  (2**c2 hashes expected, one to check). X travels with the peer's address (``PeerInfo.puzzle``), so the
  cost can be raised later without new keys.

Difficulty 0 turns a puzzle off, for peers (other libp2p implementations) that solve neither.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import lru_cache

from p2pnode.identity import Keypair

MAX_DIFFICULTY = 64  # bits; 2**64 tries is beyond any machine, so a larger value is a typo


def zero_bits(digest: bytes) -> int:
    """How many leading zero bits ``digest`` has."""
    return len(digest) * 8 - int.from_bytes(digest, "big").bit_length()


def _id_bytes(kad_id: int) -> bytes:
    return kad_id.to_bytes(32, "big")


@lru_cache(maxsize=1 << 16)
def static_bits(kad_id: int) -> int:
    """Leading zero bits of SHA-256(node ID). Memoised: every peer is checked on each insert."""
    return zero_bits(hashlib.sha256(_id_bytes(kad_id)).digest())


@lru_cache(maxsize=1 << 16)
def dynamic_bits(kad_id: int, x: bytes) -> int:
    """Leading zero bits of SHA-256(node ID xor X); 0 for an X longer than an ID."""
    if len(x) > 32:
        return 0
    return zero_bits(hashlib.sha256(_id_bytes(kad_id ^ int.from_bytes(x, "big"))).digest())


def solve_static(seed: bytes, c1: int) -> tuple[Keypair, int]:
    """The first key pair, from seeds derived from ``seed``, whose ID meets the static puzzle, and how many
    key pairs it took. The seed itself is tried first (c1 = 0 gives ``Keypair.from_seed(seed)``)."""
    candidate, tries = seed, 1
    while True:
        keypair = Keypair.from_seed(candidate)
        if static_bits(keypair.peer_id.kad_id) >= c1:
            return keypair, tries
        candidate = hashlib.sha256(seed + tries.to_bytes(8, "big")).digest()
        tries += 1


@lru_cache(maxsize=1 << 15)
def solve_dynamic(kad_id: int, c2: int) -> tuple[bytes, int]:
    """The smallest X (as its shortest big-endian bytes) meeting the dynamic puzzle for ``kad_id``, and
    how many hashes it took. c2 = 0 needs no X: ``b""``. Memoised: a simulation's plan and its node solve
    the same puzzle."""
    if c2 <= 0:
        return b"", 0
    sha256 = hashlib.sha256
    limit = 1 << (256 - c2)  # the digest read as an integer must be below this
    x = 0
    while True:
        x += 1
        if int.from_bytes(sha256((kad_id ^ x).to_bytes(32, "big")).digest(), "big") < limit:
            return x.to_bytes((x.bit_length() + 7) // 8, "big"), x


class PuzzleCheck:
    """Whether a peer's ID meets the puzzles at difficulties ``c1`` and ``c2``; refusals counted by
    puzzle ("static", "dynamic")."""

    __slots__ = ("c1", "c2", "refused")

    def __init__(self, c1: int = 0, c2: int = 0):
        if not (0 <= c1 <= MAX_DIFFICULTY and 0 <= c2 <= MAX_DIFFICULTY):
            raise ValueError(f"puzzle difficulties must be between 0 and {MAX_DIFFICULTY} bits")
        self.c1 = c1
        self.c2 = c2
        self.refused: Counter[str] = Counter()

    @property
    def enabled(self) -> bool:
        return bool(self.c1 or self.c2)

    def failure(self, kad_id: int, x: bytes) -> str | None:
        """Which puzzle the ID fails ("static" or "dynamic"), or None if it meets both."""
        if self.c1 and static_bits(kad_id) < self.c1:
            return "static"
        if self.c2 and dynamic_bits(kad_id, x) < self.c2:
            return "dynamic"
        return None

    def admit(self, kad_id: int, x: bytes) -> bool:
        """``failure`` as a yes/no, counting a refusal."""
        failed = self.failure(kad_id, x)
        if failed is None:
            return True
        self.refused[failed] += 1
        return False
