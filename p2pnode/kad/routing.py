"""The k-bucket routing table: pure data, no I/O, no clock of its own.

Bucket ``i`` (1..256) holds peers whose XOR distance to us has bit length ``i``, so bucket 256 covers half
the key space and low buckets our close neighbourhood. Inside a bucket, peers are kept least-recently-seen
first (a dict keeps insertion order; re-inserting moves a peer to the end). A full bucket does not evict:
the newcomer waits in the bucket's replacement cache while the caller checks that the least-recently-seen
peer is still alive (Kademlia's preference for long-lived peers); ``remove`` promotes the newest waiting
replacement.

With a sibling list of size s (S/Kademlia, Baumgart & Mies 2007, section 4.2) the s peers closest to our
own ID are all kept: a newcomer among them whose bucket is full waits in no cache but joins ``overflow``,
which ``closest`` searches too, so a node always knows its whole neighbourhood, the peers that hold
replicas of the keys nearest to it.
"""

from __future__ import annotations

from bisect import bisect_right, insort

from p2pnode.kad.messages import PeerInfo

KEY_BITS = 256


class Bucket:
    __slots__ = ("entries", "seen", "replacements", "last_lookup", "checking")

    def __init__(self) -> None:
        self.entries: dict[int, PeerInfo] = {}       # least recently seen first
        self.seen: dict[int, float] = {}             # when each entry was last heard from
        self.replacements: dict[int, PeerInfo] = {}  # newest last
        self.last_lookup = 0.0                       # when a lookup last covered this bucket
        self.checking = False                        # a liveness check of the oldest entry is under way

    def __len__(self) -> int:
        return len(self.entries)


