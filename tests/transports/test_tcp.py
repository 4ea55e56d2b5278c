"""The TCP transport end to end on loopback: TCP + multistream-select + Noise + Yamux."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct

import pytest
from multiaddr import Multiaddr

from p2pnode.identity import Keypair
from p2pnode.transports import multistream, noise
from p2pnode.transports.base import ConnectionClosed, HandshakeError, StreamReset, TransportError
from p2pnode.transports.tcp import TcpConnection, TcpTransport
from p2pnode.transports.yamux import INITIAL_WINDOW

ECHO = "/test/echo/1.0.0"
LOOPBACKS = ["/ip6/::1/tcp/0", "/ip4/127.0.0.1/tcp/0"]


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


loopbacks = pytest.mark.parametrize(
    "listen_addr",
    [
        pytest.param(LOOPBACKS[0], marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no ::1")),
        LOOPBACKS[1],
    ],
)


def run(coro, timeout: float = 5.0):
    """Run ``coro`` in a fresh event loop, failing the test if it takes longer than ``timeout``."""

    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


class Node:
    """A transport plus an echo service on every accepted stream."""

    def __init__(self, **kwargs):
        self.keypair = Keypair.generate()
        self.transport = TcpTransport(self.keypair, **kwargs)
        self.peer_id = self.keypair.peer_id
        self.inbound: asyncio.Queue[TcpConnection] = asyncio.Queue()
        self.tasks: set[asyncio.Task] = set()
        self.echo = True

    def on_connection(self, conn) -> None:
        self.inbound.put_nowait(conn)
        if self.echo:
            self.spawn(self.serve(conn))

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def serve(self, conn) -> None:
        try:
            while True:
                stream = await conn.accept_stream()
                self.spawn(echo(stream))
        except ConnectionClosed:
            pass

    async def listen(self, addr: str) -> Multiaddr:
        return await self.transport.listen(Multiaddr(addr), self.on_connection)

    async def close(self) -> None:
        await self.transport.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def echo(stream) -> None:
    try:
        await multistream.handle(stream, [ECHO])
        while data := await stream.read(1 << 20):
            await stream.write(data)
        await stream.close()
    except (StreamReset, multistream.NegotiationError, ConnectionClosed):
        stream.reset()


async def echo_round_trip(conn, payload: bytes) -> bytes:
    stream = await conn.open_stream()
    assert await multistream.select(stream, [ECHO]) == ECHO

    async def send():
        await stream.write(payload)
        await stream.close()

    sender = asyncio.create_task(send())
    received = bytearray()
    while data := await stream.read(1 << 20):
        received += data
    await sender
    return bytes(received)


async def two_nodes(listen_addr: str, **kwargs) -> tuple[Node, Node, Multiaddr]:
    a, b = Node(**kwargs), Node(**kwargs)
    addr = await b.listen(listen_addr)
    return a, b, addr


# ---- connecting ------------------------------------------------------------------------------------------


@loopbacks
def test_dial_authenticates_both_ways(listen_addr):
    async def main():
        a, b, addr = await two_nodes(listen_addr)
        try:
            assert addr.value_for_protocol("tcp") != "0"
            assert a.transport.can_dial(addr)
            conn = await a.transport.dial(addr, b.peer_id)
            inbound = await b.inbound.get()
            assert conn.transport == "tcp" and inbound.transport == "tcp"
            assert conn.remote_peer == b.peer_id and conn.local_peer == a.peer_id
            assert inbound.remote_peer == a.peer_id and inbound.local_peer == b.peer_id
            assert conn.outbound and not inbound.outbound
            assert conn.remote_addr == addr
            assert inbound.remote_addr == conn.local_addr and inbound.local_addr == conn.remote_addr
            assert str(conn.local_addr).startswith(listen_addr.split("/tcp")[0])
            # The /p2p form of the address works too, and no peer ID at all accepts whoever answers.
            conn2 = await a.transport.dial(Multiaddr(f"{addr}/p2p/{b.peer_id}"))
            conn3 = await a.transport.dial(addr)
            assert conn2.remote_peer == conn3.remote_peer == b.peer_id
            assert await conn.ping() >= 0
        finally:
            await a.close()
            await b.close()

    run(main())


@loopbacks
def test_streams_both_ways_multistream_and_1mb_echo(listen_addr):
    async def main():
        a, b, addr = await two_nodes(listen_addr)
        try:
            conn = await a.transport.dial(addr, b.peer_id)
            inbound = await b.inbound.get()
            a.spawn(a.serve(conn))  # a answers streams that b opens on the same connection
            payload = os.urandom(1 << 20)  # four Yamux windows: exercises window updates
            assert await echo_round_trip(conn, payload) == payload
            assert await echo_round_trip(inbound, b"from the listener side") == b"from the listener side"
            assert await echo_round_trip(inbound, payload) == payload
        finally:
            await a.close()
            await b.close()

    run(main())


@loopbacks
def test_half_close_reset_and_protocol_refusal(listen_addr):
    async def main():
        a, b, addr = await two_nodes(listen_addr)
        b.echo = False
        try:
            conn = await a.transport.dial(addr, b.peer_id)
            inbound = await b.inbound.get()

            # Half-close: the remote reads EOF after our data, and can still answer.
            stream = await conn.open_stream()
            await stream.write(b"question")
            await stream.close()
            with pytest.raises(StreamReset):
                await stream.write(b"after close")
            remote = await inbound.accept_stream()
            assert await remote.readexactly(8) == b"question"
            assert await remote.read() == b""
            with pytest.raises(asyncio.IncompleteReadError):
                await remote.readexactly(1)
            await remote.write(b"answer")
            await remote.close()
            assert await stream.read() == b"answer"
            assert await stream.read() == b""

            # Reset: both directions fail at once on the other side.
            stream = await conn.open_stream()
            await stream.write(b"x")
            remote = await inbound.accept_stream()
            assert await remote.read() == b"x"
            stream.reset()
            with pytest.raises(StreamReset):
                await remote.read()
            with pytest.raises(StreamReset):
                await remote.write(b"y")
            with pytest.raises(StreamReset):
                await stream.read()

            # multistream-select of an unsupported protocol fails cleanly on both ends.
            stream = await conn.open_stream()
            remote_task = asyncio.create_task(inbound.accept_stream())
            selecting = asyncio.create_task(multistream.select(stream, ["/nope/1.0.0"]))
            remote = await remote_task
            with pytest.raises(multistream.NegotiationError):
                await asyncio.gather(multistream.handle(remote, [ECHO]), selecting)
        finally:
            await a.close()
            await b.close()

    run(main())


def test_many_concurrent_streams():
    async def main():
        a, b, addr = await two_nodes("/ip4/127.0.0.1/tcp/0")
        try:
            conn = await a.transport.dial(addr, b.peer_id)
            payloads = [os.urandom(1000 + 37 * i) for i in range(200)]
            results = await asyncio.gather(*(echo_round_trip(conn, p) for p in payloads))
            assert results == payloads
            # Bulk streams in both directions at once, sharing the connection.
            big = [os.urandom(300_000) for _ in range(6)]
            assert await asyncio.gather(*(echo_round_trip(conn, p) for p in big)) == big
        finally:
            await a.close()
            await b.close()

    run(main())


def test_write_waits_for_the_window():
    async def main():
        a, b, addr = await two_nodes("/ip4/127.0.0.1/tcp/0")
        b.echo = False
        try:
            conn = await a.transport.dial(addr, b.peer_id)
            inbound = await b.inbound.get()
            stream = await conn.open_stream()
            payload = os.urandom(3 * INITIAL_WINDOW)
            writer = asyncio.create_task(stream.write(payload))
            remote = await inbound.accept_stream()
            await asyncio.sleep(0.1)
            assert not writer.done()  # the remote application reads nothing: the window stops us
            assert len(remote._buffer) <= INITIAL_WINDOW
            received = bytearray()
            while len(received) < len(payload):
                received += await remote.read(100_000)
            await writer
            assert received == payload
        finally:
            await a.close()
            await b.close()

    run(main())


def test_inbound_stream_limit_resets_excess_streams():
    async def main():
        a = Node()
        b = Node(max_inbound_streams=3)
        b.echo = False
        addr = await b.listen("/ip4/127.0.0.1/tcp/0")
        try:
            conn = await a.transport.dial(addr, b.peer_id)
            inbound = await b.inbound.get()
            streams = [await conn.open_stream() for _ in range(4)]
            for stream in streams:
                await stream.write(b"hello")
            for _ in range(3):
                remote = await inbound.accept_stream()
                assert await remote.read() == b"hello"
            with pytest.raises(StreamReset):
                await streams[3].read()
        finally:
            await a.close()
            await b.close()

    run(main())


def test_close_and_connection_loss_reset_streams_and_run_callbacks():
    async def main():
        a, b, addr = await two_nodes("/ip4/127.0.0.1/tcp/0")
        b.echo = False
        try:
            conn = await a.transport.dial(addr, b.peer_id)
            inbound = await b.inbound.get()
            closed: list = []
            inbound.on_close(closed.append)
            stream = await conn.open_stream()
            await stream.write(b"x")
            remote = await inbound.accept_stream()
            await conn.close()
            assert conn.closed
            with pytest.raises(StreamReset):
                await remote.read(1) and await remote.read(1)
            with pytest.raises(ConnectionClosed):
                await inbound.accept_stream()
            assert closed == [inbound] and inbound.closed
            with pytest.raises(ConnectionClosed):
                await inbound.open_stream()
            with pytest.raises(StreamReset):
                await stream.write(b"y")

            # A stream the remote finished before closing the connection keeps its data and its EOF.
            conn = await a.transport.dial(addr, b.peer_id)
            inbound = await b.inbound.get()
            stream = await conn.open_stream()
            await stream.write(b"request")
            remote = await inbound.accept_stream()
            assert await remote.readexactly(7) == b"request"
            await remote.write(b"last words")
            await remote.close()
            await inbound.close()
            await asyncio.sleep(0.05)
            assert conn.closed
            assert await stream.read() == b"last words"
            assert await stream.read() == b""

            # A dropped socket (no GO_AWAY) does the same.
            conn = await a.transport.dial(addr, b.peer_id)
            inbound = await b.inbound.get()
            stream = await conn.open_stream()
            await stream.write(b"x")
            remote = await inbound.accept_stream()
            conn._link.abort()
            with pytest.raises(StreamReset):
                await remote.read(1) and await remote.read(1)
            with pytest.raises(ConnectionClosed):
                await inbound.accept_stream()

            # Closing the transport closes its connections and the listener.
            conn = await a.transport.dial(addr, b.peer_id)
            inbound = await b.inbound.get()
            await b.transport.close()
            assert inbound.closed
            with pytest.raises(ConnectionClosed):
                await conn.accept_stream()
            with pytest.raises(OSError):
                await a.transport.dial(addr, b.peer_id)
        finally:
            await a.close()
            await b.close()

    run(main())


# ---- failures ----------------------------------------------------------------------------------------------


def test_wrong_peer_id_fails_and_the_listener_survives(caplog):
    caplog.set_level(logging.INFO, logger="p2pnode.transports.tcp")

    async def main():
        a, b, addr = await two_nodes("/ip6/::1/tcp/0" if _has_ipv6_loopback() else "/ip4/127.0.0.1/tcp/0")
        try:
            impostor = Keypair.generate().peer_id
            with pytest.raises(HandshakeError):
                await a.transport.dial(addr, impostor)
            with pytest.raises(HandshakeError):
                await a.transport.dial(Multiaddr(f"{addr}/p2p/{impostor}"))
            with pytest.raises(TransportError):
                await a.transport.dial(Multiaddr(f"{addr}/p2p/{b.peer_id}"), impostor)
            conn = await a.transport.dial(addr, b.peer_id)
            assert await echo_round_trip(conn, b"still serving") == b"still serving"
            assert b.inbound.qsize() == 1  # only the good connection was handed over
            await asyncio.sleep(0.05)
        finally:
            await a.close()
            await b.close()

    run(main())
    assert any("failed its upgrade" in r.getMessage() for r in caplog.records)


class Raw:
    """A plain TCP client speaking whatever a test wants."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, addr: Multiaddr) -> Raw:
        host = addr.value_for_protocol("ip4")
        reader, writer = await asyncio.open_connection(host, int(addr.value_for_protocol("tcp")))
        return cls(reader, writer)

    async def readexactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def closed_by_peer(self) -> bool:
        """Whether the listener closes the connection (reads until EOF or reset)."""
        try:
            async with asyncio.timeout(2):
                while await self.reader.read(65536):
                    pass
        except ConnectionResetError:
            pass
        self.writer.close()
        return True


