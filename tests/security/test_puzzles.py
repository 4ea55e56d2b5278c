"""S/Kademlia on real hosts: node-ID puzzles checked on every routing-table insert and on every referred
peer, the sibling list and its replica placement, and the disjointness of d-path lookups, read from the
messages the searcher sent and the answers it got."""

from __future__ import annotations

import hashlib

import pytest

from p2pnode.config import KadConfig
from p2pnode.identity import Keypair, kad_key
from p2pnode.kad.messages import FindNode, FindNodeResponse, PeerInfo
from p2pnode.kad.routing import RoutingTable
from p2pnode.security.puzzles import PuzzleCheck, dynamic_bits, solve_dynamic, solve_static, static_bits, zero_bits
from tests.helpers.peers import peer_with_id

PUZZLES = KadConfig(k=8, alpha=3, puzzle_static=4, puzzle_dynamic=6)


def failing_static_key(c1: int, start: int = 0) -> Keypair:
    """A key whose ID does not meet the static puzzle (most do not)."""
    for i in range(start, start + 1000):
        keypair = Keypair.from_seed(hashlib.sha256(b"bad%d" % i).digest())
        if static_bits(keypair.peer_id.kad_id) < c1:
            return keypair
    raise AssertionError("no failing key found")


def test_solutions_meet_their_puzzles_and_cost_about_two_to_the_difficulty():
    assert zero_bits(b"\x00\x0f") == 12 and zero_bits(b"\x80") == 0 and zero_bits(bytes(4)) == 32
    tries = []
    for i in range(16):
        keypair, n = solve_static(hashlib.sha256(b"seed%d" % i).digest(), 5)
        assert static_bits(keypair.peer_id.kad_id) >= 5
        x, hashes = solve_dynamic(keypair.peer_id.kad_id, 8)
        assert dynamic_bits(keypair.peer_id.kad_id, x) >= 8 and hashes == int.from_bytes(x, "big")
        tries.append(n)
    assert 4 < sum(tries) / len(tries) < 100  # 2**5 = 32 expected
    seed = bytes(32)
    keypair, n = solve_static(seed, 0)
    assert n == 1 and keypair.peer_id == Keypair.from_seed(seed).peer_id
    assert solve_dynamic(123, 0) == (b"", 0)


def test_check_names_the_failed_puzzle_and_counts_refusals():
    good, _ = solve_static(b"\x01" * 32, 4)
    kad_id = good.peer_id.kad_id
    x, _ = solve_dynamic(kad_id, 6)
    check = PuzzleCheck(4, 6)
    assert check.failure(kad_id, x) is None and check.admit(kad_id, x)
    assert check.failure(kad_id, b"") == "dynamic" or dynamic_bits(kad_id, b"") >= 6
    bad = failing_static_key(4).peer_id.kad_id
    assert check.failure(bad, solve_dynamic(bad, 6)[0]) == "static"
    assert not check.admit(bad, b"") and check.refused["static"] == 1
    assert check.failure(kad_id, b"\x01" * 33) == "dynamic"  # longer than an ID
    assert PuzzleCheck().failure(bad, b"") is None and not PuzzleCheck().enabled
    with pytest.raises(ValueError):
        PuzzleCheck(65, 0)


def test_node_refuses_its_own_key_when_it_fails_the_static_puzzle(make_net):
    from p2pnode.host import Host

    net = make_net(seed=1)
    with pytest.raises(ValueError, match="static ID puzzle"):
        Host(failing_static_key(PUZZLES.puzzle_static), net.add_host(start=False).runtime, PUZZLES)


