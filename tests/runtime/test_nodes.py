"""Real nodes on loopback: many ``Node`` instances in one event loop, over QUIC or TCP+Noise+Yamux."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from p2pnode.config import KadConfig
from p2pnode.framing import encode_uvarint
from p2pnode.identity import Keypair
from p2pnode.kad.messages import PeerInfo
from p2pnode.runtime.asyncio_runtime import KAD_PROTOCOL, PING_PROTOCOL
from p2pnode.runtime.node import Node
from p2pnode.transports import multistream
from p2pnode.transports.base import StreamReset
from p2pnode.transports.multistream import NegotiationError
from tests.test_wire import ECHO, Echo, EchoReply, echo_registered, serve_echo

LISTEN = {"quic": "/ip6/::1/udp/0/quic-v1", "tcp": "/ip6/::1/tcp/0"}
_seeds = itertools.count(1)


def run(coro, timeout: float = 60.0):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def make_node(transport: str, bootstrap=(), **kwargs) -> Node:
    keypair = Keypair.from_seed(next(_seeds).to_bytes(32, "big"))
    return Node(keypair, listen=[LISTEN[transport]], transports=[transport], bootstrap=bootstrap, seed=1, **kwargs)


async def start_network(transport: str, count: int, **kwargs) -> list[Node]:
    first = make_node(transport, **kwargs)
    await first.start()
    boot = [str(first.listen_addrs[0])]
    others = [make_node(transport, bootstrap=boot, **kwargs) for _ in range(count - 1)]
    await asyncio.gather(*(n.start() for n in others))
    nodes = [first, *others]
    await asyncio.gather(*(n.wait_bootstrapped(30) for n in others))
    return nodes


async def stop_all(nodes: list[Node]) -> None:
    await asyncio.gather(*(n.stop() for n in nodes))


@pytest.mark.parametrize("transport", ["quic", "tcp"])
def test_twenty_nodes_find_each_other_store_and_expire(transport):
    async def scenario():
        nodes = await start_network(transport, 20, kad=KadConfig(request_timeout=5.0, slow_after=2.0))
        try:
            # every node finds every other by lookup
            for node in nodes:
                found = await asyncio.gather(*(node.dht.find_peer(other.peer_id) for other in nodes
                                               if other is not node))
                assert all(info is not None and info.addrs for info in found), node.peer_id
            # put/get from different nodes
            put = await nodes[3].dht.put(b"/p2pnode/greeting", b"hello", ttl=1.5)
            assert put.replicas >= 5
            assert await nodes[17].dht.get(b"/p2pnode/greeting") == b"hello"
            assert await nodes[0].dht.get(b"/p2pnode/nothing-here") is None
            # records expire everywhere after their TTL
            await asyncio.sleep(1.6)
            assert await nodes[11].dht.get(b"/p2pnode/greeting") is None
            assert all(n.host.dht.records.get(b"/p2pnode/greeting", n.host.runtime.now()) is None for n in nodes)
        finally:
            await stop_all(nodes)

    run(scenario(), timeout=90)


@pytest.mark.parametrize("transport", ["quic", "tcp"])
def test_gossip_reaches_every_subscriber(transport):
    async def scenario():
        nodes = await start_network(transport, 8, peers=4)
        try:
            subs = [n.pubsub.subscribe("news") for n in nodes]
            await asyncio.sleep(2.5)  # subscriptions spread, meshes form at the first heartbeats
            nodes[5].pubsub.publish("news", b"big news")
            got = await asyncio.gather(*(asyncio.wait_for(s.get(), 10) for i, s in enumerate(subs)))
            assert {m.data for m in got} == {b"big news"}
            assert {m.source for m in got} == {nodes[5].peer_id.raw}
        finally:
            await stop_all(nodes)

    run(scenario())


def test_ping_and_identify_over_both_transports():
    async def scenario():
        a = make_node("quic")
        a._listen.append(LISTEN["tcp"])
        a._transport_names = ["quic", "tcp"]
        b = make_node("tcp")
        await a.start()
        await b.start()
        try:
            b.swarm.learn(a.peer_id, [a.swarm.listen_addrs[1]])  # a's TCP address
            rtts = await b.ping(a.peer_id, count=5)
            assert len(rtts) == 5 and all(0 < r < 1 for r in rtts)
            await asyncio.sleep(0.2)
            info = b.identified[a.peer_id]
            assert "/ipfs/kad/1.0.0" in info.protocols and "/meshsub/1.1.0" in info.protocols
            assert info.agent_version.startswith("p2pnode/")
            assert {x.to_bytes() for x in a.swarm.advertised_addrs()} == set(info.listen_addrs)
            # b keeps the addresses it can dial: a's TCP ones, not its QUIC ones
            tcp = {str(x) for x in a.swarm.advertised_addrs() if "/tcp/" in str(x)}
            assert {str(m) for m in b.swarm.addrbook[a.peer_id]} == tcp
        finally:
            await stop_all([a, b])

    run(scenario())


@pytest.mark.parametrize("transport", ["quic", "tcp"])
def test_a_protocol_registered_in_the_wire_table_is_served_and_spoken_with_no_runtime_code(transport):
    async def scenario():
        with echo_registered():
            a, b = make_node(transport), make_node(transport)
            await a.start()
            await b.start()
            try:
                serve_echo(b.host)
                assert ECHO.ids[0] in b.swarm.protocols
                answer = asyncio.get_running_loop().create_future()
                b_info = PeerInfo(b.peer_id, tuple(x.to_bytes() for x in b.swarm.advertised_addrs()))
                a.runtime.request(b_info, Echo(b"hello"), 5.0, answer.set_result,
                                  lambda why: answer.set_exception(AssertionError(why)))
                assert await answer == EchoReply(b"olleh")
            finally:
                await stop_all([a, b])

    run(scenario())


def test_ping_to_a_peer_without_ping_fails_cleanly():
    """Ping negotiates lazily (the first ping travels with the proposal): a peer that refuses the protocol
    reads the ping as a second, malformed proposal and resets the stream, so the caller gets a prompt
    transport error (the refusal or the reset, whichever it reads first), and the connection stays usable."""
    async def scenario():
        a, b = make_node("quic"), make_node("quic")
        await a.start()
        await b.start()
        try:
            del a.swarm.handlers[PING_PROTOCOL]
            b.swarm.learn(a.peer_id, a.swarm.listen_addrs)
            with pytest.raises((NegotiationError, StreamReset)):
                await b.ping(a.peer_id, timeout=5)
            assert await b.dht.find_peer(a.peer_id) is not None
        finally:
            await stop_all([a, b])

    run(scenario())


@pytest.mark.parametrize("garbage", [
    b"\xff" * 10,  # a varint longer than nine bytes
    encode_uvarint(10 * 1024 * 1024) + b"x",  # a frame far over the limit
    encode_uvarint(5) + b"\x08\xff\xff\xff\xff",  # a truncated protobuf
    encode_uvarint(3) + b"ab",  # the stream ends inside the frame
])
def test_bad_frames_reset_the_stream_and_the_node_carries_on(garbage):
    async def scenario():
        a, b = make_node("tcp"), make_node("tcp")
        await a.start()
        await b.start()
        try:
            b.swarm.learn(a.peer_id, a.swarm.listen_addrs)
            stream = await b.swarm.new_stream(a.peer_id, [KAD_PROTOCOL])
            await stream.write(garbage)
            await stream.close()
            with pytest.raises(Exception) as info:
                while await stream.read():
                    pass
                raise AssertionError("the node answered garbage instead of resetting the stream")
            assert "reset" in str(info.value).lower()
            # the node still answers on the same connection and on new ones
            assert len(await b.ping(a.peer_id)) == 1
            assert await b.dht.find_peer(a.peer_id) is not None
        finally:
            await stop_all([a, b])

    run(scenario())


def test_unknown_protocol_is_refused_cleanly():
    async def scenario():
        a, b = make_node("quic"), make_node("quic")
        await a.start()
        await b.start()
        try:
            b.swarm.learn(a.peer_id, a.swarm.listen_addrs)
            with pytest.raises(NegotiationError):
                await b.swarm.new_stream(a.peer_id, ["/no/such/1.0.0", "/nor/this/2.0.0"])
            conn = b.swarm.connection(a.peer_id)
            stream = await conn.open_stream()
            assert await multistream.select(stream, ["/x/1", "/ipfs/ping/1.0.0"]) == "/ipfs/ping/1.0.0"
            stream.reset()
            assert len(await b.ping(a.peer_id)) == 1
        finally:
            await stop_all([a, b])

    run(scenario())


def test_dialling_the_wrong_peer_id_fails_and_the_dht_marks_the_request_failed():
    async def scenario():
        a, b = make_node("quic"), make_node("quic")
        await a.start()
        await b.start()
        try:
            impostor = Keypair.from_seed(b"\x99" * 32).peer_id
            b.swarm.learn(impostor, a.swarm.listen_addrs)  # a's address, someone else's ID
            with pytest.raises(Exception, match="(?i)peer|handshake|dial"):
                await b.ping(impostor)
            assert b.swarm.connection(impostor) is None
        finally:
            await stop_all([a, b])

    run(scenario())


def test_a_node_restarts_and_a_taken_port_fails_cleanly():
    async def scenario():
        a = make_node("tcp")
        await a.start()
        await a.stop()
        await a.start()  # again, on a fresh port
        b = make_node("tcp")
        b._listen = ["/ip6/::1/tcp/0", f"/ip6/::1/tcp/{a.swarm.listen_addrs[0].value_for_protocol('tcp')}"]
        with pytest.raises(OSError):
            await b.start()
        assert not b.running and b.swarm.closing
        b._listen = ["/ip6/::1/tcp/0"]
        await b.start()
        b.swarm.learn(a.peer_id, a.swarm.listen_addrs)
        assert len(await b.ping(a.peer_id)) == 1
        await stop_all([a, b])

    run(scenario())


def test_deferred_join_listens_but_refuses_until_joined():
    async def scenario():
        a = make_node("tcp")
        await a.start()
        b = make_node("tcp", bootstrap=[str(a.listen_addrs[0])])
        await b.start(join=False)
        assert b.running and not b.host.running
        a.swarm.learn(b.peer_id, b.swarm.listen_addrs)
        with pytest.raises(Exception):  # noqa: B017 - the connection is closed on arrival, whatever the error
            await a.ping(b.peer_id, timeout=3)
        b.join()
        await b.wait_bootstrapped(10)
        assert a.peer_id in {p.peer_id for p in b.host.dht.table.peers.values()}
        assert len(await a.ping(b.peer_id)) == 1
        await stop_all([a, b])

    run(scenario())


@pytest.mark.parametrize("pubsub", [False, True])
def test_the_peer_limit_is_on_pubsub_peers_not_on_dht_connections(pubsub):
    """Without pub-sub every connection serves requests and stays open past max_peers; with pub-sub the
    host refuses inbound peers beyond it (a DHT-only emulation of 100 nodes depends on the first)."""

    async def scenario():
        server = make_node("tcp", pubsub=pubsub, peers=1, max_peers=2)
        await server.start()
        clients = [make_node("tcp", pubsub=pubsub) for _ in range(4)]
        await asyncio.gather(*(c.start() for c in clients))
        try:
            answers = await asyncio.gather(*(c.ping(server.peer_id, addrs=[server.listen_addrs[0]])
                                             for c in clients), return_exceptions=True)
            await asyncio.sleep(0.2)
            failed = sum(isinstance(a, BaseException) for a in answers)
            return failed, len(server.connected_peers())
        finally:
            await stop_all([server, *clients])

    failed, connected = run(scenario())
    if pubsub:
        assert (failed, connected) == (2, 2)
    else:
        assert (failed, connected) == (0, 4)
