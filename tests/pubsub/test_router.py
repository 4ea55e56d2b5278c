"""The GossipSub v1.1 router of real hosts on the test network (``tests.net``), on each runtime.

Mesh maintenance (degree bounds, symmetry, oversubscription with outbound quotas), GRAFT/PRUNE and backoff,
peer exchange, IHAVE/IWANT gossip and its limits, flood publishing, fanout, the seen cache, StrictSign
rejection and custom message IDs. Most hosts here run no heartbeat of their own: a test runs each one
(``net.beat``) at the moment it checks.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace
from functools import partial

import pytest

from p2pnode.config import GossipConfig, ScoreConfig, TopicScoreParams
from p2pnode.host import Host
from p2pnode.identity import Keypair
from p2pnode.pubsub.codec import default_message_id, signing_payload
from p2pnode.pubsub.messages import (
    RPC,
    Control,
    Graft,
    IHave,
    IWant,
    Message,
    PeerExchange,
    Prune,
)
from p2pnode.pubsub.router import GossipSub
from tests.net import TestNet

TOPIC = "blocks"
DEFAULTS = GossipConfig()
NO_SCORE = ScoreConfig(enabled=False)
SCORED = ScoreConfig(topics=((TOPIC, TopicScoreParams()),))  # the default topic parameters on TOPIC


def noop(message: Message) -> None:
    pass


def hosts(net: TestNet, count: int, config: GossipConfig = DEFAULTS, score: ScoreConfig | None = None,
          heartbeat: bool = False, **host_args) -> list[Host]:
    """``count`` started pub-sub hosts (without a heartbeat of their own unless ``heartbeat``)."""
    return [net.add_host(gossip=config, score=score, heartbeat=heartbeat, **host_args) for _ in range(count)]


def sign(keypair: Keypair, topic: str, data: bytes, seqno: int = 1) -> Message:
    """A StrictSign message published by ``keypair`` (as ``GossipSub.publish`` builds it)."""
    unsigned = Message(keypair.peer_id.raw, data, seqno.to_bytes(8, "big"), topic)
    return Message(unsigned.source, data, unsigned.seqno, topic, keypair.sign(signing_payload(unsigned)))


def inbox(host: Host, topic: str = TOPIC) -> list[Message]:
    """Subscribe ``host`` to ``topic``; returns the list its deliveries go to."""
    got: list[Message] = []
    host.subscribe(topic, got.append)
    return got


def keypair(n: int) -> Keypair:
    """A publisher outside the network."""
    return Keypair.from_seed(bytes([n]) * 32)


def published(rpcs: list[RPC]) -> list[Message]:
    return [m for rpc in rpcs for m in rpc.publish]


def prunes(rpcs: list[RPC]) -> list[Prune]:
    return [p for rpc in rpcs if rpc.control is not None for p in rpc.control.prune]


def grafts(rpcs: list[RPC]) -> list[Graft]:
    return [g for rpc in rpcs if rpc.control is not None for g in rpc.control.graft]


def iwanted(rpcs: list[RPC]) -> list[bytes]:
    return [mid for rpc in rpcs if rpc.control is not None for w in rpc.control.iwant for mid in w.message_ids]


def receivers(net: TestNet, src: Host, since_index: int) -> set[int]:
    """id() of the hosts ``src`` sent a published message to since ``net.sent[since_index]``."""
    return {id(s.dst) for s in net.sent[since_index:] if s.src is src and s.message.publish}


def ids(hosts) -> set[int]:
    return {id(h) for h in hosts}


def control(**parts) -> RPC:
    return RPC(control=Control(**parts))


def in_mesh(host: Host, peer: Host, topic: str = TOPIC) -> bool:
    return peer.info in host.pubsub.mesh.get(topic, ())


# ---- the mesh --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("scoring", [False, True], ids=["unscored", "scored"])
def test_meshes_settle_within_degree_bounds_and_symmetric(make_net, seed, scoring):
    """30 hosts, each with ~16 random connections: after some heartbeats every mesh holds d_lo..d_hi
    connected topic peers, and at a quiet moment every mesh link is known to both ends. With scoring on,
    messages flow (P3 would otherwise prune every quiet mesh peer once it activates)."""
    net = make_net(seed=seed)
    routers = hosts(net, 30, score=SCORED if scoring else NO_SCORE, heartbeat=True)
    net.connect_randomly(routers, 8)
    for router in routers:
        router.subscribe(TOPIC, noop)
    if scoring:
        def publish() -> None:
            net.rng.choice(routers).publish(TOPIC, b"tick")
            net.call_at(net.time + 0.5, publish)

        net.call_at(net.time + 1.0, publish)
    net.advance(30)
    net.settle()
    for router in routers:
        mesh = router.pubsub.mesh[TOPIC]
        assert DEFAULTS.d_lo <= len(mesh) <= DEFAULTS.d_hi
        assert mesh <= router.pubsub.topics[TOPIC]
        assert all(peer in router.pubsub.peers for peer in mesh)
        me = router.info
        for peer in mesh:
            assert me in net.host_of(peer).pubsub.mesh[TOPIC], "asymmetric mesh link"
    if scoring:  # the traffic reached everyone
        assert all(r.pubsub.first_received > 0 for r in routers)


def _oversubscribe(net: TestNet, config: GossipConfig, score: ScoreConfig, n_in: int, n_out: int):
    """A hub with ``n_in`` peers that dialled it and ``n_out`` it dialled; the inbound ones graft it first
    (the hub accepts them up to d_hi), the outbound ones a second later (accepted past d_hi)."""
    hub, *peers = hosts(net, 1 + n_in + n_out, config, score)
    inbound, outbound = peers[:n_in], peers[n_in:]
    hub.subscribe(TOPIC, noop)
    net.connect_all([(peer, hub) for peer in inbound] + [(hub, peer) for peer in outbound])
    net.settle()
    for peer in inbound:
        peer.subscribe(TOPIC, noop)  # the hub is its one topic peer: it grafts the hub
    net.settle()
    net.advance(1.0)
    for peer in outbound:
        peer.subscribe(TOPIC, noop)
    net.settle()
    return hub, inbound, outbound


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scoring", [False, True], ids=["unscored", "scored"])
def test_oversubscribed_mesh_is_pruned_to_d_keeping_outbound_peers(make_net, seed, scoring):
    net = make_net(seed=seed)
    hub, inbound, outbound = _oversubscribe(net, DEFAULTS, SCORED if scoring else NO_SCORE, 17, 3)
    mesh = hub.pubsub.mesh[TOPIC]
    # Inbound GRAFTs were accepted up to d_hi and refused (PRUNE, backoff) beyond; outbound ones past it.
    assert sum(in_mesh(hub, p) for p in inbound) == DEFAULTS.d_hi
    refused = [p for p in inbound if not in_mesh(hub, p)]
    assert len(refused) == 17 - DEFAULTS.d_hi
    for peer in refused:
        assert not in_mesh(peer, hub)
        assert hub.info in peer.pubsub.backoff[TOPIC] and peer.info in hub.pubsub.backoff[TOPIC]
    assert all(in_mesh(hub, p) for p in outbound)
    assert len(mesh) == DEFAULTS.d_hi + 3

    before = len(net.sent)
    net.beat(hub)
    assert len(mesh) == DEFAULTS.d
    assert sum(hub.pubsub.peers[p] for p in mesh) >= DEFAULTS.d_out
    pruned = [s.dst for s in net.sent[before:] if prunes([s.message])]
    assert len(pruned) == DEFAULTS.d_hi + 3 - DEFAULTS.d
    for peer in pruned:
        assert hub.pubsub.backoff[TOPIC][peer.info] == pytest.approx(net.time + DEFAULTS.prune_backoff)
    net.settle()
    for peer in inbound + outbound:  # the pruned peers dropped the hub too
        assert in_mesh(peer, hub) == in_mesh(hub, peer)


def test_oversubscription_prune_keeps_d_peers_when_d_score_leaves_no_room_for_outbound(make_net):
    config = GossipConfig(d=6, d_lo=4, d_hi=7, d_score=6, d_out=2)
    net = make_net(seed=1)
    hub, inbound, outbound = _oversubscribe(net, config, SCORED, 8, 2)
    mesh = hub.pubsub.mesh[TOPIC]
    assert len(mesh) == config.d_hi + 2
    net.beat(hub)
    assert sum(hub.pubsub.peers[p] for p in mesh) >= config.d_out
    assert len(mesh) == config.d


# ---- GRAFT, PRUNE, backoff, peer exchange -----------------------------------------------------------------


def _meshed(net: TestNet, count: int, config: GossipConfig = DEFAULTS, score: ScoreConfig | None = None):
    """``count`` hosts, the first connected to (and, after one heartbeat, meshed with) all the others."""
    routers = hosts(net, count, config, score)
    for router in routers:
        router.subscribe(TOPIC, noop)
    net.connect_all((routers[0], other) for other in routers[1:])
    net.settle()
    net.beat(routers[0])
    net.settle()
    assert all(in_mesh(routers[0], o) and in_mesh(o, routers[0]) for o in routers[1:])
    return routers


def test_prune_backoff_blocks_regraft_until_it_expires(make_net):
    net = make_net()
    r, p = _meshed(net, 2)
    t0 = net.time
    p.runtime.send(r.info, control(prune=(Prune(TOPIC, (), 60),)))
    net.settle()
    assert not in_mesh(r, p)
    assert r.pubsub.backoff[TOPIC][p.info] == pytest.approx(t0 + net.latency + 60)
    # r's mesh is below d_lo and p is its only topic peer: every heartbeat wants p back.
    graft_times = []
    for _ in range(63):
        net.advance(1.0)
        before = len(net.sent)
        net.beat(r)
        if grafts([s.message for s in net.sent[before:] if s.dst is p]):
            graft_times.append(net.time)
    assert graft_times, "never grafted again"
    assert t0 + 60 <= graft_times[0] <= t0 + 62
    assert in_mesh(r, p)


@pytest.mark.parametrize("score", [ScoreConfig(), SCORED], ids=["topic without parameters", "scored topic"])
def test_a_quiet_topic_without_score_parameters_keeps_its_mesh(make_net, score):
    """gossipsub v1.1: a topic without score parameters does not count towards a peer's score. Scoring
    such a topic with default parameters made P3 (the mesh delivery deficit) turn every peer of a quiet
    mesh negative once it activated, 10 s after the GRAFT: PRUNE with backoff, re-GRAFT, PRUNE again.
    Where the topic does have parameters, that P3 prune still happens (so this test can tell)."""
    net = make_net()
    r, p = hosts(net, 2, score=score, heartbeat=True)
    for host in (r, p):
        host.subscribe(TOPIC, noop)
    net.connect(r, p)
    net.advance(120)
    pruned = prunes(net.sent_by(r) + net.sent_by(p))
    if score is SCORED:
        assert pruned
    else:
        assert pruned == [] and in_mesh(r, p) and in_mesh(p, r)
        assert r.pubsub.score.score(p.info) == 0.0
        assert TOPIC not in r.pubsub.score.peers[p.info].topics  # no counters for an unscored topic


def _prune_by_score(net: TestNet):
    """r prunes p at a heartbeat because p's score went negative (q stays); returns (r, p, q, prune)."""
    r, p, q = _meshed(net, 3)
    r.pubsub.score.set_app_score(p.info, -5.0)  # negative, but far above the graylist threshold
    before = len(net.sent)
    net.beat(r)
    assert not in_mesh(r, p) and in_mesh(r, q)
    assert r.pubsub.backoff[TOPIC][p.info] == pytest.approx(net.time + DEFAULTS.prune_backoff)
    (prune,) = prunes([s.message for s in net.sent[before:] if s.dst is p])
    return r, p, q, prune