class RoutingTable:
    def __init__(self, local_id: int, k: int = 20, stale_after: float = 900.0, siblings: int = 0):
        self.local_id = local_id
        self.k = k
        self.sibling_count = siblings
        self.overflow: dict[int, PeerInfo] = {}  # siblings whose full bucket could not take them
        # A full bucket's oldest entry is pinged only if it has not been heard from for this long; a peer
        # seen a moment ago is alive, and pinging it would double the traffic of a busy node.
        self.stale_after = stale_after
        self.buckets: dict[int, Bucket] = {}
        self.peers: dict[int, PeerInfo] = {}  # every entry of every bucket, for closest()
        self._indices: list[int] = []          # the buckets' indices, ascending

    def __len__(self) -> int:
        return len(self.peers) + len(self.overflow)

    def __contains__(self, kad_id: int) -> bool:
        return kad_id in self.peers or kad_id in self.overflow

    def bucket_index(self, kad_id: int) -> int:
        return (kad_id ^ self.local_id).bit_length()

    def update(self, info: PeerInfo, now: float) -> PeerInfo | None:
        """Note that ``info`` was seen alive. Returns a peer whose liveness the caller should check (the
        full bucket's oldest entry, which ``remove`` evicts if it is gone), or None."""
        kad_id = info.peer_id.kad_id
        index = (kad_id ^ self.local_id).bit_length()
        if index == 0:
            return None  # ourselves
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = Bucket()
            insort(self._indices, index)
        entries = bucket.entries
        if entries.pop(kad_id, None) is not None:
            entries[kad_id] = info  # to the back: most recently seen
            bucket.seen[kad_id] = now
            return None
        if len(entries) < self.k:
            entries[kad_id] = info
            bucket.seen[kad_id] = now
            self.peers[kad_id] = info
            if self.overflow:
                self._trim_overflow()
            return None
        if self.sibling_count and self._within_siblings(kad_id, index):
            self.overflow[kad_id] = info
            self._trim_overflow()
            return None
        replacements = bucket.replacements
        replacements.pop(kad_id, None)
        replacements[kad_id] = info
        if len(replacements) > self.k:
            del replacements[next(iter(replacements))]
        oldest = next(iter(entries))
        if bucket.checking or now - bucket.seen[oldest] < self.stale_after:
            return None
        bucket.checking = True
        return entries[oldest]

    def _within_siblings(self, kad_id: int, index: int) -> bool:
        """Whether fewer than s known peers are closer to us than ``kad_id`` (in bucket ``index``)."""
        distance = kad_id ^ self.local_id
        closer = sum(1 for other in self.overflow if other ^ self.local_id < distance)
        limit = self.sibling_count
        for i in self._indices:
            if i > index or closer >= limit:
                break
            entries = self.buckets[i].entries
            closer += len(entries) if i < index else sum(1 for other in entries if other ^ self.local_id < distance)
        return closer < limit

    def _trim_overflow(self) -> None:
        """Drop overflow peers that newer, closer siblings have pushed out of the s closest."""
        while self.overflow:
            farthest = max(self.overflow, key=self.local_id.__xor__)
            if self._within_siblings(farthest, self.bucket_index(farthest)):
                return
            del self.overflow[farthest]

    def siblings(self) -> list[PeerInfo]:
        """The s known peers closest to our own ID, closest first (empty without a sibling list)."""
        return self.closest(self.local_id, self.sibling_count) if self.sibling_count else []

    def check_done(self, info: PeerInfo, alive: bool, now: float) -> None:
        """The result of a liveness check that ``update`` asked for."""
        bucket = self.buckets.get(self.bucket_index(info.peer_id.kad_id))
        if bucket is not None:
            bucket.checking = False
        if alive:
            self.update(info, now)
        else:
            self.remove(info.peer_id.kad_id)

    def remove(self, kad_id: int) -> None:
        """Drop a peer that failed to answer; a sibling waiting in ``overflow`` or else the newest
        replacement, if any, takes its place."""
        index = (kad_id ^ self.local_id).bit_length()
        bucket = self.buckets.get(index)
        if bucket is None:
            return
        bucket.replacements.pop(kad_id, None)
        if self.overflow.pop(kad_id, None) is not None:
            return
        if bucket.entries.pop(kad_id, None) is None:
            return
        del bucket.seen[kad_id]
        del self.peers[kad_id]
        waiting = [other for other in self.overflow if (other ^ self.local_id).bit_length() == index]
        if waiting:
            new_id = min(waiting, key=self.local_id.__xor__)
            bucket.entries = {new_id: self.overflow.pop(new_id), **bucket.entries}
            bucket.seen[new_id] = float("-inf")
            self.peers[new_id] = bucket.entries[new_id]
        elif bucket.replacements:
            new_id, new_info = bucket.replacements.popitem()
            # Promoted peers were seen when they were cached; they go to the front as the oldest.
            bucket.entries = {new_id: new_info, **bucket.entries}
            bucket.seen[new_id] = float("-inf")
            self.peers[new_id] = new_info

    def closest(self, target: int, n: int | None = None, exclude: int | None = None) -> list[PeerInfo]:
        """The ``n`` (default k) known peers closest to ``target`` by XOR distance, closest first,
        leaving out the peer ``exclude`` (a Kademlia ID: a requester never gets itself back).

        Each bucket covers one contiguous range of distances to the target, so whole buckets are taken
        in the order of their ranges until they hold enough peers, and only those are sorted. With
        x = target ^ local, bucket i holds the distances that agree with x above bit i-1 and differ from
        it at bit i-1: below x when bit i-1 of x is set (the higher such a bit, the nearer the range),
        above x otherwise (the lower, the nearer)."""
        n = n or self.k
        need = n
        skip = 0  # the bucket that holds ``exclude``: taking it means taking one peer more
        if exclude is not None and exclude in self.peers:
            skip = (exclude ^ self.local_id).bit_length()
        x = target ^ self.local_id
        top = x.bit_length()
        buckets = self.buckets
        indices = self._indices
        found: list[int] = []
        for pos in range(bisect_right(indices, top) - 1, -1, -1):  # ranges below x, nearest first
            i = indices[pos]
            if (x >> (i - 1)) & 1:
                found += buckets[i].entries
                need += i == skip
                if len(found) >= need:
                    break
        else:
            for i in indices:  # ranges above x, nearest first (no bit of x is set above its top)
                if i > top or not (x >> (i - 1)) & 1:
                    found += buckets[i].entries
                    need += i == skip
                    if len(found) >= need:
                        break
        overflow = self.overflow
        if overflow:
            found += overflow  # near our own ID: the sort below puts them where they belong
        found.sort(key=target.__xor__)
        peers = self.peers
        if overflow:
            return [peers.get(kad_id) or overflow[kad_id] for kad_id in found[: n + 1] if kad_id != exclude][:n]
        if skip:
            return [peers[kad_id] for kad_id in found[: n + 1] if kad_id != exclude][:n]
        return [peers[kad_id] for kad_id in found[:n]]

    def mark_lookup(self, target: int, now: float) -> None:
        """A lookup for ``target`` refreshes the bucket the target falls into."""
        bucket = self.buckets.get((target ^ self.local_id).bit_length())
        if bucket is not None:
            bucket.last_lookup = now
