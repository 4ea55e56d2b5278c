"""The resource manager on a real node (loopback): what one authenticated peer can make the node hold is
bounded by the configured limits, refusals are stream resets counted in /metrics, and everything comes
back when the peer's streams idle out or its connection closes."""

from __future__ import annotations

import asyncio
import logging

import pytest
from multiaddr import Multiaddr

from p2pnode.framing import encode_uvarint
from p2pnode.identity import Keypair
from p2pnode.resources import MIB, ResourceLimits
from p2pnode.runtime.asyncio_runtime import PING_PROTOCOL
from p2pnode.runtime.http import NodeCollector
from p2pnode.transports import multistream, yamux
from p2pnode.transports.base import TransportError
from tests.runtime.test_nodes import make_node, run
from tests.transports.pair import make_transport

MESHSUB = "/meshsub/1.1.0"
REQRESP = "/p2pnode/reqresp/1.0.0"
ANNOUNCED = 1 << 20  # the frame each stream announces (the pub-sub maximum) ...
SENT = 250 * 1024  # ... and the part of it that is sent


async def half_frames(client, addr: Multiaddr, peer, streams: int) -> list:
    """Open ``streams`` pub-sub streams to ``peer`` and send half a frame on each; the streams."""
    conn = await client.dial(addr, peer)
    body = encode_uvarint(ANNOUNCED) + b"x" * SENT

    async def one():
        stream = await conn.open_stream()
        try:
            await multistream.propose(stream, MESHSUB)  # lazy: the half frame goes with the proposal
            await stream.write(body)
        except TransportError:  # refused: reset by the node
            pass
        return stream

    opened = []
    for start in range(0, streams, 100):
        opened += await asyncio.gather(*(one() for _ in range(min(100, streams - start))))
    return conn, opened


def refusals(node) -> dict[str, float]:
    family = next(f for f in NodeCollector(node, "none").collect() if f.name == "p2p_resource_refusals")
    return {s.labels["limit"]: s.value for s in family.samples}


@pytest.mark.slow
def test_a_peer_with_a_thousand_half_frames_holds_at_most_its_limit_and_frees_it_on_close():
    limits = ResourceLimits(peer_memory=8 * MIB, frame_idle_timeout=60)

    async def scenario():
        node = make_node("tcp", resources=limits)
        await node.start()
        client = make_transport("tcp", Keypair.generate())
        try:
            conn, _ = await half_frames(client, node.listen_addrs[0], node.peer_id, 1000)
            await asyncio.sleep(0.5)  # the last frames arrive
            held = node.resources
            assert held.peak_buffered <= limits.peer_memory
            assert held.peer_buffered(conn.local_peer) <= limits.peer_memory
            assert held.buffered > limits.peer_memory // 2  # the peer did get its share
            refused = refusals(node)
            assert refused.get("peer_memory", 0) + refused.get("peer_streams", 0) >= 1000 - limits.peer_memory // SENT
            assert held.streams <= limits.peer_streams
            await conn.close()
            for _ in range(50):
                if held.buffered == 0 and held.streams == 0:
                    break
                await asyncio.sleep(0.1)
            assert (held.buffered, held.streams) == (0, 0)
        finally:
            await client.close()
            await node.stop()

    run(scenario())


@pytest.mark.parametrize("transport", ["tcp", "quic"])
def test_streams_refused_over_the_peer_limit_leave_the_connection_usable(transport):
    limits = ResourceLimits(peer_memory=MIB, frame_idle_timeout=60)
    streams, refused = 24, 24 - MIB // SENT

    async def scenario():
        node = make_node(transport, resources=limits)
        await node.start()
        client = make_transport(transport)
        try:
            conn, opened = await half_frames(client, node.listen_addrs[0], node.peer_id, streams)
            for _ in range(300):
                await asyncio.sleep(0.1)
                if sum(s.is_reset for s in opened) >= refused:
                    break
            assert node.resources.peak_buffered <= limits.peer_memory
            assert refusals(node)["peer_memory"] >= refused
            # what was refused no longer counts against the connection's flow control: it goes on
            if transport == "quic":
                served = node.swarm.connections[conn.local_peer][0]
                assert served._quic.p2p_unread == sum(s._uncredited() for s in served._streams.values())
            ping = await conn.open_stream()
            await multistream.select(ping, [PING_PROTOCOL])
            await ping.write(b"p" * 32)
            assert await asyncio.wait_for(ping.readexactly(32), 5) == b"p" * 32
            await conn.close()
            for _ in range(50):
                if node.resources.buffered == 0:
                    break
                await asyncio.sleep(0.1)
            assert node.resources.buffered == 0
        finally:
            await client.close()
            await node.stop()

    run(scenario())