@pytest.mark.parametrize(("after", "penalty"), [(1.0, 2.0), (20.0, 1.0)])
def test_graft_during_backoff_is_pruned_and_penalised(make_net, after, penalty):
    """Within graft_flood_threshold (10 s) of our PRUNE a GRAFT costs two P7 penalties, later in the backoff
    one; it is answered with a PRUNE without PX, and the backoff starts again."""
    net = make_net()
    r, p, q, _ = _prune_by_score(net)
    t0 = net.time
    net.settle()
    assert not in_mesh(p, r)
    r.pubsub.score.set_app_score(p.info, 0.0)
    net.run(t0 + after)
    before = len(net.sent)
    r.handle_request(p.info, control(graft=(Graft(TOPIC),)))
    assert not in_mesh(r, p)
    assert r.pubsub.score.peers[p.info].behaviour_penalty == penalty
    reply = [s.message for s in net.sent[before:]]
    assert all(s.dst is p for s in net.sent[before:])
    assert prunes(reply) == [Prune(TOPIC, (), int(DEFAULTS.prune_backoff))]
    assert r.pubsub.backoff[TOPIC][p.info] == pytest.approx(net.time + DEFAULTS.prune_backoff)


def test_heartbeat_prune_of_a_negative_score_peer_offers_no_px(make_net):
    net = make_net()
    _, _, _, prune = _prune_by_score(net)
    assert prune.topic == TOPIC and prune.backoff == int(DEFAULTS.prune_backoff)
    assert prune.peers == ()


