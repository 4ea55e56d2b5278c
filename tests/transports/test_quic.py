"""The libp2p QUIC transport over loopback: handshake and peer authentication, streams, limits, failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl

import pytest
from aioquic.asyncio import connect as aioquic_connect
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicErrorCode
from multiaddr import Multiaddr

from p2pnode.identity import Keypair
from p2pnode.transports import multistream
from p2pnode.transports.base import ConnectionClosed, HandshakeError, StreamReset, TransportError
from p2pnode.transports.quic import QuicTransport
from p2pnode.transports.quic.constants import MAX_INCOMING_BIDI_STREAMS, SEND_BUFFER_HIGH, STREAM_WINDOW
from p2pnode.transports.quic.endpoint import UdpEndpoint

HOSTS = {"ip6": "::1", "ip4": "127.0.0.1"}
CHUNKS = 64


def run(test, timeout: float = 5.0):
    """Run ``test()`` on a fresh event loop; fail on anything that reached the loop's exception handler."""

    async def main():
        loop = asyncio.get_running_loop()
        unhandled = []
        loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
        async with asyncio.timeout(timeout):
            result = await test()
        await asyncio.sleep(0)
        assert not unhandled, unhandled
        return result

    return asyncio.run(main())


class Node:
    """A QuicTransport and the connections it accepted."""

    def __init__(self, **options):
        self.keypair = Keypair.generate()
        self.transport = QuicTransport(self.keypair, **options)
        self.accepted: asyncio.Queue = asyncio.Queue()
        self.addr: Multiaddr | None = None

    @property
    def peer_id(self):
        return self.keypair.peer_id

    async def listen(self, proto: str = "ip6") -> Multiaddr:
        self.addr = await self.transport.listen(
            Multiaddr(f"/{proto}/{HOSTS[proto]}/udp/0/quic-v1"), self.accepted.put_nowait
        )
        return self.addr


@contextlib.asynccontextmanager
async def nodes(proto: str = "ip6", **options):
    """A listening server and a client, both closed at the end."""
    server, client = Node(**options), Node(**options)
    await server.listen(proto)
    try:
        yield server, client
    finally:
        await client.transport.close()
        await server.transport.close()


async def connected(server: Node, client: Node):
    connection = await client.transport.dial(server.addr, server.peer_id)
    accepted = await asyncio.wait_for(server.accepted.get(), 2)
    return connection, accepted