def test_network_with_puzzles_forms_and_keeps_unsolved_ids_out(make_net):
    net = make_net(seed=2)
    nodes = net.populate(24, PUZZLES)
    assert all(len(n.dht.table) >= 8 for n in nodes)
    assert sum(sum(n.dht.puzzles.refused.values()) for n in nodes) == 0
    # an honest node, searching, finds the others
    found = net.complete(nodes[5].dht.find_node, nodes[17].peer_id.raw)
    assert found.peers[0].peer_id == nodes[17].peer_id
    # a Sybil whose key fails the static puzzle asks a node: it is answered but not inserted
    sybil = PeerInfo(failing_static_key(PUZZLES.puzzle_static).peer_id)
    target = nodes[3]
    target.dht.handle_request(sybil, FindNode(b"x"))
    assert sybil.peer_id.kad_id not in target.dht.table and target.dht.puzzles.refused["static"] == 1
    # a peer whose ID meets the static puzzle but shows no dynamic solution is refused too
    good, _ = solve_static(b"\x02" * 32, PUZZLES.puzzle_static)
    x = solve_dynamic(good.peer_id.kad_id, PUZZLES.puzzle_dynamic)[0]
    if dynamic_bits(good.peer_id.kad_id, b"") < PUZZLES.puzzle_dynamic:
        target.dht.handle_request(PeerInfo(good.peer_id), FindNode(b"x"))
        assert good.peer_id.kad_id not in target.dht.table and target.dht.puzzles.refused["dynamic"] == 1
    target.dht.handle_request(PeerInfo(good.peer_id, puzzle=x), FindNode(b"x"))
    assert good.peer_id.kad_id in target.dht.table


def test_lookups_never_contact_referred_peers_with_unsolved_ids(make_net):
    net = make_net(seed=3)
    nodes = net.populate(16, PUZZLES)
    liar, searcher = nodes[0], nodes[9]
    fakes = [PeerInfo(failing_static_key(PUZZLES.puzzle_static, 100 * i).peer_id) for i in range(4)]
    real = liar.dht.handle_request

    def lying(sender, message):
        response = real(sender, message)
        return FindNodeResponse(tuple(fakes)) if type(response) is FindNodeResponse else response

    liar.handle_request = lying
    searcher.dht.table.update(liar.info, net.time)
    net.sent.clear()
    net.complete(searcher.dht.find_node, b"some key")
    contacted = {s.dst for s in net.sent if s.src is searcher}
    assert liar in contacted
    assert searcher.dht.puzzles.refused["static"] >= len(fakes)
    assert not any(f.peer_id.kad_id in searcher.dht.table for f in fakes)


# ---- sibling list ----------------------------------------------------------------------------------


def test_sibling_list_keeps_the_s_closest_even_when_their_bucket_is_full():
    local = 1 << 200
    table = RoutingTable(local, k=2, siblings=4)
    # four peers in one bucket (distance bit length 10), one far one
    near = [peer_with_id(local ^ (512 + i)) for i in range(4)]
    far = peer_with_id(local ^ (1 << 255))
    for p in [*near, far]:
        table.update(p, 0.0)
    assert len(table) == 5 and {p.peer_id.kad_id for p in table.siblings()} == {p.peer_id.kad_id for p in near}
    assert [p.peer_id.kad_id for p in table.closest(local, 4)] == sorted(p.peer_id.kad_id for p in near)
    assert table.closest(local ^ 512, 4, exclude=local ^ 512)[0].peer_id.kad_id == local ^ 513
    # a closer peer in the full bucket pushes the farthest overflow sibling out
    closer = peer_with_id(local ^ 3)
    table.update(closer, 0.0)
    assert len(table.siblings()) == 4 and table.siblings()[0].peer_id.kad_id == local ^ 3
    assert (local ^ 515) not in table
    # removing a bucket entry promotes a waiting sibling
    table.remove(local ^ 512)
    assert len(table.buckets[10].entries) == 2 and (local ^ 513) in table
    without = RoutingTable(local, k=2)
    for p in near:
        without.update(p, 0.0)
    assert len(without) == 2 and without.siblings() == []