def test_unsubscribe_prunes_the_mesh_with_the_unsubscribe_backoff(make_net):
    net = make_net()
    r, p, q = _meshed(net, 3)
    t0 = net.time
    before = len(net.sent)
    r.unsubscribe(TOPIC)
    assert TOPIC not in r.pubsub.mesh
    for peer in (p, q):
        (prune,) = prunes([s.message for s in net.sent[before:] if s.dst is peer])
        assert prune.topic == TOPIC and prune.backoff == int(DEFAULTS.unsubscribe_backoff)
        assert r.pubsub.backoff[TOPIC][peer.info] == pytest.approx(t0 + DEFAULTS.unsubscribe_backoff)
    net.settle()
    for peer in (p, q):
        assert not in_mesh(peer, r)
        assert r.info not in peer.pubsub.topics[TOPIC]
        assert peer.pubsub.backoff[TOPIC][r.info] == pytest.approx(t0 + net.latency + DEFAULTS.unsubscribe_backoff)


def test_graft_for_a_topic_we_are_not_in_is_ignored(make_net):
    # gossipsub-v1.1 spam protection: no answer, so a prober cannot learn our topics.
    net = make_net()
    r, p, *others = hosts(net, 4)
    for router in (p, *others):
        router.subscribe("other", noop)
        net.connect(r, router)
    net.settle()
    before = len(net.sent)
    r.handle_request(p.info, control(graft=(Graft("other"),)))
    assert "other" not in r.pubsub.mesh
    assert net.sent[before:] == []