async def echo_streams(connection) -> None:
    """Echo every stream the remote opens until it closes its side."""

    async def echo(stream):
        with contextlib.suppress(StreamReset):
            while data := await stream.read():
                await stream.write(data)
            await stream.close()

    tasks = set()
    with contextlib.suppress(ConnectionClosed):
        while True:
            task = asyncio.ensure_future(echo(await connection.accept_stream()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


# ---- addresses ---------------------------------------------------------------------------------------------


def test_can_dial_quic_v1_multiaddrs_only():
    transport = QuicTransport(Keypair.generate())
    peer = Keypair.generate().peer_id
    assert transport.can_dial(Multiaddr("/ip4/127.0.0.1/udp/4001/quic-v1"))
    assert transport.can_dial(Multiaddr("/ip6/::1/udp/4001/quic-v1"))
    assert transport.can_dial(Multiaddr(f"/ip4/1.2.3.4/udp/4001/quic-v1/p2p/{peer}"))
    assert not transport.can_dial(Multiaddr("/ip4/1.2.3.4/udp/4001/quic"))  # draft-29
    assert not transport.can_dial(Multiaddr("/ip4/1.2.3.4/tcp/4001"))
    assert not transport.can_dial(Multiaddr("/ip4/1.2.3.4/udp/4001"))
    assert not transport.can_dial(Multiaddr("/dns4/example.com/udp/4001/quic-v1"))


# ---- handshake and authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("proto", ["ip6", "ip4"])
def test_dial_authenticates_both_ways(proto):
    async def test():
        async with nodes(proto) as (server, client):
            assert server.addr.value_for_protocol(proto) == HOSTS[proto]
            connection, accepted = await connected(server, client)
            assert connection.transport == accepted.transport == "quic"
            assert connection.remote_peer == server.peer_id and connection.local_peer == client.peer_id
            assert accepted.remote_peer == client.peer_id and accepted.local_peer == server.peer_id
            assert connection.outbound and not accepted.outbound
            assert connection.remote_addr == server.addr == accepted.local_addr
            assert accepted.remote_addr == connection.local_addr
            assert str(accepted.remote_addr).startswith(f"/{proto}/{HOSTS[proto]}/udp/")
            assert connection.bytes_out > 1200 and accepted.bytes_in > 1200  # the Initial is padded to 1200

    run(test)


def test_dial_takes_the_peer_id_from_the_p2p_component():
    async def test():
        async with nodes() as (server, client):
            connection = await client.transport.dial(server.addr.encapsulate(f"/p2p/{server.peer_id}"))
            assert connection.remote_peer == server.peer_id
            anyone = await client.transport.dial(server.addr)  # no expectation: whoever answers
            assert anyone.remote_peer == server.peer_id

    run(test)


def test_dialling_the_wrong_peer_id_fails_and_the_listener_survives(caplog):
    caplog.set_level(logging.INFO, logger="p2pnode.transports.quic")

    async def test():
        async with nodes() as (server, client):
            impostor = Keypair.generate().peer_id
            with pytest.raises(HandshakeError, match="dialled"):
                await client.transport.dial(server.addr, impostor)
            with pytest.raises(HandshakeError):
                await client.transport.dial(server.addr.encapsulate(f"/p2p/{impostor}"))
            assert server.accepted.empty()
            connection, accepted = await connected(server, client)  # still serving
            assert accepted.remote_peer == client.peer_id

    run(test)
    failures = [r for r in caplog.records if "inbound QUIC handshake" in r.getMessage()]
    assert len(failures) == 2 and "alert 42" in failures[0].getMessage()


def test_client_without_certificate_is_rejected(caplog):
    caplog.set_level(logging.INFO, logger="p2pnode.transports.quic")

    async def test():
        async with nodes() as (server, client):
            port = int(server.addr.value_for_protocol("udp"))
            configuration = QuicConfiguration(is_client=True, alpn_protocols=["libp2p"], verify_mode=ssl.CERT_NONE)
            # aioquic's client finishes its side of the handshake before the server has checked it
            async with aioquic_connect("::1", port, configuration=configuration) as protocol:
                await asyncio.wait_for(protocol.wait_closed(), 2)
                close = protocol._quic._close_event
                assert close.error_code == QuicErrorCode.CRYPTO_ERROR + 116  # certificate_required
            assert server.accepted.empty()
            await connected(server, client)

    run(test)
    assert any("no certificate" in r.getMessage() for r in caplog.records)


def test_junk_datagrams_do_not_disturb_the_listener():
    async def test():
        async with nodes() as (server, client):
            port = int(server.addr.value_for_protocol("udp"))
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(("::1", 0))
            junk = [b"", b"\x00", os.urandom(40), b"\xc0" + os.urandom(1300), b"\x40" + os.urandom(100)]
            # a long-header packet of an unknown QUIC version is answered with version negotiation
            junk.append(b"\xc0\x0a\x0a\x0a\x0a\x08" + os.urandom(8) + b"\x08" + os.urandom(8) + bytes(1200))
            for datagram in junk:
                sock.sendto(datagram, ("::1", port))
            loop = asyncio.get_running_loop()
            answer = await asyncio.wait_for(loop.sock_recv(sock, 2048), 1)
            assert answer[0] & 0x80 and answer[1:5] == bytes(4)  # version negotiation
            sock.close()
            await connected(server, client)

    run(test)


def test_handshake_times_out_against_a_silent_peer():
    async def test():
        silent = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        silent.bind(("::1", 0))
        port = silent.getsockname()[1]
        transport = QuicTransport(Keypair.generate(), handshake_timeout=0.3)
        try:
            with pytest.raises(TransportError, match="timed out"):
                await transport.dial(Multiaddr(f"/ip6/::1/udp/{port}/quic-v1"))
        finally:
            await transport.close()
            silent.close()

    run(test)


# ---- streams --------------------------------------------------------------------------------------------------


def test_streams_both_ways_with_multistream_select_and_1mb_echo():
    async def test():
        async with nodes() as (server, client):
            connection, accepted = await connected(server, client)
            payload = os.urandom(1 << 20)

            async def serve(conn):
                stream = await conn.accept_stream()
                assert await multistream.handle(stream, ["/echo/1.0.0"]) == "/echo/1.0.0"
                while data := await stream.read():
                    await stream.write(data)
                await stream.close()

            async def request(conn):
                stream = await conn.open_stream()
                assert await multistream.select(stream, ["/nope/1.0.0", "/echo/1.0.0"]) == "/echo/1.0.0"

                async def send():
                    for i in range(0, len(payload), 100_000):
                        await stream.write(payload[i : i + 100_000])
                    await stream.close()

                sending = asyncio.ensure_future(send())
                echoed = bytearray()
                while data := await stream.read():
                    echoed += data
                await sending
                assert echoed == payload
                assert await stream.read() == b""  # end of stream stays end of stream
                with pytest.raises(StreamReset):
                    await stream.write(b"more")  # after close()

            # client-opened and server-opened streams at once
            await asyncio.gather(serve(accepted), request(connection), serve(connection), request(accepted))

    run(test)


def test_a_request_and_its_answer_take_one_packet_each_way(monkeypatch):
    """The answer carries the ACK of the request, and the next request the ACK of the answer: no packets
    of their own for ACKs (aioquic alone would send one 1 ms after each packet received)."""
    sent = {}
    original = UdpEndpoint.send

    def counting_send(endpoint, data, addr):
        sent[endpoint] = sent.get(endpoint, 0) + 1
        original(endpoint, data, addr)

    async def test():
        async with nodes() as (server, client):
            connection, accepted = await connected(server, client)
            serving = asyncio.ensure_future(echo_streams(accepted))
            stream = await connection.open_stream()
            for _ in range(10):  # past the handshake's own packets
                await stream.write(b"ping")
                assert await stream.read() == b"ping"
            await asyncio.sleep(0.05)
            monkeypatch.setattr(UdpEndpoint, "send", counting_send)
            rounds = 200
            for _ in range(rounds):
                await stream.write(b"ping")
                assert await stream.read() == b"ping"
            monkeypatch.setattr(UdpEndpoint, "send", original)
            serving.cancel()
            (client_end,) = [e for e in sent if e is not server.transport._endpoints[0]]
            assert sent[client_end] <= rounds + 2
            assert sent[server.transport._endpoints[0]] <= rounds + 2

    run(test)


def test_half_close_keeps_the_other_direction_open():
    async def test():
        async with nodes() as (server, client):
            connection, accepted = await connected(server, client)
            stream = await connection.open_stream()
            await stream.write(b"question")
            await stream.close()
            remote = await accepted.accept_stream()
            assert await remote.readexactly(8) == b"question"
            assert await remote.read() == b""
            await remote.write(b"answer")  # its side is still open
            await remote.close()
            assert await stream.readexactly(6) == b"answer"
            assert await stream.read() == b""
            with pytest.raises(asyncio.IncompleteReadError):
                await stream.readexactly(1)

    run(test)


def test_reset_reaches_the_other_side_both_ways():
    async def test():
        async with nodes() as (server, client):
            connection, accepted = await connected(server, client)
            for opener, acceptor in ((connection, accepted), (accepted, connection)):
                stream = await opener.open_stream()
                await stream.write(b"hello")
                remote = await acceptor.accept_stream()
                assert await remote.readexactly(5) == b"hello"
                stream.reset()
                assert stream.is_reset
                with pytest.raises(StreamReset):
                    await stream.write(b"x")
                with pytest.raises(StreamReset):
                    while True:
                        await remote.read()
                assert remote.is_reset
                with pytest.raises(StreamReset):
                    await remote.write(b"x")

    run(test)


def test_stop_sending_fails_writes_but_not_reads():
    async def test():
        async with nodes() as (server, client):
            connection, accepted = await connected(server, client)
            stream = await connection.open_stream()
            await stream.write(b"hello")
            remote = await accepted.accept_stream()
            assert await remote.readexactly(5) == b"hello"
            accepted._quic.stop_stream(remote.stream_id, 0)  # the peer stops reading (e.g. go's CloseRead)
            accepted._schedule_transmit()
            await remote.write(b"still talking")
            await remote.close()
            assert await stream.readexactly(13) == b"still talking"
            assert await stream.read() == b""
            with pytest.raises(StreamReset, match="STOP_SENDING"):
                for _ in range(100):
                    await stream.write(b"x")
                    await asyncio.sleep(0.01)

    run(test)


def test_unidirectional_streams_from_the_peer_are_refused():
    async def test():
        async with nodes() as (server, client):
            connection, accepted = await connected(server, client)
            connection._quic.send_stream_data(2, b"unwanted", end_stream=False)  # client-initiated uni stream
            connection._schedule_transmit()
            stream = await connection.open_stream()
            await stream.write(b"wanted")
            remote = await asyncio.wait_for(accepted.accept_stream(), 2)
            assert remote.stream_id == stream.stream_id == 0
            assert await remote.readexactly(6) == b"wanted"
            await asyncio.sleep(0.05)
            assert accepted._inbound.empty()
            quic_stream = connection._quic._streams.get(2)  # our uni stream was reset at the peer's request
            assert quic_stream is None or quic_stream.sender._reset_error_code is not None

    run(test)


def test_reset_wakes_a_blocked_writer():
    async def test():
        async with nodes() as (server, client):
            connection, accepted = await connected(server, client)
            stream = await connection.open_stream()

            async def flood():
                while True:
                    await stream.write(bytes(65536))

            flooding = asyncio.ensure_future(flood())
            remote = await accepted.accept_stream()
            await asyncio.sleep(0.2)  # nobody reads: the writer is blocked by now
            assert not flooding.done()
            remote.reset()
            with pytest.raises(StreamReset):
                await asyncio.wait_for(flooding, 2)

    run(test)


def test_writes_apply_backpressure():
    async def test():
        async with nodes() as (server, client):
            connection, accepted = await connected(server, client)
            stream = await connection.open_stream()
            chunk = bytes(65536)
            written = 0

            async def flood():
                nonlocal written
                for _ in range(CHUNKS):  # 4 MB if nothing stopped it
                    await stream.write(chunk)
                    written += len(chunk)
                await stream.close()

            flooding = asyncio.ensure_future(flood())
            remote = await accepted.accept_stream()
            await asyncio.sleep(0.3)
            # what a reader that does not read holds back: its stream window, plus our send buffer
            assert not flooding.done()
            assert written <= STREAM_WINDOW + SEND_BUFFER_HIGH + len(chunk)
            assert len(remote._buffer) <= STREAM_WINDOW
            received = 0
            while data := await remote.read(1 << 20):
                received += len(data)
            await flooding
            assert received == written == CHUNKS * len(chunk)

    run(test)


def test_more_than_100_streams_queue_until_the_peer_lets_them_open():
    async def test():
        async with nodes() as (server, client):
            connection, accepted = await connected(server, client)
            count = MAX_INCOMING_BIDI_STREAMS + 50

            async def open_one(i):
                stream = await connection.open_stream()
                await stream.write(i.to_bytes(2, "big"))
                return stream

            opening = [asyncio.ensure_future(open_one(i)) for i in range(count)]
            remote = [await asyncio.wait_for(accepted.accept_stream(), 2) for _ in range(MAX_INCOMING_BIDI_STREAMS)]
            await asyncio.sleep(0.1)
            assert accepted._inbound.empty()  # the peer may not open a 101st stream ...
            assert sum(task.done() for task in opening) == MAX_INCOMING_BIDI_STREAMS  # ... so open_stream waits
            # finishing streams lets the waiting ones open
            for stream in remote[:50]:
                assert len(await stream.readexactly(2)) == 2
                await stream.close()
            for task in opening[:50]:
                ours = task.result()
                await ours.close()
                assert await ours.read() == b""
            remote += [await asyncio.wait_for(accepted.accept_stream(), 2) for _ in range(50)]
            await asyncio.gather(*opening)
            numbers = sorted([int.from_bytes(await s.readexactly(2), "big") for s in remote[50:]])
            assert numbers == list(range(50, count))

    run(test)


# ---- connection lifetime ----------------------------------------------------------------------------------


def test_closing_a_connection_resets_streams_and_tells_the_peer():
    async def test():
        async with nodes() as (server, client):
            connection, accepted = await connected(server, client)
            closed = []
            connection.on_close(closed.append)
            accepted.on_close(closed.append)
            stream = await connection.open_stream()
            await stream.write(b"x")
            remote = await accepted.accept_stream()
            await connection.close()
            assert connection.closed and stream.is_reset
            with pytest.raises(ConnectionClosed):
                await accepted.accept_stream()
            assert accepted.closed and remote.is_reset
            with pytest.raises(StreamReset):
                await remote.write(b"y")
            assert closed == [connection, accepted]
            with pytest.raises(ConnectionClosed):
                await connection.open_stream()
            await connection.close()  # idempotent

    run(test)


def test_closing_the_transport_closes_its_connections():
    async def test():
        async with nodes(handshake_timeout=0.3) as (server, client):
            connection, accepted = await connected(server, client)
            await server.transport.close()
            assert accepted.closed
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(connection.accept_stream(), 2)
            with pytest.raises(TransportError):
                await client.transport.dial(server.addr, server.peer_id)

    run(test)


def test_idle_connection_times_out_without_keep_alive_and_stays_with_it():
    async def test():
        async with nodes(idle_timeout=0.3, keep_alive=None) as (server, client):
            connection, accepted = await connected(server, client)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(connection.accept_stream(), 1.0)
        async with nodes(idle_timeout=0.3, keep_alive=0.1) as (server, client):
            connection, accepted = await connected(server, client)
            await asyncio.sleep(0.8)
            assert not connection.closed and not accepted.closed

    run(test)


def test_outbound_connections_use_the_listening_socket():
    async def test():
        async with nodes() as (server, client):
            own = await client.listen("ip6")
            connection, accepted = await connected(server, client)
            assert connection.local_addr == own == accepted.remote_addr

    run(test)


def test_resumed_session_sends_0rtt_and_keeps_peer_ids():
    async def test():
        async with nodes(zero_rtt=True) as (server, client):
            first, accepted = await connected(server, client)
            assert not first.resumed and not accepted.resumed
            server_task = asyncio.ensure_future(echo_streams(accepted))
            stream = await first.open_stream()
            await stream.write(b"ping")
            assert await stream.readexactly(4) == b"ping"  # the session ticket has arrived by now
            await first.close()
            server_task.cancel()

            second = await client.transport.dial(server.addr, server.peer_id)
            assert second.resumed and second.early_data and second.remote_peer == server.peer_id
            stream = await second.open_stream()
            await stream.write(b"early")  # 0-RTT
            accepted = await asyncio.wait_for(server.accepted.get(), 2)
            assert accepted.resumed and accepted.remote_peer == client.peer_id
            remote = await accepted.accept_stream()
            assert await remote.readexactly(5) == b"early"
            await remote.write(b"late")
            assert await stream.readexactly(4) == b"late"

            # a ticket is used once; the next connection gets a fresh one
            third = await client.transport.dial(server.addr, server.peer_id)
            assert third.resumed

    run(test)


def test_resumption_without_0rtt_waits_for_the_handshake():
    async def test():
        async with nodes(handshake_timeout=0.3) as (server, client):
            first, _ = await connected(server, client)
            await asyncio.sleep(0.05)  # the session ticket arrives
            second, accepted = await connected(server, client)
            assert second.resumed and not second.early_data and accepted.resumed
            assert second.remote_peer == server.peer_id and accepted.remote_peer == client.peer_id
            await server.transport.close()
            with pytest.raises(TransportError):  # dial still fails when nobody answers
                await client.transport.dial(server.addr, server.peer_id)

    run(test)


def test_0rtt_dial_to_a_vanished_server_closes_after_the_handshake_timeout():
    async def test():
        async with nodes(zero_rtt=True, handshake_timeout=0.3) as (server, client):
            first, _ = await connected(server, client)
            await asyncio.sleep(0.05)  # the session ticket arrives
            await server.transport.close()
            connection = await client.transport.dial(server.addr, server.peer_id)
            assert connection.early_data
            stream = await connection.open_stream()
            await stream.write(b"anyone?")
            with pytest.raises(StreamReset):
                await asyncio.wait_for(stream.read(), 2)
            assert connection.closed

    run(test)


def test_tickets_are_not_used_for_another_expected_peer():
    async def test():
        async with nodes() as (server, client):
            first, _ = await connected(server, client)
            stream = await first.open_stream()
            await stream.write(b"x")
            await asyncio.sleep(0.05)  # the ticket arrives
            with pytest.raises(HandshakeError):
                await client.transport.dial(server.addr, Keypair.generate().peer_id)

    run(test)


# ---- interoperability ---------------------------------------------------------------------------------------

PYLIBP2P = os.environ.get("PYLIBP2P_PYTHON", "/tmp/pylq/bin/python")  # a venv with libp2p==0.8.1 (not .venv)
PING = "/ipfs/ping/1.0.0"
PY_LIBP2P_PEER = r"""
import argparse, secrets, sys
import multiaddr, trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.host.ping import ID as PING, PingService
from libp2p.peer.peerinfo import info_from_p2p_addr

def out(*a):
    print(*a, flush=True)

async def main(args):
    listen = [multiaddr.Multiaddr(args.listen)]
    host = new_host(key_pair=create_new_key_pair(secrets.token_bytes(32)), listen_addrs=listen)
    out("PEER", host.get_id().to_string())
    async with host.run(listen_addrs=listen):
        if args.dial is None:
            ping = PingService(host)
            async def handler(stream):
                out("INBOUND_FROM", stream.muxed_conn.peer_id.to_string())
                await ping.handle_ping(stream)
            host.set_stream_handler(PING, handler)
            for _ in range(100):
                if host.get_addrs():
                    break
                await trio.sleep(0.05)
            out("ADDR", str(host.get_addrs()[0]))
            await trio.sleep(30)
        else:
            info = info_from_p2p_addr(multiaddr.Multiaddr(args.dial))
            with trio.fail_after(15):
                await host.connect(info)
                stream = await host.new_stream(info.peer_id, [PING])
                payload = secrets.token_bytes(32)
                await stream.write(payload)
                got = b""
                while len(got) < 32:
                    chunk = await stream.read(32 - len(got))
                    if not chunk:
                        break
                    got += chunk
                out("PONG_OK" if got == payload else "PONG_BAD")
                await stream.close()

parser = argparse.ArgumentParser()
parser.add_argument("--listen", default="/ip4/127.0.0.1/udp/0/quic-v1")
parser.add_argument("--dial")
trio.run(main, parser.parse_args())
"""


async def _lines(process, wanted: set[str], timeout: float) -> dict[str, str]:
    found: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while wanted - found.keys():
            line = await process.stdout.readline()
            if not line:
                break
            key, _, value = line.decode().strip().partition(" ")
            found.setdefault(key, value)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(PYLIBP2P), reason=f"needs py-libp2p 0.8.1 in a separate venv: {PYLIBP2P}")
def test_interop_with_py_libp2p(tmp_path):
    """Both directions on 127.0.0.1: handshake with peer IDs checked on both sides, then multistream-select
    and a 32-byte /ipfs/ping/1.0.0 exchange. (py-libp2p 0.8.1's QUIC fails on IPv6: it unpacks socket
    addresses as (host, port) pairs.)"""
    script = tmp_path / "peer.py"
    script.write_text(PY_LIBP2P_PEER)

    async def we_dial():
        process = await asyncio.create_subprocess_exec(
            PYLIBP2P, str(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        transport = QuicTransport(Keypair.generate())
        try:
            info = await _lines(process, {"PEER", "ADDR"}, 20)
            connection = await transport.dial(Multiaddr(info["ADDR"]))
            assert str(connection.remote_peer) == info["PEER"]
            stream = await connection.open_stream()
            assert await multistream.select(stream, [PING]) == PING
            payload = os.urandom(32)
            await stream.write(payload)
            assert await asyncio.wait_for(stream.readexactly(32), 5) == payload
            seen = await _lines(process, {"INBOUND_FROM"}, 5)
            assert seen["INBOUND_FROM"] == str(transport.keypair.peer_id)
        finally:
            await transport.close()
            if process.returncode is None:
                process.kill()
            await process.wait()

    async def they_dial():
        transport = QuicTransport(Keypair.generate())
        pinged: asyncio.Future = asyncio.get_running_loop().create_future()

        async def serve(connection, stream):
            with contextlib.suppress(TransportError):  # py-libp2p also tries /ipfs/id/1.0.0: refused
                await multistream.handle(stream, [PING])
                await stream.write(await stream.readexactly(32))
                if not pinged.done():
                    pinged.set_result(connection.remote_peer)

        async def accept(connection):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    asyncio.ensure_future(serve(connection, await connection.accept_stream()))

        addr = await transport.listen(
            Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1"), lambda c: asyncio.ensure_future(accept(c))
        )
        process = await asyncio.create_subprocess_exec(
            PYLIBP2P,
            str(script),
            "--dial",
            f"{addr}/p2p/{transport.keypair.peer_id}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            info = await _lines(process, {"PEER", "PONG_OK"}, 30)
            assert "PONG_OK" in info
            assert str(await asyncio.wait_for(pinged, 5)) == info["PEER"]
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
            await transport.close()

    asyncio.run(we_dial())
    asyncio.run(they_dial())
