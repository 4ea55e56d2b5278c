"""The ground truth: the k closest live peers to a key, and whether a routing table is complete."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from experiment.oracle import LiveSet, by_bucket
from p2pnode.identity import Keypair, PeerId
from p2pnode.kad.messages import PeerInfo
from p2pnode.kad.routing import RoutingTable


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**256 - 1), min_size=1, max_size=60, unique=True),
       st.integers(0, 2**256 - 1), st.integers(1, 25))
def test_oracle_closest_is_brute_force(ids, target, k):
    live = LiveSet()
    for i in ids:
        live.add(i)
    exclude = ids[0]
    expected = sorted((i for i in ids if i != exclude), key=lambda i: i ^ target)[:k]
    assert live.closest(target, k, exclude=exclude) == expected


def _network(n: int, seed: int = 3) -> tuple[LiveSet, list[PeerId]]:
    rng = random.Random(seed)
    peers = [Keypair.from_seed(rng.randbytes(32)).peer_id for _ in range(n)]
    live = LiveSet()
    for peer in peers:
        live.add(peer.kad_id)
    return live, peers


def test_peer_ids_grouped_by_bucket_judge_like_the_routing_tables_own_buckets():
    live, peers = _network(60)
    me = peers[0].kad_id
    table = RoutingTable(me, 20, 900.0)
    for peer in peers[1:]:
        table.update(PeerInfo(peer), 0.0)
    own = {index: bucket.entries for index, bucket in table.buckets.items()}
    assert by_bucket(me, table.peers) == {index: list(entries) for index, entries in own.items()}
    assert live.table_complete(me, by_bucket(me, table.peers), 20) == live.table_complete(me, own, 20)


def test_a_table_missing_live_peers_is_incomplete_and_dead_peers_are_not_needed():
    live, peers = _network(60)
    me, others = peers[0].kad_id, [p.kad_id for p in peers[1:]]
    assert live.table_complete(me, by_bucket(me, others), 60)  # every live peer known: complete
    assert not live.table_complete(me, by_bucket(me, others[:3]), 20)
    gone = others.pop()
    assert not live.table_complete(me, by_bucket(me, others), 60)  # a live peer missing
    live.remove(gone)
    assert live.table_complete(me, by_bucket(me, others), 60)  # it left: no longer needed