@pytest.mark.parametrize(("app_score", "followed"), [(0.0, False), (0.9, False), (1.0, True), (5.0, True)])
def test_px_is_followed_only_from_a_pruner_scoring_at_least_accept_px_threshold(make_net, app_score, followed):
    net = make_net()
    r, pruner, known = _meshed(net, 3)
    r.pubsub.score.set_app_score(pruner.info, app_score)
    net.advance(1.0)
    net.beat(r)  # scores are cached per heartbeat
    fresh = [net.outsider(keypair(i)).peer_id for i in range(3)]
    offered = [*(PeerExchange(x.raw) for x in fresh), PeerExchange(known.info.peer_id.raw),
               PeerExchange(r.info.peer_id.raw), PeerExchange(b"\x99\x02no")]
    before = len(net.dials)
    r.handle_request(pruner.info, control(prune=(Prune(TOPIC, tuple(offered), 60),)))
    assert not in_mesh(r, pruner)
    assert r.pubsub.backoff[TOPIC][pruner.info] == pytest.approx(net.time + 60)
    dialled = [peer.peer_id for src, peer in net.dials[before:] if src is r]
    # Never ourselves, a peer we are connected to, or an ID that does not parse.
    assert sorted(dialled, key=lambda x: x.raw) == (sorted(fresh, key=lambda x: x.raw) if followed else [])


