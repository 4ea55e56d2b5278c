"""QUIC throughput and handshake latency: bare aioquic against p2pnode's libp2p QUIC transport, on ::1.

    .venv/bin/python benchmarks/bench_quic.py [--seconds 5] [--megabytes 200] [--connections 30] [--pings 500]

Each measurement runs the server in a child process and the client in this one, so the two ends do not
share a CPU (aioquic is CPU-bound; the receiver is the bottleneck).

Throughput: one stream, one direction, client to server, 64 KiB writes, until ``--megabytes`` are sent or
``--seconds`` pass; the receiver reports Mbit/s from its first byte to the end of the stream, and Mbit
per CPU-second it spent (less sensitive to other load on the machine). "bare" is
aioquic's own asyncio API (``serve``/``connect``, a ``QuicConnectionProtocol`` subclass) moving raw bytes
with no libp2p certificate checks; the sender waits while more than 1 MiB is unacknowledged, as ours does.
"ours" is ``QuicTransport``: libp2p TLS handshake, ``Connection``, ``Stream.write`` / ``Stream.read``.
Both use the same QUIC settings: flow-control windows, datagram size, QUIC version (aioquic's defaults
otherwise).

Latency: connect + handshake + open a stream + one byte echoed, p50 over ``--connections`` fresh
connections to one server (for ours also with session resumption, i.e. 0-RTT); and the round trip of a
32-byte echo on an open stream (a libp2p ping), p50 over ``--pings``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import os
import ssl
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioquic.asyncio import QuicConnectionProtocol, connect, serve  # noqa: E402
from aioquic.quic import events  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from multiaddr import Multiaddr  # noqa: E402

from p2pnode.identity import Keypair, PeerId  # noqa: E402
from p2pnode.transports.quic import QuicTransport  # noqa: E402
from p2pnode.transports.quic import constants as p2p_quic  # noqa: E402

CHUNK = 64 * 1024
PAYLOAD = b"d" + os.urandom(CHUNK - 1)  # not taken for a ping ("p") or the latency probe ("x")
PING = b"p" * 32


def _config(is_client: bool) -> QuicConfiguration:
    """Bare aioquic with the QUIC settings QuicTransport uses."""
    configuration = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=["bench"],
        max_data=p2p_quic.CONNECTION_WINDOW,
        max_stream_data=p2p_quic.STREAM_WINDOW,
        max_datagram_size=p2p_quic.MAX_DATAGRAM_SIZE,
        idle_timeout=p2p_quic.IDLE_TIMEOUT,
        supported_versions=list(p2p_quic.SUPPORTED_VERSIONS),
        verify_mode=ssl.CERT_NONE,
    )
    if not is_client:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
        now = datetime.datetime.now(datetime.UTC)
        configuration.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        configuration.private_key = key
    return configuration


# ---- servers (child process) -----------------------------------------------------------------------------


class _BareServer(QuicConnectionProtocol):
    """Counts a stream's bytes and reports (bytes, seconds) at its end; echoes one-byte messages."""

    report = None  # a Connection end of a multiprocessing Pipe

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received = 0
        self.first: float | None = None

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            if event.data[:1] == PING[:1] and not self.received:  # echo, stream stays open
                self._quic.send_stream_data(event.stream_id, event.data)
                self.transmit()
                return
            if event.data == b"x" and not self.received:
                self._quic.send_stream_data(event.stream_id, b"x", end_stream=True)
                self.transmit()
                return
            if self.first is None:
                self.first, self.cpu = time.perf_counter(), time.process_time()
            self.received += len(event.data)
            if event.end_stream:
                _BareServer.report.send(
                    (self.received, time.perf_counter() - self.first, time.process_time() - self.cpu)
                )


async def _serve_bare(pipe) -> None:
    _BareServer.report = pipe
    server = await serve("::1", 0, configuration=_config(False), create_protocol=_BareServer)
    pipe.send((server._transport.get_extra_info("sockname")[1], None))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # until the parent says stop
    server.close()


