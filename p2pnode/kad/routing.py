"""The k-bucket routing table: pure data, no I/O, no clock of its own.

Bucket ``i`` (1..256) holds peers whose XOR distance to us has bit length ``i``, so bucket 256 covers half
the key space and low buckets our close neighbourhood. Inside a bucket, peers are kept least-recently-seen
first (a dict keeps insertion order; re-inserting moves a peer to the end). A full bucket does not evict:
the newcomer waits in the bucket's replacement cache while the caller checks that the least-recently-seen
peer is still alive (Kademlia's preference for long-lived peers); ``remove`` promotes the newest waiting
replacement.
"""

from __future__ import annotations

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
    def __init__(self, local_id: int, k: int = 20, stale_after: float = 900.0):
        self.local_id = local_id
        self.k = k
        # A full bucket's oldest entry is pinged only if it has not been heard from for this long; a peer
        # seen a moment ago is alive, and pinging it would double the traffic of a busy node.
        self.stale_after = stale_after
        self.buckets: dict[int, Bucket] = {}
        self.peers: dict[int, PeerInfo] = {}  # every entry of every bucket, for closest()

    def __len__(self) -> int:
        return len(self.peers)

    def __contains__(self, kad_id: int) -> bool:
        return kad_id in self.peers

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
        entries = bucket.entries
        if entries.pop(kad_id, None) is not None:
            entries[kad_id] = info  # to the back: most recently seen
            bucket.seen[kad_id] = now
            return None
        if len(entries) < self.k:
            entries[kad_id] = info
            bucket.seen[kad_id] = now
            self.peers[kad_id] = info
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
        """Drop a peer that failed to answer; the newest replacement, if any, takes its place."""
        bucket = self.buckets.get((kad_id ^ self.local_id).bit_length())
        if bucket is None:
            return
        bucket.replacements.pop(kad_id, None)
        if bucket.entries.pop(kad_id, None) is None:
            return
        del bucket.seen[kad_id]
        del self.peers[kad_id]
        if bucket.replacements:
            new_id, new_info = bucket.replacements.popitem()
            # Promoted peers were seen when they were cached; they go to the front as the oldest.
            bucket.entries = {new_id: new_info, **bucket.entries}
            bucket.seen[new_id] = float("-inf")
            self.peers[new_id] = new_info

    def closest(self, target: int, n: int | None = None, exclude: int | None = None) -> list[PeerInfo]:
        """The ``n`` (default k) known peers closest to ``target`` by XOR distance, closest first,
        leaving out the peer ``exclude`` (a Kademlia ID: a requester never gets itself back).

        Each bucket covers one contiguous range of distances to the target: for x = target ^ local,
        bucket i holds distances from ((x >> (i-1)) ^ 1) << (i-1), 2^(i-1) of them. So buckets are
        taken in the order of their ranges and only as many are sorted as it takes to find n peers."""
        n = n or self.k
        distance = target.__xor__
        peers = self.peers
        x = target ^ self.local_id
        # Sorting (distance, info) pairs keeps the work in C: distances are distinct, so the infos
        # are never compared, and no dict lookup (hashing a 256-bit key) is needed afterwards.
        own = self.buckets.get(x.bit_length())  # the target's own bucket holds the closest range
        if own is not None and len(own.entries) >= n + (exclude in own.entries):
            found = sorted(zip(map(distance, own.entries), own.entries.values(), strict=True))
        elif len(peers) <= 4 * n:  # a small table: one sort is cheaper than ordering buckets
            found = sorted(zip(map(distance, peers), peers.values(), strict=True))
        else:
            found = []
            buckets = self.buckets
            for index in sorted(buckets, key=lambda i: ((x >> (i - 1)) ^ 1) << (i - 1)):
                entries = buckets[index].entries
                if entries:
                    found += sorted(zip(map(distance, entries), entries.values(), strict=True))
                    if len(found) > n:
                        break
        if exclude is not None and exclude in peers:
            excluded = exclude ^ target
            found = [pair for pair in found[: n + 1] if pair[0] != excluded]
        return [info for _, info in found[:n]]

    def mark_lookup(self, target: int, now: float) -> None:
        """A lookup for ``target`` refreshes the bucket the target falls into."""
        bucket = self.buckets.get((target ^ self.local_id).bit_length())
        if bucket is not None:
            bucket.last_lookup = now