def test_px_dials_at_most_prune_peers(make_net):
    config = GossipConfig(prune_peers=2)
    net = make_net()
    r, pruner = _meshed(net, 2, config)
    r.pubsub.score.set_app_score(pruner.info, 10.0)
    net.advance(1.0)
    net.beat(r)
    offered = tuple(PeerExchange(net.outsider(keypair(i)).peer_id.raw) for i in range(5))
    before = len(net.dials)
    r.handle_request(pruner.info, control(prune=(Prune(TOPIC, offered, 60),)))
    assert len(net.dials) - before == 2


# ---- gossip: IHAVE / IWANT --------------------------------------------------------------------------------


def test_a_message_lost_on_every_mesh_link_arrives_by_gossip(make_net):
    net = make_net(seed=4)
    routers = hosts(net, 12, GossipConfig(flood_publish=False), NO_SCORE, heartbeat=True)
    net.connect_all(itertools.combinations(routers, 2))
    boxes = [inbox(r) for r in routers]
    net.advance(5.0)
    net.settle()
    victim, publisher = routers[0], routers[1]
    v = victim.info
    # Every copy forwarded (or published) along a mesh link towards the victim is lost.
    net.drop(lambda src, dst, rpc: dst is victim and type(rpc) is RPC and bool(rpc.publish)
             and v in src.pubsub.mesh.get(TOPIC, ()))
    t0 = net.time
    mid = publisher.publish(TOPIC, b"lost on the mesh")
    net.run(t0 + 2 * DEFAULTS.heartbeat_interval + 0.5)
    assert all(len(box) == 1 for i, box in enumerate(boxes) if i != 1)
    assert boxes[0][0].data == b"lost on the mesh"
    assert mid in iwanted(net.sent_by(victim)), "the victim did not get it by IWANT"


def test_iwant_is_answered_at_most_gossip_retransmission_times(make_net):
    net = make_net()
    a, b = hosts(net, 2, GossipConfig(gossip_retransmission=3))
    net.connect(a, b)
    a.subscribe(TOPIC, noop)
    mid = a.publish(TOPIC, b"cached")
    assert not published(net.sent_by(a, b))  # b is not in the topic: nothing flooded to it
    before = len(net.sent)
    for _ in range(5):
        a.handle_request(b.info, control(iwant=(IWant((mid,)),)))
    answers = [s.message for s in net.sent[before:]]
    assert all(s.dst is b for s in net.sent[before:])
    assert len(answers) == 3  # the refused ones get no (empty) answer
    assert [m.data for m in published(answers)] == [b"cached"] * 3