async def _serve_ours(pipe, resumption: bool) -> None:
    transport = QuicTransport(Keypair.generate(), session_resumption=resumption)

    async def handle(connection) -> None:
        try:
            stream = await connection.accept_stream()
            data = await stream.read(1 << 20)
            if data[:1] == PING[:1]:
                while data:
                    await stream.write(data)
                    data = await stream.read(1 << 20)
                return
            if data == b"x":
                await stream.write(b"x")
                await stream.close()
                return
            first, cpu, received = time.perf_counter(), time.process_time(), len(data)
            while data := await stream.read(1 << 20):
                received += len(data)
            pipe.send((received, time.perf_counter() - first, time.process_time() - cpu))
        except Exception:
            pass

    addr = await transport.listen(Multiaddr("/ip6/::1/udp/0/quic-v1"), lambda c: asyncio.ensure_future(handle(c)))
    pipe.send((int(addr.value_for_protocol("udp")), transport.keypair.peer_id.to_base58()))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    await transport.close()


def _server_process(pipe, kind: str, resumption: bool) -> None:
    asyncio.run(_serve_bare(pipe) if kind == "bare" else _serve_ours(pipe, resumption))


class _Server:
    """A server in a child process: ``port``, ``peer_id``; ``result()`` waits for its next report."""

    def __init__(self, kind: str, resumption: bool = False):
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_server_process, args=(child, kind, resumption), daemon=True)
        self.process.start()
        self.port, peer = self.pipe.recv()
        self.peer_id = PeerId.from_base58(peer) if peer else None

    async def result(self):
        return await asyncio.get_running_loop().run_in_executor(None, self.pipe.recv)

    def stop(self) -> None:
        self.pipe.send("stop")
        self.process.join(10)


# ---- clients ---------------------------------------------------------------------------------------------


class _BareClient(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.echo: asyncio.Future[None] | None = None
        self.drain: asyncio.Future[None] | None = None
        self.sender = None

    def datagram_received(self, data, addr) -> None:
        super().datagram_received(data, addr)
        sender = self.sender
        if self.drain is not None and sender._buffer_stop - sender._buffer_start <= p2p_quic.SEND_BUFFER_LOW:
            if not self.drain.done():
                self.drain.set_result(None)

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived) and self.echo is not None and not self.echo.done():
            self.echo.set_result(None)


async def bare_throughput(total: int, seconds: float) -> float:
    server = _Server("bare")
    async with connect("::1", server.port, configuration=_config(True), create_protocol=_BareClient) as client:
        quic = client._quic
        stream_id = quic.get_next_available_stream_id()
        start, sent, cpu = time.perf_counter(), 0, time.process_time()
        while sent < total and time.perf_counter() - start < seconds:
            quic.send_stream_data(stream_id, PAYLOAD)
            client._transmit_soon()  # as aioquic's StreamWriter.write does
            sent += CHUNK
            sender = client.sender = quic._streams[stream_id].sender
            if sender._buffer_stop - sender._buffer_start > p2p_quic.SEND_BUFFER_HIGH:
                client.drain = asyncio.get_running_loop().create_future()
                await client.drain
                client.drain = None
        quic.send_stream_data(stream_id, b"", end_stream=True)
        client.transmit()
        received, elapsed, server_cpu = await server.result()
        sender_load = (time.process_time() - cpu) / (time.perf_counter() - start)
    server.stop()
    return received * 8 / elapsed / 1e6, received * 8 / server_cpu / 1e6, server_cpu / elapsed, sender_load


async def bare_latency(count: int) -> float:
    server = _Server("bare")
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        async with connect("::1", server.port, configuration=_config(True), create_protocol=_BareClient) as client:
            client.echo = asyncio.get_running_loop().create_future()
            client._quic.send_stream_data(client._quic.get_next_available_stream_id(), b"x")
            client.transmit()
            await client.echo
            samples.append(time.perf_counter() - start)
    server.stop()
    return statistics.median(samples) * 1e3


