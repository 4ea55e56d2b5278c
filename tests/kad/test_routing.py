"""The k-bucket routing table: bucket placement, ``closest`` against brute force, least-recently-seen
order, replacement caches and liveness checks; and the XOR metric itself."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from p2pnode.identity import kad_key
from p2pnode.kad import keyspace
from p2pnode.kad.routing import KEY_BITS, RoutingTable
from tests.helpers.peers import MASK, closest_by_brute_force, ids_of, peer_with_id

ids = st.integers(0, MASK)
bucket_indices = st.integers(1, KEY_BITS)


def id_in_bucket(local_id: int, index: int, rng: random.Random) -> int:
    """A random ID whose XOR distance to ``local_id`` has bit length ``index``."""
    return local_id ^ (1 << (index - 1)) ^ rng.getrandbits(index - 1)


def random_ids(local_id: int, count: int, rng: random.Random) -> list[int]:
    """A mix that fills far buckets (uniform IDs), near buckets (every distance scale equally likely) and
    tight clusters (many peers sharing long prefixes with each other, not with us)."""
    out = []
    centre = rng.getrandbits(KEY_BITS)
    for _ in range(count):
        kind = rng.randrange(3)
        if kind == 0:
            out.append(rng.getrandbits(KEY_BITS))
        elif kind == 1:
            out.append(id_in_bucket(local_id, rng.randint(1, KEY_BITS), rng))
        else:
            out.append(centre ^ rng.getrandbits(rng.randint(0, 24)))
    return out


def filled_table(local_id: int, k: int, peer_ids: list[int], now: float = 0.0) -> RoutingTable:
    table = RoutingTable(local_id, k)
    for i in peer_ids:
        table.update(peer_with_id(i), now)
    return table


# ---- the XOR metric ------------------------------------------------------------------------------


@given(ids, ids, ids)
def test_xor_is_a_metric(a, b, c):
    assert a ^ a == 0
    assert (a ^ b == 0) == (a == b)
    assert a ^ b == b ^ a
    assert a ^ c <= (a ^ b) + (b ^ c)
    # stronger than the triangle inequality: XOR distances form an ultrametric-like bound on bit lengths
    assert (a ^ c).bit_length() <= max((a ^ b).bit_length(), (b ^ c).bit_length())


@given(ids, ids)
def test_xor_is_unidirectional(x, d):
    # Exactly one key lies at distance d from x: x ^ d. So lookups for the same key converge on one path.
    y = x ^ d
    assert x ^ y == d


def test_xor_distance_from_a_point_is_a_bijection():
    # the same property exhaustively, on 8-bit keys: for each x, y -> x ^ y hits every distance once
    for x in range(256):
        assert sorted(x ^ y for y in range(256)) == list(range(256))


# ---- bucket placement ----------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(ids, st.integers(1, 8), st.integers(0, 2**32))
def test_bucket_index_is_bit_length_of_xor_and_no_bucket_exceeds_k(local_id, k, seed):
    table = filled_table(local_id, k, random_ids(local_id, 300, random.Random(seed)))
    assert table.bucket_index(local_id) == 0
    total = 0
    for index, bucket in table.buckets.items():
        assert 1 <= index <= KEY_BITS
        assert len(bucket) <= k
        assert len(bucket.replacements) <= k
        for kad_id in bucket.entries:
            assert table.bucket_index(kad_id) == index == (kad_id ^ local_id).bit_length()
        for kad_id in bucket.replacements:
            assert (kad_id ^ local_id).bit_length() == index
            assert kad_id not in bucket.entries
        total += len(bucket)
    assert total == len(table) == len(table.peers)
    assert set(table.peers) == {i for b in table.buckets.values() for i in b.entries}


def test_ourselves_is_never_added():
    table = RoutingTable(12345, 4)
    assert table.update(peer_with_id(12345), 0.0) is None
    assert len(table) == 0


@settings(max_examples=30, deadline=None)
@given(ids, st.integers(0, keyspace.MAX_REFRESH_CPL), ids)
def test_refresh_key_hashes_into_the_bucket_it_refreshes(local_id, cpl, bits):
    table = RoutingTable(local_id)
    assert table.bucket_index(kad_key(keyspace.refresh_key(local_id, cpl, bits))) == KEY_BITS - cpl


# ---- closest() against brute force --------------------------------------------------------------


def targets_for(local_id: int, peer_ids: list[int], rng: random.Random) -> list[int]:
    """Targets where the bucket shortcut could go wrong: ourselves, next to us, on and next to peers, in
    empty buckets, and anywhere."""
    targets = [local_id, local_id ^ 1, local_id ^ (1 << (KEY_BITS - 1)), MASK ^ local_id, 0, MASK]
    for _ in range(6):
        targets.append(rng.getrandbits(KEY_BITS))
        targets.append(id_in_bucket(local_id, rng.randint(1, KEY_BITS), rng))
        if peer_ids:
            peer = rng.choice(peer_ids)
            targets += [peer, peer ^ 1, peer ^ (1 << rng.randrange(KEY_BITS)), peer ^ rng.getrandbits(16)]
    return targets


@settings(max_examples=60, deadline=None)
@given(local_id=ids, k=st.integers(1, 20), count=st.integers(0, 400), seed=st.integers(0, 2**32))
def test_closest_equals_brute_force(local_id, k, count, seed):
    rng = random.Random(seed)
    table = filled_table(local_id, k, random_ids(local_id, count, rng))
    known = list(table.peers)
    for target in targets_for(local_id, known, rng):
        for n in (1, 2, 3, k, k + 1, 7, 20, 40, rng.randint(1, 40)):
            assert ids_of(table.closest(target, n)) == closest_by_brute_force(target, known, n), (target, n)
        assert ids_of(table.closest(target)) == closest_by_brute_force(target, known, k)
        # leaving out one peer (a requester never gets itself back): a peer near the target, the target
        # itself, any peer, or someone we do not know
        near = closest_by_brute_force(target, known, rng.randint(1, 40))
        for exclude in {target, rng.choice(near) if near else 0, rng.choice(known) if known else 0, local_id}:
            rest = [i for i in known if i != exclude]
            n = rng.choice((1, k, len(near) or 1, rng.randint(1, 40)))
            expected = closest_by_brute_force(target, rest, n)
            assert ids_of(table.closest(target, n, exclude=exclude)) == expected


@settings(max_examples=40, deadline=None)
@given(local_id=ids, k=st.integers(1, 6), seed=st.integers(0, 2**32))
def test_closest_after_removals_equals_brute_force(local_id, k, seed):
    # removals promote replacements and leave buckets part-empty: the shortcut must still see everyone
    rng = random.Random(seed)
    peer_ids = random_ids(local_id, 300, rng)
    table = filled_table(local_id, k, peer_ids)
    for kad_id in rng.sample(peer_ids, 150):
        table.remove(kad_id)
    known = list(table.peers)
    for target in targets_for(local_id, known, rng):
        n = rng.randint(1, 40)
        assert ids_of(table.closest(target, n)) == closest_by_brute_force(target, known, n)
        exclude = rng.choice(known) if known else target
        rest = [i for i in known if i != exclude]
        assert ids_of(table.closest(target, n, exclude=exclude)) == closest_by_brute_force(target, rest, n)


def test_closest_on_an_empty_table():
    assert RoutingTable(7, 4).closest(99, 10) == []


# ---- least-recently-seen order, replacements, liveness checks -----------------------------------


def bucket_peers(local_id: int, index: int, count: int, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    out: list[int] = []
    while len(out) < count:
        kad_id = id_in_bucket(local_id, index, rng)
        if kad_id not in out:
            out.append(kad_id)
    return out


LOCAL = random.Random(0).getrandbits(KEY_BITS)
K = 4


def full_bucket(now: float = 0.0) -> tuple[RoutingTable, list[int]]:
    """A table whose bucket 256 holds K peers, seen at ``now``, now + 1, ... (the first is the oldest)."""
    table = RoutingTable(LOCAL, K, stale_after=30.0)
    members = bucket_peers(LOCAL, KEY_BITS, K)
    for t, kad_id in enumerate(members):
        assert table.update(peer_with_id(kad_id), now + t) is None
    return table, members


def test_bucket_keeps_least_recently_seen_first_and_update_moves_to_back():
    table, members = full_bucket()
    bucket = table.buckets[KEY_BITS]
    assert list(bucket.entries) == members
    assert table.update(peer_with_id(members[1]), 10.0) is None
    assert list(bucket.entries) == [members[0], members[2], members[3], members[1]]
    assert bucket.seen[members[1]] == 10.0
    assert not bucket.replacements  # a known peer never lands in the replacement cache


def test_full_bucket_sends_newcomer_to_replacements_without_check_while_oldest_is_fresh():
    table, members = full_bucket()
    newcomer = bucket_peers(LOCAL, KEY_BITS, K + 1, seed=2)[-1]
    assert table.update(peer_with_id(newcomer), 29.0) is None  # oldest seen 29 s ago: fresh enough
    bucket = table.buckets[KEY_BITS]
    assert list(bucket.entries) == members
    assert list(bucket.replacements) == [newcomer]
    assert newcomer not in table


def test_full_bucket_asks_to_check_a_stale_oldest_once():
    table, members = full_bucket()
    extra = [i for i in bucket_peers(LOCAL, KEY_BITS, K + 3, seed=3) if i not in members][:2]
    check = table.update(peer_with_id(extra[0]), 31.0)
    assert check is not None and check.peer_id.kad_id == members[0]
    assert table.buckets[KEY_BITS].checking
    # a check is already under way: a second newcomer waits without a second check
    assert table.update(peer_with_id(extra[1]), 32.0) is None
    assert list(table.buckets[KEY_BITS].replacements) == extra


def test_dead_oldest_is_evicted_and_newest_replacement_promoted():
    table, members = full_bucket()
    extra = [i for i in bucket_peers(LOCAL, KEY_BITS, K + 3, seed=3) if i not in members][:2]
    check = table.update(peer_with_id(extra[0]), 31.0)
    table.update(peer_with_id(extra[1]), 32.0)
    table.check_done(check, alive=False, now=33.0)
    bucket = table.buckets[KEY_BITS]
    assert not bucket.checking
    assert members[0] not in table
    assert extra[1] in table and extra[0] not in table  # the newest replacement wins
    assert list(bucket.replacements) == [extra[0]]
    assert len(bucket) == K
    # the promoted peer was seen only when it was cached: it goes first in line for the next check
    assert next(iter(bucket.entries)) == extra[1]


def test_live_oldest_stays_and_moves_to_back():
    table, members = full_bucket()
    newcomer = [i for i in bucket_peers(LOCAL, KEY_BITS, K + 2, seed=4) if i not in members][0]
    check = table.update(peer_with_id(newcomer), 40.0)
    table.check_done(check, alive=True, now=41.0)
    bucket = table.buckets[KEY_BITS]
    assert not bucket.checking
    assert list(bucket.entries) == members[1:] + members[:1]
    assert newcomer not in table and list(bucket.replacements) == [newcomer]
    # the next stale entry is now members[1]
    assert table.update(peer_with_id(newcomer), 100.0).peer_id.kad_id == members[1]


def test_remove_promotes_newest_replacement():
    table, members = full_bucket()
    extra = [i for i in bucket_peers(LOCAL, KEY_BITS, K + 3, seed=5) if i not in members][:2]
    for t, kad_id in enumerate(extra):
        table.update(peer_with_id(kad_id), 1.0 + t)
    table.remove(members[2])
    assert members[2] not in table
    assert extra[1] in table
    assert list(table.buckets[KEY_BITS].replacements) == [extra[0]]
    # removing a waiting replacement only forgets it
    table.remove(extra[0])
    assert not table.buckets[KEY_BITS].replacements and len(table) == K
    # removing with an empty cache leaves a hole, later filled directly
    table.remove(members[3])
    assert len(table) == K - 1
    assert table.update(peer_with_id(extra[0]), 5.0) is None and extra[0] in table
    # removing someone unknown is harmless
    table.remove(LOCAL ^ 1)
    assert len(table) == K


def test_replacement_cache_is_bounded_and_keeps_the_newest():
    table, members = full_bucket()
    extra = [i for i in bucket_peers(LOCAL, KEY_BITS, 4 * K, seed=6) if i not in members]
    for kad_id in extra:
        table.update(peer_with_id(kad_id), 1.0)
    replacements = table.buckets[KEY_BITS].replacements
    assert list(replacements) == extra[-K:]
    # seeing a waiting peer again makes it the newest
    table.update(peer_with_id(extra[-K]), 2.0)
    assert list(replacements)[-1] == extra[-K]


# ---- a random walk through update / remove / check_done keeps the invariants --------------------


class RoutingTableMachine(RuleBasedStateMachine):
    """Random operations on a table with k = 3 over a few buckets, checking the structure after each."""

    def __init__(self):
        super().__init__()
        self.local_id = LOCAL
        self.table = RoutingTable(LOCAL, 3, stale_after=5.0)
        self.now = 0.0
        rng = random.Random(7)
        self.universe = [id_in_bucket(LOCAL, index, rng) for index in (256, 255, 254) for _ in range(8)]
        self.checks: list = []  # liveness checks handed out and not yet answered

    @rule(i=st.integers(0, 23), dt=st.floats(0, 10))
    def update(self, i, dt):
        self.now += dt
        check = self.table.update(peer_with_id(self.universe[i]), self.now)
        if check is not None:
            bucket = self.table.buckets[self.table.bucket_index(check.peer_id.kad_id)]
            assert next(iter(bucket.entries)) == check.peer_id.kad_id  # the oldest entry
            assert self.now - bucket.seen[check.peer_id.kad_id] >= 5.0
            index = self.table.bucket_index
            # one check per bucket at a time
            assert all(index(c.peer_id.kad_id) != index(check.peer_id.kad_id) for c in self.checks)
            self.checks.append(check)

    @rule(i=st.integers(0, 23))
    def remove(self, i):
        self.table.remove(self.universe[i])

    @rule(alive=st.booleans(), data=st.data())
    def answer_check(self, alive, data):
        if self.checks:
            check = self.checks.pop(data.draw(st.integers(0, len(self.checks) - 1)))
            self.table.check_done(check, alive, self.now)
            if not alive:
                assert check.peer_id.kad_id not in self.table

    @invariant()
    def structure_holds(self):
        table = self.table
        assert set(table.peers) == {i for b in table.buckets.values() for i in b.entries}
        for index, bucket in table.buckets.items():
            assert len(bucket) <= 3 and len(bucket.replacements) <= 3
            assert all(table.bucket_index(i) == index for i in [*bucket.entries, *bucket.replacements])
            assert not set(bucket.entries) & set(bucket.replacements)
            if bucket.replacements:
                assert len(bucket) == 3  # peers wait only while the bucket is full


TestRoutingTableMachine = RoutingTableMachine.TestCase
TestRoutingTableMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