@pytest.mark.parametrize("kept", [False, True], ids=["broken", "kept"])
def test_an_ihave_whose_message_never_comes_costs_a_penalty_after_iwant_followup_time(make_net, kept):
    net = make_net()
    a, b = hosts(net, 2)
    net.connect(a, b)
    a.subscribe(TOPIC, noop)
    message = sign(b.keypair, TOPIC, b"promised")
    mid = default_message_id(message)
    net.settle()
    t0 = net.time
    a.handle_request(b.info, control(ihave=(IHave(TOPIC, (mid,)),)))
    assert iwanted(net.sent_by(a, b)) == [mid]
    assert a.pubsub.promises[mid][b.info] == pytest.approx(t0 + DEFAULTS.iwant_followup_time)
    if kept:
        net.advance(1.0)
        a.handle_request(b.info, RPC(publish=(message,)))
    stats = a.pubsub.score.peers[b.info]
    for second in range(1, int(DEFAULTS.iwant_followup_time) + 1):
        net.run(t0 + second)
        net.beat(a)
        assert stats.behaviour_penalty == 0.0
    net.run(t0 + DEFAULTS.iwant_followup_time + 1)
    net.beat(a)
    assert stats.behaviour_penalty == (0.0 if kept else 1.0)
    assert mid not in a.pubsub.promises


def test_ihave_only_for_unseen_messages_of_our_topics(make_net):
    net = make_net()
    a, b = hosts(net, 2)
    net.connect(a, b)
    a.subscribe(TOPIC, noop)
    own = a.publish(TOPIC, b"mine")
    a.handle_request(b.info, control(ihave=(IHave(TOPIC, (own,)), IHave("elsewhere", (b"x" * 40,)))))
    assert iwanted(net.sent_by(a, b)) == []
    assert not a.pubsub.promises


# ---- publishing -------------------------------------------------------------------------------------------


def test_own_messages_are_flooded_to_every_topic_peer_above_publish_threshold(make_net):
    net = make_net()
    a = hosts(net, 1)[0]
    subscribers = hosts(net, 9)
    shunned = hosts(net, 1)[0]
    outsiders = hosts(net, 2)
    for peer in (*subscribers, shunned, *outsiders):
        net.connect(a, peer)
    for peer in (*subscribers, shunned):
        peer.subscribe(TOPIC, noop)
    net.settle()
    a.pubsub.score.set_app_score(shunned.info, -60.0)  # below publish_threshold (-50), above graylist (-80)
    net.beat(a)  # scores are cached per heartbeat
    a.subscribe(TOPIC, noop)
    assert len(a.pubsub.mesh[TOPIC]) == DEFAULTS.d
    before = len(net.sent)
    a.publish(TOPIC, b"flood")
    assert receivers(net, a, before) == ids(subscribers)


def test_forwarded_messages_go_to_the_mesh_only_and_not_back(make_net):
    net = make_net()
    a = hosts(net, 1)[0]
    peers = hosts(net, 10)
    for peer in peers:
        net.connect(a, peer)
        peer.subscribe(TOPIC, noop)
    net.settle()
    a.subscribe(TOPIC, noop)
    mesh = [net.host_of(p) for p in a.pubsub.mesh[TOPIC]]
    sender, publisher = mesh[0], mesh[1]
    before = len(net.sent)
    a.handle_request(sender.info, RPC(publish=(sign(publisher.keypair, TOPIC, b"relay"),)))
    assert receivers(net, a, before) == ids(mesh) - {id(sender), id(publisher)}


@pytest.mark.parametrize(("topic_peers", "expected"), [(3, 3), (10, DEFAULTS.d)])
def test_publishing_without_subscribing_uses_a_fanout_that_expires(make_net, topic_peers, expected):
    config = GossipConfig(flood_publish=False)
    net = make_net()
    a = hosts(net, 1, config)[0]
    peers = hosts(net, topic_peers, config)
    for peer in peers:
        net.connect(a, peer)
        peer.subscribe(TOPIC, noop)
    net.settle()
    before = len(net.sent)
    a.publish(TOPIC, b"one")
    fanout = a.pubsub.fanout[TOPIC]
    assert len(fanout) == expected and fanout <= a.pubsub.topics[TOPIC]
    assert receivers(net, a, before) == {id(net.host_of(p)) for p in fanout}
    assert TOPIC not in a.pubsub.mesh
    net.advance(30.0)
    net.beat(a)
    before = len(net.sent)
    a.publish(TOPIC, b"two")
    assert receivers(net, a, before) == {id(net.host_of(p)) for p in fanout}
    last = net.time
    net.run(last + config.fanout_ttl - 1)
    net.beat(a)
    assert a.pubsub.fanout[TOPIC] == fanout
    net.run(last + config.fanout_ttl + 1)
    net.beat(a)
    assert TOPIC not in a.pubsub.fanout and TOPIC not in a.pubsub.last_published


