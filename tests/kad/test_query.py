"""The iterative lookup as a state machine alone: no network, answers come from an oracle.

The driver below plays the node's part (``KademliaNode._step``): ask ``next_peers()``, answer one
outstanding request at a time in a random order, stop when the lookup is finished or nothing is in flight.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pnode.kad.messages import PeerInfo
from p2pnode.kad.query import FAILED, NOT_CONTACTED, SUCCEEDED, Lookup
from p2pnode.kad.routing import KEY_BITS, RoutingTable
from p2pnode.kad.rtt import RttEstimates
from tests.helpers.peers import closest_by_brute_force, ids_of, peer_with_id

Answer = Callable[[PeerInfo], list[PeerInfo]]


class Oracle:
    """A network of random IDs where every peer knows every other (``complete``) or holds a full k-bucket
    table of them, and answers with the k closest to the target it knows (never itself)."""

    def __init__(self, rng: random.Random, size: int, k: int, target: int, complete: bool = True):
        self.k = k
        self.target = target
        self.ids = list({rng.getrandbits(KEY_BITS) for _ in range(size)})
        self.peers = {i: peer_with_id(i) for i in self.ids}
        self.tables: dict[int, RoutingTable] = {}
        if not complete:
            for i in self.ids:
                table = self.tables[i] = RoutingTable(i, k)
                for j in rng.sample(self.ids, len(self.ids)):
                    table.update(self.peers[j], 0.0)

    requester: int | None = None  # as a node does, answers leave out whoever asks

    def answer(self, peer: PeerInfo) -> list[PeerInfo]:
        me = peer.peer_id.kad_id
        if self.tables:
            return self.tables[me].closest(self.target, self.k, exclude=self.requester)
        others = [i for i in self.ids if i != me and i != self.requester]
        return [self.peers[i] for i in closest_by_brute_force(self.target, others, self.k)]

    def true_closest(self, n: int, exclude: set[int] = frozenset()) -> list[int]:
        return closest_by_brute_force(self.target, [i for i in self.ids if i not in exclude], n)


class Trace:
    """What the driver saw: every contact, with the path it was made on, and the largest load."""

    def __init__(self) -> None:
        self.contacts: list[tuple[int, int]] = []  # (kad_id, path index)
        self.max_in_flight = 0
        self.failed: set[int] = set()


def path_of(lookup: Lookup, kad_id: int) -> int:
    return lookup.paths.index(lookup.owner[kad_id])


def drive(lookup: Lookup, answer: Answer, rng: random.Random, fails: set[int] = frozenset(),
          check: Callable[[Lookup, PeerInfo, set[int]], None] | None = None,
          pending: list[PeerInfo] | None = None) -> Trace:
    """Run ``lookup`` to its end; ``check(lookup, peer, failed so far)`` sees every contact."""
    trace = Trace()
    pending = list(pending or [])
    while True:
        for peer in lookup.next_peers():
            if check is not None:
                check(lookup, peer, trace.failed)
            trace.contacts.append((peer.peer_id.kad_id, path_of(lookup, peer.peer_id.kad_id)))
            pending.append(peer)
        assert lookup.in_flight == len(pending)
        trace.max_in_flight = max(trace.max_in_flight, len(pending))
        if lookup.finished or not pending:
            return trace
        peer = pending.pop(rng.randrange(len(pending)))
        if peer.peer_id.kad_id in fails:
            trace.failed.add(peer.peer_id.kad_id)
            lookup.on_failure(peer)
        else:
            lookup.on_success(peer, answer(peer))


def make_lookup(oracle: Oracle, rng: random.Random, seeds: int, alpha: int, paths: int,
                local_id: int | None = None, skip: set[int] = frozenset(), rtt: RttEstimates | None = None) -> Lookup:
    chosen = rng.sample(oracle.ids, min(seeds, len(oracle.ids)))
    return Lookup(oracle.target, [oracle.peers[i] for i in chosen], oracle.k, alpha, paths, local_id, skip, rtt)


def random_rtts(rng: random.Random, ids: list[int], share: float) -> RttEstimates:
    """Estimates for a random ``share`` of ``ids`` (the rest fall back on the estimate over all of them)."""
    rtt = RttEstimates(capacity=len(ids) + 1)
    for i in ids:
        if rng.random() < share:
            rtt.sample(i, rng.uniform(0.005, 0.4))
    return rtt


params = dict(
    seed=st.integers(0, 2**32),
    size=st.one_of(st.integers(1, 25), st.sampled_from([40, 100, 250])),
    k=st.integers(1, 20),
    alpha=st.integers(1, 6),
    paths=st.integers(1, 6),
    seeds=st.integers(1, 20),
)


# ---- convergence ---------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(**params)
def test_lookup_finds_the_true_k_closest(seed, size, k, alpha, paths, seeds):
    rng = random.Random(seed)
    paths = min(paths, alpha)  # the config requires d <= alpha
    oracle = Oracle(rng, size, k, rng.getrandbits(KEY_BITS))
    lookup = make_lookup(oracle, rng, seeds, alpha, paths)
    trace = drive(lookup, oracle.answer, rng)
    assert lookup.finished
    assert ids_of(lookup.result()) == oracle.true_closest(k)
    assert trace.max_in_flight <= alpha
    assert lookup.requests == len(trace.contacts)


@settings(max_examples=60, deadline=None)
@given(**params, share=st.floats(0, 1))
def test_proximity_changes_the_order_not_the_result(seed, size, k, alpha, paths, seeds, share):
    rng = random.Random(seed)
    paths = min(paths, alpha)
    oracle = Oracle(rng, size, k, rng.getrandbits(KEY_BITS))
    lookup = make_lookup(oracle, rng, seeds, alpha, paths, rtt=random_rtts(rng, oracle.ids, share))
    trace = drive(lookup, oracle.answer, rng)
    assert lookup.finished
    assert ids_of(lookup.result()) == oracle.true_closest(k)
    assert trace.max_in_flight <= alpha
    assert lookup.requests == len(trace.contacts) == len(set(trace.contacts))


@settings(max_examples=60, deadline=None)
@given(**params, beta=st.integers(1, 20))
def test_a_lookup_ends_once_its_k_closest_are_asked_and_its_beta_closest_answered(seed, size, k, alpha, paths,
                                                                                 seeds, beta):
    rng = random.Random(seed)
    paths = min(paths, alpha)
    oracle = Oracle(rng, size, k, rng.getrandbits(KEY_BITS))
    chosen = rng.sample(oracle.ids, min(seeds, len(oracle.ids)))
    lookup = Lookup(oracle.target, [oracle.peers[i] for i in chosen], k, alpha, paths, beta=beta)
    trace = drive(lookup, oracle.answer, rng)
    assert trace.max_in_flight <= alpha
    assert lookup.finished or lookup.in_flight == 0
    # the result: the k closest known, asked, over the paths; each path's beta closest answered
    assert ids_of(lookup.result()) == oracle.true_closest(k)
    for path in lookup.paths:
        window = [i for _, i in path.order[:k]]
        assert all(path.state[i] != NOT_CONTACTED for i in window)
        assert all(path.state[i] == SUCCEEDED for i in window[: min(beta, k)])


@settings(max_examples=60, deadline=None)
@given(**params, beta=st.integers(1, 5))
def test_a_follow_up_lookup_asks_the_rest_of_the_k_closest_at_once(seed, size, k, alpha, paths, seeds, beta):
    # go-libp2p-kad-dht's lookup: alpha in flight until the beta closest answered, then the rest of the k
    # closest (frozen) all at once; it ends when each of them answered or failed
    rng = random.Random(seed)
    paths = min(paths, alpha)
    oracle = Oracle(rng, size, k, rng.getrandbits(KEY_BITS))
    fails = set(rng.sample(oracle.ids, size // 4))
    chosen = rng.sample(oracle.ids, min(seeds, len(oracle.ids)))
    lookup = Lookup(oracle.target, [oracle.peers[i] for i in chosen], k, alpha, paths, beta=beta, followup=True)

    def check(lookup: Lookup, peer: PeerInfo, failed: set[int]) -> None:
        path = lookup.owner[peer.peer_id.kad_id]
        if path.frozen is None:  # still searching: within its parallelism
            assert path.in_flight <= path.parallelism
        else:
            assert peer.peer_id.kad_id in path.frozen

    drive(lookup, oracle.answer, rng, fails, check)
    assert lookup.in_flight == 0
    for path in lookup.paths:
        if path.frozen is not None:
            assert all(path.state[i] in (SUCCEEDED, FAILED) for i in path.frozen)
    assert not set(ids_of(lookup.result())) & fails


def test_proximity_asks_the_nearest_of_equal_rank_first():
    # eight seeds at the same bit length of distance to the target (one rank), two slots: without
    # estimates the two closest are asked, with them the two of least RTT; a closer rank goes first anyway
    target = 0
    same_rank = [(1 << 200) + i for i in range(8)]
    rtt = RttEstimates()
    for n, i in enumerate(same_rank):
        rtt.sample(i, 0.3 - 0.03 * n)  # the farther, the nearer in RTT
    seeds = [peer_with_id(i) for i in same_rank]
    plain = Lookup(target, seeds, 20, 2)
    assert ids_of(plain.next_peers()) == same_rank[:2]
    near = Lookup(target, seeds, 20, 2, rtt=rtt)
    assert ids_of(near.next_peers()) == [same_rank[7], same_rank[6]]
    closer = peer_with_id(1 << 100)
    rtt.sample(1 << 100, 0.5)
    ranked = Lookup(target, [closer, *seeds], 20, 2, rtt=rtt)
    assert ids_of(ranked.next_peers()) == [1 << 100, same_rank[7]]


@settings(max_examples=40, deadline=None)
@given(**params, share=st.floats(0, 0.5))
def test_referrals_to_skipped_peers_are_dropped(seed, size, k, alpha, paths, seeds, share):
    # peers the node saw fail lately are never asked when referred (nor known to the lookup); it still ends
    # with the k closest of the peers it knows
    rng = random.Random(seed)
    paths = min(paths, alpha)
    oracle = Oracle(rng, size, k, rng.getrandbits(KEY_BITS))
    skip = {i for i in oracle.ids if rng.random() < share}
    lookup = make_lookup(oracle, rng, seeds, alpha, paths, skip=skip)
    seeded = set(lookup.peers)
    trace = drive(lookup, oracle.answer, rng)
    asked = {i for i, _ in trace.contacts}
    assert not (asked - seeded) & skip and not (set(lookup.peers) - seeded) & skip
    assert lookup.finished
    assert ids_of(lookup.result()) == closest_by_brute_force(oracle.target, list(lookup.peers), k)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(30, 150), k=st.integers(2, 8))
def test_lookup_over_k_bucket_tables_finds_the_true_k_closest(seed, size, k):
    # peers know only their k-bucket tables: the lookup has to walk towards the target
    rng = random.Random(seed)
    oracle = Oracle(rng, size, k, rng.getrandbits(KEY_BITS), complete=False)
    lookup = make_lookup(oracle, rng, 1, 3, 1)
    drive(lookup, oracle.answer, rng)
    assert ids_of(lookup.result()) == oracle.true_closest(k)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(2, 150), k=st.integers(1, 20))
def test_lookup_never_contacts_itself(seed, size, k):
    rng = random.Random(seed)
    oracle = Oracle(rng, size, k, rng.getrandbits(KEY_BITS))
    local_id = rng.choice(oracle.ids)  # we are one of the peers: others may name us (if they ignore who asks)
    seeds = [oracle.peers[i] for i in rng.sample(oracle.ids, min(5, size)) if i != local_id]
    lookup = Lookup(oracle.target, seeds, k, 3, 1, local_id)
    trace = drive(lookup, oracle.answer, rng)
    assert local_id not in {i for i, _ in trace.contacts}
    assert local_id not in ids_of(lookup.result())
    # answers that leave us out, as nodes send them, lead to the k closest others
    oracle.requester = local_id
    lookup = Lookup(oracle.target, seeds, k, 3, 1, local_id)
    drive(lookup, oracle.answer, rng)
    assert ids_of(lookup.result()) == oracle.true_closest(k, exclude={local_id})


# ---- load: alpha ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(**params)
def test_never_more_than_alpha_in_flight_across_paths(seed, size, k, alpha, paths, seeds):
    rng = random.Random(seed)
    paths = min(paths, alpha)
    oracle = Oracle(rng, size, k, rng.getrandbits(KEY_BITS))
    fails = set(rng.sample(oracle.ids, size // 3))
    lookup = make_lookup(oracle, rng, seeds, alpha, paths)
    trace = drive(lookup, oracle.answer, rng, fails)
    assert trace.max_in_flight <= alpha
    assert sum(p.parallelism for p in lookup.paths) == alpha


def test_first_round_uses_all_of_alpha():
    rng = random.Random(1)
    oracle = Oracle(rng, 100, 20, rng.getrandbits(KEY_BITS))
    for alpha, paths in ((3, 1), (5, 2), (6, 3), (5, 5)):
        lookup = make_lookup(oracle, rng, 10, alpha, paths)
        assert len(lookup.next_peers()) == alpha
        assert lookup.next_peers() == []  # nothing more until someone answers


def test_a_path_only_contacts_its_k_closest_known():
    # each contact is among the k closest peers the path knows of that have not failed (so a lookup
    # does not wander off to far peers while closer ones are still unasked)
    rng = random.Random(2)
    oracle = Oracle(rng, 200, 4, rng.getrandbits(KEY_BITS))
    fails = set(rng.sample(oracle.ids, 60))

    def check(lookup: Lookup, peer: PeerInfo, failed: set[int]) -> None:
        known = [i for i in lookup.peers if i not in failed]
        assert peer.peer_id.kad_id in closest_by_brute_force(lookup.target, known, lookup.k)

    for _ in range(20):
        drive(make_lookup(oracle, rng, 20, 3, 1), oracle.answer, rng, fails, check)


# ---- disjoint paths ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.one_of(st.integers(10, 40), st.sampled_from([100, 250])),
       k=st.integers(1, 20), paths=st.sampled_from([2, 3]), alpha=st.integers(3, 6),
       seeds=st.integers(3, 20), failing=st.booleans())
def test_disjoint_paths_share_no_peer(seed, size, k, paths, alpha, seeds, failing):
    rng = random.Random(seed)
    oracle = Oracle(rng, size, k, rng.getrandbits(KEY_BITS))
    fails = set(rng.sample(oracle.ids, size // 4)) if failing else set()
    lookup = make_lookup(oracle, rng, seeds, alpha, paths)
    assert len(lookup.paths) == paths
    # a peer may reach a path only as one of its seeds or by a referral from a peer on that path
    introduced = [set() for _ in lookup.paths]
    for kad_id in lookup.peers:
        introduced[path_of(lookup, kad_id)].add(kad_id)

    def answer(peer: PeerInfo) -> list[PeerInfo]:
        closer = oracle.answer(peer)
        introduced[path_of(lookup, peer.peer_id.kad_id)].update(ids_of(closer))
        return closer

    trace = drive(lookup, answer, rng, fails)
    contacted = [i for i, _ in trace.contacts]
    assert len(contacted) == len(set(contacted)), "a peer was contacted twice"
    for kad_id, path in trace.contacts:
        assert path_of(lookup, kad_id) == path  # a peer never changes path
        assert kad_id in introduced[path]
    assert trace.max_in_flight <= alpha
    result = ids_of(lookup.result())
    assert not set(result) & fails
    if not failing:
        assert result == oracle.true_closest(k)


# ---- failures ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(**params, share=st.floats(0, 0.9))
def test_failed_peers_are_never_in_the_result(seed, size, k, alpha, paths, seeds, share):
    rng = random.Random(seed)
    paths = min(paths, alpha)
    oracle = Oracle(rng, size, k, rng.getrandbits(KEY_BITS))
    fails = set(rng.sample(oracle.ids, int(size * share)))
    lookup = make_lookup(oracle, rng, seeds, alpha, paths)
    drive(lookup, oracle.answer, rng, fails)
    result = ids_of(lookup.result())
    assert not set(result) & fails
    assert result == sorted(result, key=lookup.target.__xor__)
    assert len(result) <= k
    if paths == 1:
        # one path ends only when the k closest peers it knows of, failures aside, have all answered
        known = [i for i in lookup.peers if i not in fails]
        assert result == closest_by_brute_force(lookup.target, known, k)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), seeds=st.integers(1, 10), alpha=st.integers(1, 5), paths=st.integers(1, 5))
def test_lookup_finishes_when_every_seed_fails(seed, seeds, alpha, paths):
    rng = random.Random(seed)
    paths = min(paths, alpha)
    oracle = Oracle(rng, 50, 20, rng.getrandbits(KEY_BITS))
    lookup = make_lookup(oracle, rng, seeds, alpha, paths)
    trace = drive(lookup, oracle.answer, rng, fails=set(oracle.ids))
    assert lookup.finished and lookup.in_flight == 0
    assert lookup.result() == [] and lookup.result_hops() == 0
    assert sorted(i for i, _ in trace.contacts) == sorted(lookup.peers) and lookup.requests == seeds


def test_lookup_without_seeds_is_finished_at_once():
    lookup = Lookup(123, [], 20, 3, 2)
    assert lookup.next_peers() == []
    assert lookup.finished and lookup.result() == []


def test_answers_from_peers_not_waiting_are_ignored():
    rng = random.Random(3)
    oracle = Oracle(rng, 60, 5, rng.getrandbits(KEY_BITS))
    lookup = make_lookup(oracle, rng, 5, 2, 1)
    first, second = lookup.next_peers()
    stranger = peer_with_id(oracle.target ^ 1)  # never asked: must not enter the result
    lookup.on_success(stranger, oracle.answer(stranger))
    lookup.on_failure(stranger)
    lookup.on_failure(first)
    lookup.on_success(first, oracle.answer(first))  # a late answer after a timeout
    assert lookup.in_flight == 1
    lookup.on_success(second, oracle.answer(second))
    lookup.on_success(second, [])  # a duplicate
    assert lookup.in_flight == 0
    assert ids_of(lookup.result()) == [second.peer_id.kad_id]
    assert stranger.peer_id.kad_id not in lookup.peers


# ---- hops ----------------------------------------------------------------------------------------


def test_hops_count_referral_rounds():
    # a chain: each peer knows only the next one closer to the target
    target = 0
    chain = [peer_with_id(1 << (200 - 10 * i)) for i in range(8)]  # farthest first
    nexts = {p.peer_id.kad_id: [chain[i + 1]] if i + 1 < len(chain) else [] for i, p in enumerate(chain)}
    lookup = Lookup(target, [chain[0]], 20, 3)
    drive(lookup, lambda peer: nexts[peer.peer_id.kad_id], random.Random(0))
    assert lookup.result()[0] == chain[-1]
    assert lookup.result_hops() == len(chain)  # the seed is hop 1
    assert [lookup.hops[p.peer_id.kad_id] for p in chain] == list(range(1, len(chain) + 1))


def test_hops_when_the_closest_peer_is_a_seed():
    rng = random.Random(4)
    oracle = Oracle(rng, 80, 10, rng.getrandbits(KEY_BITS))
    best = oracle.peers[oracle.true_closest(1)[0]]
    lookup = Lookup(oracle.target, [best], 10, 3)
    drive(lookup, oracle.answer, rng)
    assert lookup.result()[0] == best and lookup.result_hops() == 1
