"""Ground truth the nodes cannot see: which nodes are live and which are truly closest to a key.

XOR-closest sets are aligned blocks of the key space: every key inside the block of keys sharing the
first L bits with the target is closer than every key outside it. So the k closest live keys lie in the
deepest such block holding at least k of them, found by binary search over L on a sorted list.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping

KEY_BITS = 256


def bucket_index(local_id: int, peer_id: int) -> int:
    """The Kademlia bucket a peer falls in, seen from ``local_id``: the bit length of their XOR distance."""
    return (peer_id ^ local_id).bit_length()


def by_bucket(local_id: int, peer_ids: Iterable[int]) -> dict[int, list[int]]:
    """A routing table's peer IDs grouped by bucket index."""
    buckets: dict[int, list[int]] = {}
    for peer_id in peer_ids:
        buckets.setdefault(bucket_index(local_id, peer_id), []).append(peer_id)
    return buckets


class LiveSet:
    def __init__(self) -> None:
        self.ids: list[int] = []  # sorted Kademlia IDs of live nodes
        self.members: set[int] = set()

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, kad_id: int) -> bool:
        return kad_id in self.members

    def add(self, kad_id: int) -> None:
        if kad_id not in self.members:
            self.members.add(kad_id)
            insort(self.ids, kad_id)

    def remove(self, kad_id: int) -> None:
        if kad_id in self.members:
            self.members.discard(kad_id)
            del self.ids[bisect_left(self.ids, kad_id)]

    def count(self, low: int, high: int) -> int:
        """Live IDs in [low, high)."""
        return bisect_left(self.ids, high) - bisect_left(self.ids, low)

    def table_complete(self, local_id: int, buckets: Mapping[int, Iterable[int]], k: int) -> bool:
        """Whether every bucket of a routing table holds min(k, live peers in its range) live peers:
        full where the key space has more than k live peers, complete where it has fewer. ``buckets``: the
        table's peer IDs by bucket index (``bucket_index``; ``by_bucket`` groups a plain list)."""
        members = self.members
        for index in range(KEY_BITS, 0, -1):
            shift = index - 1
            own_block = (local_id >> shift) << shift
            if self.count(own_block, own_block + (1 << shift)) <= 1:
                return True  # nobody live shares a longer prefix with us: no closer bucket to check
            low = ((local_id >> shift) ^ 1) << shift  # the bucket's range: our prefix, bit ``shift`` flipped
            live = self.count(low, low + (1 << shift))
            if live:
                bucket = buckets.get(index)
                have = sum(1 for peer in bucket if peer in members) if bucket is not None else 0
                if have < min(k, live):
                    return False
        return True

    def _block(self, target: int, prefix: int) -> tuple[int, int]:
        shift = KEY_BITS - prefix
        low = (target >> shift) << shift
        ids = self.ids
        return bisect_left(ids, low), bisect_left(ids, low + (1 << shift))

    def closest(self, target: int, k: int, exclude: int | None = None) -> list[int]:
        """The ``k`` live IDs closest to ``target`` (``exclude`` left out), closest first."""
        need = k + (1 if exclude is not None else 0)
        lo, hi = 0, KEY_BITS  # the block at prefix ``lo`` holds >= need ids (prefix 0 is everything)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            start, end = self._block(target, mid)
            if end - start >= need:
                lo = mid
            else:
                hi = mid - 1
        start, end = self._block(target, lo)
        block = [i for i in self.ids[start:end] if i != exclude]
        block.sort(key=target.__xor__)
        return block[:k]