# ---- the seen cache -------------------------------------------------------------------------------------


def test_duplicates_are_delivered_and_forwarded_once_and_seen_entries_expire(make_net):
    config = GossipConfig(seen_ttl=5.0)
    net = make_net()
    a, b, c, d = hosts(net, 4, config)
    for peer in (b, c, d):
        peer.subscribe(TOPIC, noop)
        net.connect(a, peer)
    net.settle()
    got = inbox(a)
    message = sign(keypair(1), TOPIC, b"once")
    mid = default_message_id(message)
    t0 = net.time
    before = len(net.sent)
    a.handle_request(b.info, RPC(publish=(message,)))
    assert got == [message]
    assert receivers(net, a, before) == ids([c, d])
    before = len(net.sent)
    a.handle_request(c.info, RPC(publish=(message,)))
    a.handle_request(b.info, RPC(publish=(message,)))
    assert got == [message]
    assert receivers(net, a, before) == set()
    assert (a.pubsub.received, a.pubsub.first_received) == (3, 1)
    net.run(t0 + config.seen_ttl - 1)
    net.beat(a)
    assert mid in a.pubsub.seen
    net.run(t0 + config.seen_ttl + 1)
    net.beat(a)
    assert mid not in a.pubsub.seen
    a.handle_request(d.info, RPC(publish=(message,)))  # forgotten: new again
    assert got == [message, message]


# ---- signatures and message IDs -------------------------------------------------------------------------


def _bad(kind: str, publisher: Keypair, other: Keypair) -> Message:
    good = sign(publisher, TOPIC, b"payload", 7)
    if kind == "tampered data":
        return replace(good, data=b"payload!")
    if kind == "tampered signature":
        return replace(good, signature=good.signature[:-1] + bytes([good.signature[-1] ^ 1]))
    if kind == "no signature":
        return replace(good, signature=b"")
    if kind == "no seqno":
        unsigned = Message(good.source, good.data, b"", TOPIC)
        return replace(unsigned, signature=publisher.sign(signing_payload(unsigned)))
    if kind == "from is not the signer":
        return replace(good, signature=other.sign(signing_payload(replace(good, signature=b""))))
    if kind == "key of another peer":
        return replace(good, key=other.public_key)
    if kind == "from is not a peer ID":
        unsigned = Message(b"\x00\x01", good.data, good.seqno, TOPIC)
        return replace(unsigned, signature=publisher.sign(signing_payload(unsigned)))
    raise AssertionError(kind)


def _receiver(net: TestNet):
    """a (subscribed, meshed with c) and b, a peer of a outside the topic that will send to it."""
    a, b, c = hosts(net, 3, score=SCORED)
    c.subscribe(TOPIC, noop)
    net.connect(a, b)
    net.connect(a, c)
    net.settle()
    got = inbox(a)
    assert in_mesh(a, c)
    return a, b, c, got


@pytest.mark.parametrize("kind", ["tampered data", "tampered signature", "no signature", "no seqno",
                                  "from is not the signer", "key of another peer", "from is not a peer ID"])
def test_badly_signed_messages_are_dropped_and_count_as_invalid(make_net, kind):
    net = make_net()
    a, b, c, got = _receiver(net)
    message = _bad(kind, keypair(1), keypair(2))
    before = len(net.sent)
    a.handle_request(b.info, RPC(publish=(message,)))
    assert got == []
    assert receivers(net, a, before) == set()
    assert default_message_id(message) not in a.pubsub.seen
    assert (a.pubsub.invalid, a.pubsub.first_received) == (1, 0)
    assert a.pubsub.score.peers[b.info].topics[TOPIC].invalid == 1
    w4 = TopicScoreParams().invalid_message_deliveries_weight
    assert a.pubsub.score.score(b.info) == pytest.approx(w4)