class _BarePinger(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.echo: asyncio.Future[None] | None = None
        self.received = b""

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            self.received += event.data
            if len(self.received) >= len(PING) and self.echo is not None and not self.echo.done():
                self.echo.set_result(None)


async def bare_ping(count: int) -> float:
    server = _Server("bare")
    samples = []
    async with connect("::1", server.port, configuration=_config(True), create_protocol=_BarePinger) as client:
        quic, loop = client._quic, asyncio.get_running_loop()
        stream_id = quic.get_next_available_stream_id()
        for i in range(count + 20):  # the first 20 warm up
            client.echo, client.received = loop.create_future(), b""
            start = time.perf_counter()
            quic.send_stream_data(stream_id, PING)
            client.transmit()
            await client.echo
            if i >= 20:
                samples.append(time.perf_counter() - start)
    server.stop()
    return statistics.median(samples) * 1e3


async def ours_ping(count: int) -> float:
    server = _Server("ours")
    client = QuicTransport(Keypair.generate())
    connection = await client.dial(Multiaddr(f"/ip6/::1/udp/{server.port}/quic-v1"), server.peer_id)
    stream = await connection.open_stream()
    samples = []
    for i in range(count + 20):
        start = time.perf_counter()
        await stream.write(PING)
        assert await stream.readexactly(len(PING)) == PING
        if i >= 20:
            samples.append(time.perf_counter() - start)
    await client.close()
    server.stop()
    return statistics.median(samples) * 1e3


async def ours_throughput(total: int, seconds: float) -> float:
    server = _Server("ours")
    client = QuicTransport(Keypair.generate())
    connection = await client.dial(Multiaddr(f"/ip6/::1/udp/{server.port}/quic-v1"), server.peer_id)
    stream = await connection.open_stream()
    start, sent, cpu = time.perf_counter(), 0, time.process_time()
    while sent < total and time.perf_counter() - start < seconds:
        await stream.write(PAYLOAD)
        sent += CHUNK
    await stream.close()
    received, elapsed, server_cpu = await server.result()
    sender_load = (time.process_time() - cpu) / (time.perf_counter() - start)
    await client.close()
    server.stop()
    return received * 8 / elapsed / 1e6, received * 8 / server_cpu / 1e6, server_cpu / elapsed, sender_load


async def ours_latency(count: int, resumption: bool) -> float:
    server = _Server("ours", resumption)
    client = QuicTransport(Keypair.generate(), session_resumption=resumption)
    addr = Multiaddr(f"/ip6/::1/udp/{server.port}/quic-v1")
    samples = []
    for i in range(count + 1):
        start = time.perf_counter()
        connection = await client.dial(addr, server.peer_id)
        stream = await connection.open_stream()
        await stream.write(b"x")
        assert await stream.read() == b"x"
        if i:  # the first one makes the client's certificate and, with resumption, gets the first ticket
            samples.append(time.perf_counter() - start)
        await connection.close()
    await client.close()
    server.stop()
    return statistics.median(samples) * 1e3


async def main(args: argparse.Namespace) -> None:
    total = args.megabytes * 1_000_000
    print(f"throughput, one stream on ::1, {args.megabytes} MB or {args.seconds} s each (best of {args.runs}):")
    print("                      Mbit/s   Mbit per receiver CPU-s   receiver CPU   sender CPU")
    bare = ours = (0.0, 0.0, 0.0, 0.0)
    for _ in range(args.runs):  # alternate, keep the best: other load on the machine only slows a run down
        bare = max(bare, await bare_throughput(total, args.seconds))
        ours = max(ours, await ours_throughput(total, args.seconds))
    for name, (rate, efficiency, receiver, sender) in (("bare aioquic", bare), ("p2pnode QUIC", ours)):
        print(f"  {name:18}{rate:8.1f}   {efficiency:8.1f}                {receiver:6.0%}        {sender:6.0%}")
    print(f"  ratio ours/bare     {ours[0] / bare[0]:8.2f}   {ours[1] / bare[1]:8.2f}")
    print(f"connect + handshake + first stream round trip, p50 of {args.connections}:")
    print(f"  bare aioquic                 {await bare_latency(args.connections):6.2f} ms")
    print(f"  p2pnode QUIC                 {await ours_latency(args.connections, False):6.2f} ms")
    print(f"  p2pnode QUIC, resumed 0-RTT  {await ours_latency(args.connections, True):6.2f} ms")
    print(f"32-byte echo on an open stream (ping RTT), p50 of {args.pings}:")
    print(f"  bare aioquic                 {await bare_ping(args.pings):6.3f} ms")
    print(f"  p2pnode QUIC                 {await ours_ping(args.pings):6.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--connections", type=int, default=30)
    parser.add_argument("--pings", type=int, default=500)
    parser.add_argument("--runs", type=int, default=1, help="throughput runs of each, alternating")
    asyncio.run(main(parser.parse_args()))
