"""Rate limits on what peers ask (``[security] rate_limit_per_peer`` / ``total_rate_limit``): per peer and in
total, on requests, one-way messages and streams, in the sans-IO host so both runtimes refuse alike; a refused
request fails at the requester (never a made-up answer), and every refusal is counted."""

from __future__ import annotations

import asyncio

import pytest

from p2pnode.config import KadConfig
from p2pnode.kad.messages import FindNode, FindNodeResponse
from p2pnode.runtime.http import NodeCollector
from p2pnode.runtime.node import Node, completion
from p2pnode.security.limits import InboundLimits, RateLimited


def test_buckets_per_peer_and_in_total():
    limits = InboundLimits(per_peer=3, total=5)
    assert [limits.admit("a", "kad", 0.0) for _ in range(3)] == [None] * 3
    refused = limits.admit("a", "kad", 0.0)
    assert isinstance(refused, RateLimited) and refused.scope == "peer" and 0 < refused.retry_after <= 1 / 3 + 1e-9
    assert limits.admit("b", "kad", 0.0) is None and limits.admit("b", "pubsub", 0.0) is None
    assert limits.admit("c", "kad", 0.0).scope == "total"  # five taken in all
    assert limits.admit("a", "kad", 1.0) is None  # a second later the peer has tokens again
    assert limits.admit("a", "stream", 1.0) is None  # streams have buckets of their own
    assert limits.refused == {("kad", "peer"): 1, ("kad", "total"): 1}
    with pytest.raises(ValueError):
        InboundLimits(0, 10)


def test_a_flooding_peer_is_refused_while_others_are_answered(make_net):
    net = make_net(seed=1)
    config = KadConfig(k=4, alpha=3)
    server = net.add_host(config, limits=InboundLimits(per_peer=5, total=1000))
    flooder, honest = net.add_host(config), net.add_host(config)
    outcomes = {"answered": 0, "refused": 0}

    def answered(response):
        assert type(response) is FindNodeResponse  # a refusal is never delivered as an answer
        outcomes["answered"] += 1

    def failed(reason):
        assert reason == "rate limited"
        outcomes["refused"] += 1

    for _ in range(40):
        flooder.runtime.request(server.info, FindNode(b"x"), 2.0, answered, failed)
    net.settle()
    assert outcomes == {"answered": 5, "refused": 35}
    got = []
    for _ in range(4):
        honest.runtime.request(server.info, FindNode(b"y"), 2.0, got.append, lambda why: got.append(why))
    net.settle()
    assert all(type(r) is FindNodeResponse for r in got) and len(got) == 4
    assert server.limits.refused == {("kad", "peer"): 35}
    net.advance(1.0)  # the flooder's bucket refills
    flooder.runtime.request(server.info, FindNode(b"x"), 2.0, answered, failed)
    net.settle()
    assert outcomes["answered"] == 6


def test_without_limits_nothing_is_refused(make_net):
    net = make_net(seed=2)
    server, client = net.add_host(), net.add_host()
    got = []
    for _ in range(300):
        client.runtime.request(server.info, FindNode(b"x"), 2.0, got.append, got.append)
    net.settle()
    assert len(got) == 300 and all(type(r) is FindNodeResponse for r in got)


def test_a_real_node_resets_the_streams_of_a_peer_over_its_limit():
    async def main():
        async with Node(listen=["/ip6/::1/tcp/0"], transports=["tcp"], pubsub=False, rate_limits=(4, 1000)) as server, \
                Node(listen=["/ip6/::1/tcp/0"], transports=["tcp"], pubsub=False) as client:
            client.swarm.learn(server.peer_id, server.listen_addrs)
            target = server.host.dht.info

            async def one():
                return await completion(lambda done: client.host.runtime.request(
                    target, FindNode(b"k"), 5.0, done, lambda why: done(RuntimeError(why))))

            answers = await asyncio.gather(*(one() for _ in range(20)))
            ok = [a for a in answers if type(a) is FindNodeResponse]
            assert 1 <= len(ok) <= 8 and len(ok) + sum(isinstance(a, RuntimeError) for a in answers) == 20
            refused = server.host.limits.refused
            assert sum(refused.values()) >= 12 and {kind for kind, _ in refused} <= {"stream", "kad"}
            families = {m.name: m for m in NodeCollector(server).collect()}
            limited = {tuple(s.labels.values()): s.value for s in families["p2p_rate_limited"].samples
                       if s.name.endswith("_total")}
            assert sum(limited.values()) == sum(refused.values())

    asyncio.run(main())