def test_a_validly_signed_message_is_delivered_and_forwarded(make_net):
    net = make_net()
    a, b, c, got = _receiver(net)
    message = sign(keypair(1), TOPIC, b"payload", 7)
    before = len(net.sent)
    a.handle_request(b.info, RPC(publish=(message,)))
    assert got == [message]
    assert receivers(net, a, before) == {id(c)}
    assert (a.pubsub.invalid, a.pubsub.first_received) == (0, 1)
    stats = a.pubsub.score.peers[b.info].topics[TOPIC]
    assert (stats.invalid, stats.first_deliveries) == (0, 1)


def test_a_peer_sending_invalid_messages_is_graylisted(make_net):
    net = make_net()
    a, b, c, got = _receiver(net)
    for seqno in range(3):  # P4 = -20 * 3**2 = -180, below graylist_threshold (-80)
        a.handle_request(b.info, RPC(publish=(replace(sign(keypair(1), TOPIC, b"x", seqno), data=b"y"),)))
    net.advance(1.0)
    net.beat(a)  # the cached scores are refreshed
    received = a.pubsub.received
    a.handle_request(b.info, RPC(publish=(sign(keypair(1), TOPIC, b"fine", 99),)))
    assert got == [] and a.pubsub.received == received


def test_a_custom_message_id_is_used_for_dedup(make_net):
    def by_content(message: Message) -> bytes:
        return hashlib.sha256(message.data).digest()

    net = make_net()
    a = hosts(net, 1, router=partial(GossipSub, message_id=by_content))[0]
    plain = hosts(net, 1)[0]
    b = hosts(net, 1)[0]
    for router in (a, plain):
        net.connect(router, b)
    net.settle()
    boxes = [inbox(a), inbox(plain)]
    first, second = sign(keypair(1), TOPIC, b"same", 1), sign(keypair(2), TOPIC, b"same", 2)
    for router in (a, plain):
        for message in (first, second):
            router.handle_request(b.info, RPC(publish=(message,)))
    assert boxes[0] == [first]  # one content, one message
    assert boxes[1] == [first, second]  # the default ID (from + seqno) tells them apart
    assert by_content(first) in a.pubsub.seen and default_message_id(first) not in a.pubsub.seen
    assert a.publish(TOPIC, b"new") == by_content(Message(b"", b"new", b"", TOPIC))


def test_copies_from_mesh_peers_within_the_delivery_window_count_for_p3(make_net):
    """P3 counts a mesh peer's first delivery and its near-first ones: a duplicate that arrives within
    mesh_message_deliveries_window of the first copy, once per peer."""
    net = make_net()
    a, b, c = _meshed(net, 3, score=replace(SCORED, decay_interval=100.0))  # no decay during the test
    window = TopicScoreParams().mesh_message_deliveries_window
    stats = {p: a.pubsub.score.peers[p.info].topics[TOPIC] for p in (b, c)}
    on_time, late = sign(keypair(1), TOPIC, b"1", 1), sign(keypair(1), TOPIC, b"2", 2)
    t0 = net.time
    a.handle_request(b.info, RPC(publish=(on_time,)))
    a.handle_request(b.info, RPC(publish=(late,)))
    net.run(t0 + window / 2)
    a.handle_request(c.info, RPC(publish=(on_time,)))
    a.handle_request(c.info, RPC(publish=(on_time,)))  # a second copy from the same peer: no credit
    net.run(t0 + window + 0.5)
    a.handle_request(c.info, RPC(publish=(late,)))
    assert stats[b].first_deliveries == stats[b].mesh_deliveries == 2
    assert (stats[c].first_deliveries, stats[c].mesh_deliveries) == (0, 1)