def test_a_half_finished_frame_resets_its_stream_after_the_idle_timeout():
    limits = ResourceLimits(frame_idle_timeout=0.5)

    async def scenario():
        node = make_node("tcp", resources=limits)
        await node.start()
        client = make_transport("tcp", Keypair.generate())
        try:
            conn, streams = await half_frames(client, node.listen_addrs[0], node.peer_id, 3)
            await asyncio.sleep(0.2)
            assert node.resources.buffered >= 3 * SENT  # (and the length prefixes, until the handler reads them)
            for _ in range(60):
                await asyncio.sleep(0.1)
                if all(s.is_reset for s in streams):
                    break
            assert all(s.is_reset for s in streams)  # the peer saw resets
            assert node.resources.buffered == 0
            assert refusals(node)["frame_idle"] == 3
            # the connection itself goes on: a ping on a new stream is answered
            ping = await conn.open_stream()
            await multistream.select(ping, [PING_PROTOCOL])
            await ping.write(b"p" * 32)
            assert await ping.readexactly(32) == b"p" * 32
        finally:
            await client.close()
            await node.stop()

    run(scenario())


def test_the_limits_follow_the_node_config():
    from p2pnode.nodeconfig import Resources

    limits = ResourceLimits.from_config(Resources(max_memory_mb=64, max_connections=10))
    assert (limits.memory, limits.peer_memory, limits.connections) == (32 * MIB, 8 * MIB, 10)
    default = ResourceLimits.from_config(Resources())
    assert (default.memory, default.peer_memory) == (250 * MIB, 32 * MIB)
    with pytest.raises(ValueError, match="peer_streams must be positive"):
        ResourceLimits(peer_streams=0)


@pytest.mark.slow
def test_a_ping_flood_whose_answers_are_never_read_stops_being_read():
    """20 MB of Yamux PINGs from a peer that reads none of the answers: the node's write buffer stays
    near its high-water mark (it stops reading the peer), and all is answered once the peer reads."""
    ping = yamux.HEADER.pack(yamux.VERSION, yamux.TYPE_PING, yamux.FLAG_SYN, 0, 7)
    chunk = ping * 5000  # 60 KB

    async def scenario():
        node = make_node("tcp")
        await node.start()
        client, second = make_transport("tcp"), make_transport("tcp")
        try:
            conn = await client.dial(node.listen_addrs[0], node.peer_id)
            link = conn._link
            link._protocol.transport.pause_reading()  # never read the answers
            served = node.swarm.connections[conn.local_peer][0]
            buffered = served._link._transport.get_write_buffer_size
            sent = peak = 0
            while sent < 20_000_000:
                link.write(chunk)
                sent += len(chunk)
                peak = max(peak, buffered())
                try:
                    await asyncio.wait_for(link.drain(), 2)  # the node stopped reading us: backpressure
                except TimeoutError:
                    break
            await asyncio.sleep(0.5)
            peak = max(peak, buffered())
            assert peak < 3 * MIB, f"the node buffered {peak} bytes of answers"
            assert node.resources.refusals["control_backlog"] >= 1
            # the node goes on serving another peer meanwhile
            other = await asyncio.wait_for(second.dial(node.listen_addrs[0], node.peer_id), 5)
            assert await other.ping(timeout=5) < 5
            # once the flooder reads, everything it sent is answered and its connection works
            link._protocol.transport.resume_reading()
            await conn.ping(timeout=90)  # behind ~20 MB of answers, read and written in Python
            assert not served.closed
        finally:
            await client.close()
            await second.close()
            await node.stop()

    run(scenario(), timeout=180)


def test_a_peer_sending_malformed_requests_gets_one_short_info_line_not_a_traceback_each(caplog):
    bad = encode_uvarint(5) + b"\xff\xff\xff\xff\xff"  # a request whose protocol name's length overruns

    async def scenario():
        node = make_node("tcp")
        await node.start()
        client = make_transport("tcp")
        try:
            conn = await client.dial(node.listen_addrs[0], node.peer_id)

            async def one():
                stream = await conn.open_stream()
                await multistream.select(stream, [REQRESP])
                await stream.write(bad)
                with pytest.raises(TransportError):
                    await stream.readexactly(1)

            with caplog.at_level(logging.INFO):
                await asyncio.gather(*(one() for _ in range(50)))
        finally:
            await client.close()
            await node.stop()

    run(scenario())
    mine = [r for r in caplog.records if r.name.startswith("p2pnode")]
    assert not [r for r in mine if r.levelno >= logging.WARNING or r.exc_info]
    about = [r.getMessage() for r in mine if "reqresp" in r.getMessage()]
    assert 1 <= len(about) <= 5, about  # PeerLog's burst, of 50
    assert "malformed reqresp message" in about[0] and len(about[0]) <= 200


def test_the_peer_log_lets_a_burst_through_then_one_line_per_refill_saying_what_it_held(caplog):
    from p2pnode.peerlog import PeerLog

    now = [0.0]
    peer_log = PeerLog(logging.getLogger("p2pnode.test"), lambda: now[0], interval=10, burst=2)
    with caplog.at_level(logging.INFO, logger="p2pnode.test"):
        for _ in range(10):
            peer_log.report("a", "bad input %s", "x" * 500)
        peer_log.report("b", "other peer")
        now[0] = 5.0  # one line's worth refilled
        peer_log.report("a", "again")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert all(len(line) <= 200 for line in lines[:2]) and lines[2] == "other peer"
    assert lines[3] == "again (8 more like it not logged)"
    # many keys together: the total bucket (5 x total lines at once)
    crowd = PeerLog(logging.getLogger("p2pnode.test"), lambda: 0.0, total=1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="p2pnode.test"):
        for key in range(100):
            crowd.report(key, "bad input")
    assert len(caplog.records) == 5