def test_new_siblings_are_handed_the_records_they_should_hold(make_net):
    net = make_net(seed=4)
    config = KadConfig(k=4, alpha=3, siblings=8)
    nodes = net.populate(20, config)
    key = b"replicated"
    net.complete(nodes[0].dht.put_value, key, b"v")
    target = kad_key(key)
    # a newcomer whose ID is nearer the key than every holder's
    newcomer = min((net.add_host(config, start=False) for _ in range(60)), key=lambda h: h.peer_id.kad_id ^ target)
    holders = [n for n in nodes if n.dht.records.get(key, net.time) is not None]
    assert all(newcomer.peer_id.kad_id ^ target < h.peer_id.kad_id ^ target for h in holders)
    net.start(newcomer, [nodes[1].info])
    net.run()
    assert newcomer.dht.records.get(key, net.time) is not None


# ---- disjoint paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("paths", [2, 4])
def test_disjoint_path_lookups_share_no_peer_by_the_messages_sent(make_net, paths):
    net = make_net(seed=5)
    config = KadConfig(k=8, alpha=4, disjoint_paths=paths)
    nodes = net.populate(60, config)
    searcher, key = nodes[7], b"disjoint target"
    target = kad_key(key)
    answers: list[tuple[PeerInfo, tuple[PeerInfo, ...]]] = []  # (responder, referred), in order answered
    for node in nodes:
        if node is not searcher:
            def logged(sender, message, node=node, real=node.handle_request):
                response = real(sender, message)
                if sender.peer_id == searcher.peer_id and message == FindNode(key):
                    answers.append((node.info, response.closer_peers))
                return response
            node.handle_request = logged
    seeds = searcher.dht.table.closest(target, config.k)
    net.sent.clear()
    net.complete(searcher.dht.find_node, key)
    asked = [s.dst.info for s in net.sent if s.src is searcher and s.message == FindNode(key)]
    assert len(asked) == len(set(asked)), "a peer was asked twice"
    # each peer's path, from the messages: a seed's by the round-robin split, another's by whoever
    # first referred it
    path_of = {p.peer_id: i % paths for i, p in enumerate(seeds)}
    for responder, referred in answers:
        for peer in referred:
            if peer.peer_id != searcher.peer_id:
                path_of.setdefault(peer.peer_id, path_of[responder.peer_id])
    used = [set() for _ in range(paths)]
    for peer in asked:
        used[path_of[peer.peer_id]].add(peer.peer_id)
    assert all(used), "every path asked someone"
    for a in range(paths):
        for b in range(a + 1, paths):
            assert not used[a] & used[b]
    # a peer on path a was referred to path a before it was asked: no path took over another's peers
    referred_to = {i: set() for i in range(paths)}
    for responder, referred in answers:
        referred_to[path_of[responder.peer_id]].update(p.peer_id for p in referred)
    for i, members in enumerate(used):
        assert members <= referred_to[i] | {p.peer_id for p in seeds}


def test_real_nodes_tell_their_puzzle_solution_in_identify_and_admit_each_other():
    import asyncio
    import os

    from p2pnode.runtime.node import Node

    config = KadConfig(k=8, alpha=3, puzzle_static=3, puzzle_dynamic=10)

    def node(bootstrap=()):
        keypair = solve_static(os.urandom(32), config.puzzle_static)[0]
        return Node(keypair, listen=["/ip6/::1/tcp/0"], transports=["tcp"], pubsub=False, kad=config,
                    bootstrap=bootstrap)

    async def main():
        async with node() as a:
            boot = [str(a.listen_addrs[0])]
            async with node(boot) as b, node(boot) as c:
                await b.wait_bootstrapped()
                await c.wait_bootstrapped()
                for _ in range(100):
                    tables = [set(n.host.dht.table.peers) for n in (a, b, c)]
                    if all(len(t) == 2 for t in tables):
                        break
                    await asyncio.sleep(0.05)
                assert all(len(t) == 2 for t in tables), tables
                assert b.identified[a.peer_id].kad_puzzle == a.host.dht.puzzle != b""
                assert a.host.dht.puzzles.refused["static"] == 0

    asyncio.run(main())