async def _secured(addr: Multiaddr) -> tuple[Raw, noise.NoiseCipher]:
    """A raw connection through /noise and the Noise handshake, as a test client."""
    raw = await Raw.connect(addr)
    await multistream.select(raw, [noise.PROTOCOL_ID])
    _, cipher = await noise.handshake(raw, noise.NoiseCredentials(Keypair.generate()), initiator=True)
    return raw, cipher


GARBAGE = {
    "http": lambda: b"GET /" + b"index" * 40 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "huge multistream length": lambda: b"\xff\xff\xff\xff\x0f" + b"a" * 100,
    "bad noise message": lambda: (
        multistream.encode_message("/multistream/1.0.0")
        + multistream.encode_message(noise.PROTOCOL_ID)
        + struct.pack(">H", 10)
        + os.urandom(10)
    ),
    "oversized noise length": lambda: (
        multistream.encode_message("/multistream/1.0.0")
        + multistream.encode_message(noise.PROTOCOL_ID)
        + b"\xff\xff"
        + os.urandom(70_000)
    ),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_is_dropped_and_the_listener_keeps_serving(kind, caplog):
    caplog.set_level(logging.INFO, logger="p2pnode.transports.tcp")

    async def main():
        a, b, addr = await two_nodes("/ip4/127.0.0.1/tcp/0")
        try:
            good = await a.transport.dial(addr, b.peer_id)
            raw = await Raw.connect(addr)
            await raw.write(GARBAGE[kind]())
            assert await raw.closed_by_peer()
            assert await echo_round_trip(good, b"alive") == b"alive"
            fresh = await a.transport.dial(addr, b.peer_id)
            assert await echo_round_trip(fresh, b"alive") == b"alive"
        finally:
            await a.close()
            await b.close()

    run(main())
    assert any("failed its upgrade" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("after_handshake", ["bad ciphertext", "bad yamux frame", "oversized yamux frame", "no yamux"])
def test_garbage_after_the_handshake_closes_only_that_connection(after_handshake):
    async def main():
        a, b, addr = await two_nodes("/ip4/127.0.0.1/tcp/0")
        try:
            good = await a.transport.dial(addr, b.peer_id)
            raw, cipher = await _secured(addr)
            if after_handshake == "bad ciphertext":
                await raw.write(struct.pack(">H", 40) + os.urandom(40))
            else:
                channel = noise.SecureChannel(raw, cipher)
                if after_handshake == "no yamux":
                    with pytest.raises(multistream.NegotiationError):
                        await multistream.select(channel, ["/mplex/6.7.0"])
                    await raw.write(cipher.encrypt(b"\x00" * 40))
                elif after_handshake == "bad yamux frame":
                    await multistream.select(channel, ["/yamux/1.0.0"])
                    await raw.write(cipher.encrypt(b"\x07" * 12))  # yamux version 7
                else:
                    await multistream.select(channel, ["/yamux/1.0.0"])
                    await raw.write(cipher.encrypt(struct.pack(">BBHII", 0, 0, 1, 1, 1 << 31)))  # 2 GiB DATA+SYN
            assert await raw.closed_by_peer()
            assert await echo_round_trip(good, b"alive") == b"alive"
        finally:
            await a.close()
            await b.close()

    run(main())


def test_handshake_timeouts_on_both_sides():
    async def main():
        # A listener that accepts TCP but never speaks: the dialler gives up.
        stop = asyncio.Event()

        async def silent(reader, writer):
            await stop.wait()
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        dialer = TcpTransport(Keypair.generate(), handshake_timeout=0.3)
        with pytest.raises(TransportError, match="timed out"):
            await dialer.dial(Multiaddr(f"/ip4/127.0.0.1/tcp/{port}"))
        stop.set()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)

        # A client that connects and says nothing: the listener drops it.
        b = Node(handshake_timeout=0.3)
        addr = await b.listen("/ip4/127.0.0.1/tcp/0")
        try:
            raw = await Raw.connect(addr)
            start = asyncio.get_running_loop().time()
            assert await raw.closed_by_peer()
            assert asyncio.get_running_loop().time() - start < 1.5
        finally:
            await b.close()
            await dialer.close()

    run(main())


def test_can_dial():
    t = TcpTransport(Keypair.generate())
    peer = Keypair.generate().peer_id
    assert t.can_dial(Multiaddr("/ip4/1.2.3.4/tcp/4001"))
    assert t.can_dial(Multiaddr("/ip6/::1/tcp/4001"))
    assert t.can_dial(Multiaddr(f"/ip6/2001:db8::1/tcp/4001/p2p/{peer}"))
    assert not t.can_dial(Multiaddr("/ip4/1.2.3.4/udp/4001/quic-v1"))
    assert not t.can_dial(Multiaddr("/ip4/1.2.3.4/tcp/4001/ws"))
    assert not t.can_dial(Multiaddr("/ip4/1.2.3.4/tcp/0"))
    assert not t.can_dial(Multiaddr("/dns4/example.com/tcp/4001"))
    assert not t.can_dial(Multiaddr(f"/p2p/{peer}"))


def test_listen_on_unspecified_addresses_reports_the_bound_port():
    async def main():
        t = TcpTransport(Keypair.generate())
        try:
            addrs = [await t.listen(Multiaddr("/ip4/0.0.0.0/tcp/0"), lambda c: None)]
            if _has_ipv6_loopback():
                addrs.append(await t.listen(Multiaddr("/ip6/::/tcp/0"), lambda c: None))
            for addr in addrs:
                assert int(addr.value_for_protocol("tcp")) > 0
            assert str(addrs[0]).startswith("/ip4/0.0.0.0/tcp/")
            if len(addrs) > 1:
                assert str(addrs[1]).startswith("/ip6/::/tcp/")
                other = TcpTransport(Keypair.generate())
                port = addrs[1].value_for_protocol("tcp")
                conn = await other.dial(Multiaddr(f"/ip6/::1/tcp/{port}"), t.peer_id)
                assert conn.remote_peer == t.peer_id
                await other.close()
        finally:
            await t.close()

    run(main())


def test_noise_payload_signature_is_checked():
    creds = noise.NoiseCredentials(Keypair.generate())
    assert noise.verify_payload(creds.payload, creds.static_public) == creds.keypair.peer_id
    with pytest.raises(HandshakeError):
        noise.verify_payload(creds.payload, os.urandom(32))  # signed a different static key
    with pytest.raises(HandshakeError):
        noise.verify_payload(b"\x0a\x03abc", creds.static_public)
    with pytest.raises(HandshakeError):
        noise.verify_payload(b"\xff\xff", creds.static_public)


def test_noise_payload_with_a_secp256k1_identity():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from p2pnode.transports.pb import noise_pb2

    key = ec.generate_private_key(ec.SECP256K1())
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    proto = bytes([0x08, 0x02, 0x12, len(point)]) + point
    static = os.urandom(32)
    signature = key.sign(noise.SIGNATURE_PREFIX + static, ec.ECDSA(hashes.SHA256()))
    payload = noise_pb2.NoiseHandshakePayload(identity_key=proto, identity_sig=signature).SerializeToString()
    peer = noise.verify_payload(payload, static)
    assert peer.raw == bytes([0, len(proto)]) + proto
    with pytest.raises(HandshakeError):
        noise.verify_payload(payload, os.urandom(32))


def test_noise_cipher_round_trip_any_chunking():
    key_a, key_b = os.urandom(32), os.urandom(32)
    sender, receiver = noise.NoiseCipher(key_a, key_b), noise.NoiseCipher(key_b, key_a)
    data = os.urandom(200_000)
    wire = bytes(sender.encrypt(data)) + bytes(sender.encrypt(b"tail"))
    assert len(wire) == len(data) + 4 + 5 * 18  # 4 messages for 200000 bytes, 1 for the tail
    out = bytearray()
    for i in range(0, len(wire), 7777):
        out += receiver.decrypt(wire[i : i + 7777])
    assert out == data + b"tail"
    tampered = sender.encrypt(b"secret")
    tampered[5] ^= 1
    with pytest.raises(noise.NoiseError):
        receiver.decrypt(tampered)
    with pytest.raises(noise.NoiseError):
        receiver.decrypt(b"\x00\x05hello")  # shorter than a tag
