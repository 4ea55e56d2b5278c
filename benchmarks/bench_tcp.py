"""TCP transport benchmark: bulk throughput of one stream and connection set-up latency, on loopback,
through the whole stack (TCP + multistream-select + Noise XX + Yamux).

    .venv/bin/python benchmarks/bench_tcp.py [--mbytes 200] [--seconds 5] [--window BYTES] [--same-process]
                                             [--connections 50] [--addr /ip6/::1/tcp/0] [--skip-cipher]

Throughput: the dialler opens one stream, selects ``/bench/sink`` and writes ``--mbytes`` MB (or for
``--seconds`` s, whichever ends first) in 1 MiB writes, then closes; the listener reads and discards and,
at end of stream, answers with the byte count. The clock stops when that answer arrives, so every byte
was decrypted and read by the remote application. By default the listener runs in its own process (two
nodes, two cores); ``--same-process`` puts both ends on one event loop (one core does all the work).

Latency: ``--connections`` sequential dials, each timed from the TCP connect through the Noise handshake,
the Yamux negotiation, opening a stream and a multistream-select round trip of ``/bench/ping``; p50/p90.

Cipher: the Noise transport phase (framing, encryption, decryption) done with noiseprotocol's
``CipherState`` versus the direct ``cryptography`` ChaCha20-Poly1305 path the transport uses.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from multiaddr import Multiaddr  # noqa: E402

from p2pnode.identity import Keypair  # noqa: E402
from p2pnode.transports import multistream, noise  # noqa: E402
from p2pnode.transports.base import ConnectionClosed, StreamReset  # noqa: E402
from p2pnode.transports.tcp import TcpTransport  # noqa: E402
from p2pnode.transports.yamux import INITIAL_WINDOW  # noqa: E402

SINK = "/bench/sink"
PING = "/bench/ping"
CHUNK = 1 << 20


# ---- the listener ----------------------------------------------------------------------------------------


async def _serve_stream(stream) -> None:
    try:
        protocol = await multistream.handle(stream, [SINK, PING])
        if protocol == SINK:
            total = 0
            while data := await stream.read(CHUNK):
                total += len(data)
            await stream.write(total.to_bytes(8, "big"))
        await stream.close()
    except (StreamReset, ConnectionClosed, multistream.NegotiationError):
        stream.reset()


def _on_connection(conn) -> None:
    async def accept_loop():
        try:
            while True:
                stream = await conn.accept_stream()
                asyncio.get_running_loop().create_task(_serve_stream(stream))
        except ConnectionClosed:
            pass

    asyncio.get_running_loop().create_task(accept_loop())


async def start_listener(addr: str, window: int) -> tuple[TcpTransport, Multiaddr]:
    transport = TcpTransport(Keypair.generate(), window=window)
    bound = await transport.listen(Multiaddr(addr), _on_connection)
    return transport, Multiaddr(f"{bound}/p2p/{transport.peer_id}")


def _listener_process(addr: str, window: int, pipe) -> None:
    async def serve():
        transport, bound = await start_listener(addr, window)
        pipe.send(str(bound))
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # until told to stop
        await transport.close()

    asyncio.run(serve())


# ---- the dialler -----------------------------------------------------------------------------------------


async def throughput(dialer: TcpTransport, target: Multiaddr, mbytes: int, seconds: float) -> tuple[int, float]:
    conn = await dialer.dial(target)
    stream = await conn.open_stream()
    await multistream.select(stream, [SINK])
    chunk = os.urandom(CHUNK)
    limit = mbytes * 1_000_000
    sent = 0
    start = time.perf_counter()
    deadline = start + seconds
    while sent < limit and time.perf_counter() < deadline:
        piece = chunk if limit - sent >= CHUNK else chunk[: limit - sent]
        await stream.write(piece)
        sent += len(piece)
    await stream.close()
    acknowledged = int.from_bytes(await stream.readexactly(8), "big")
    elapsed = time.perf_counter() - start
    if acknowledged != sent:
        raise RuntimeError(f"sent {sent} bytes but the listener read {acknowledged}")
    await conn.close()
    return sent, elapsed


async def latency(dialer: TcpTransport, target: Multiaddr, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        conn = await dialer.dial(target)
        stream = await conn.open_stream()
        await multistream.select(stream, [PING])
        samples.append(time.perf_counter() - start)
        await conn.close()
    return samples


# ---- the cipher comparison -------------------------------------------------------------------------------


def _established_noise_pair():
    from noise.connection import Keypair as NoiseKeypair
    from noise.connection import NoiseConnection

    ends = []
    for initiator in (True, False):
        end = NoiseConnection.from_name(noise.NOISE_PROTOCOL_NAME)
        if initiator:
            end.set_as_initiator()
        else:
            end.set_as_responder()
        end.set_keypair_from_private_bytes(NoiseKeypair.STATIC, os.urandom(32))
        end.start_handshake()
        ends.append(end)
    a, b = ends
    b.read_message(a.write_message())
    a.read_message(b.write_message())
    b.read_message(a.write_message())
    return a, b


def _library_round_trip(a, b, data: bytes) -> bytes:
    """What the transport would do with noiseprotocol: frame and encrypt, then parse and decrypt."""
    wire = bytearray()
    for offset in range(0, len(data), noise.MAX_PLAINTEXT):
        ciphertext = a.encrypt(data[offset : offset + noise.MAX_PLAINTEXT])
        wire += len(ciphertext).to_bytes(2, "big") + ciphertext
    plain = []
    pos = 0
    while pos < len(wire):
        size = int.from_bytes(wire[pos : pos + 2], "big")
        plain.append(b.decrypt(bytes(wire[pos + 2 : pos + 2 + size])))
        pos += 2 + size
    return b"".join(plain)


def cipher_comparison(rounds: int = 200) -> dict[str, float]:
    """MB/s for 1 MiB writes and microseconds per 200-byte message, noiseprotocol vs direct."""
    results = {}
    big, small = os.urandom(CHUNK), os.urandom(200)
    for name in ("noiseprotocol", "direct"):
        a, b = _established_noise_pair()
        if name == "noiseprotocol":

            def round_trip(data, a=a, b=b):
                return _library_round_trip(a, b, data)

        else:
            ours_a = noise.NoiseCipher(a.noise_protocol.cipher_state_encrypt.k, a.noise_protocol.cipher_state_decrypt.k)
            ours_b = noise.NoiseCipher(b.noise_protocol.cipher_state_encrypt.k, b.noise_protocol.cipher_state_decrypt.k)

            def round_trip(data, send=ours_a, recv=ours_b):
                return recv.decrypt(send.encrypt(data))

        assert round_trip(big) == big
        start = time.perf_counter()
        for _ in range(rounds):
            round_trip(big)
        results[f"{name} MB/s"] = rounds * len(big) / (time.perf_counter() - start) / 1e6
        start = time.perf_counter()
        for _ in range(rounds * 50):
            round_trip(small)
        results[f"{name} us"] = (time.perf_counter() - start) / (rounds * 50) * 1e6
    return results


# ---- main ------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    process = None
    listener = None
    pipe = None
    if args.same_process:
        listener, target = await start_listener(args.addr, args.window)
    else:
        ctx = multiprocessing.get_context("spawn")
        pipe, child = ctx.Pipe()
        process = ctx.Process(target=_listener_process, args=(args.addr, args.window, child), daemon=True)
        process.start()
        target = Multiaddr(await asyncio.get_running_loop().run_in_executor(None, pipe.recv))
    dialer = TcpTransport(Keypair.generate(), window=args.window)
    try:
        where = "both ends in one process" if args.same_process else "listener in its own process"
        print(f"target {target} ({where}), Yamux window {args.window} B")
        await latency(dialer, target, 3)  # warm up
        samples = sorted(await latency(dialer, target, args.connections))
        p50 = statistics.median(samples) * 1000
        p90 = samples[int(0.9 * (len(samples) - 1))] * 1000
        print(
            f"connect + handshake + first multistream round trip: p50 {p50:.2f} ms, p90 {p90:.2f} ms "
            f"over {len(samples)} connections"
        )
        sent, elapsed = await throughput(dialer, target, args.mbytes, args.seconds)
        print(f"one stream: {sent / 1e6:.0f} MB in {elapsed:.2f} s = {sent * 8 / elapsed / 1e6:.0f} Mbit/s")
    finally:
        await dialer.close()
        if listener is not None:
            await listener.close()
        if process is not None and pipe is not None:
            pipe.send("stop")
            process.join(5)
    if not args.skip_cipher:
        r = cipher_comparison()
        print(
            "Noise transport phase (frame + encrypt + decrypt): 1 MiB writes "
            f"noiseprotocol {r['noiseprotocol MB/s']:.0f} MB/s, direct cryptography (used) {r['direct MB/s']:.0f} MB/s;"
            f" 200-byte messages {r['noiseprotocol us']:.1f} us vs {r['direct us']:.1f} us"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mbytes", type=int, default=200, help="megabytes to send (default 200)")
    parser.add_argument("--seconds", type=float, default=5.0, help="stop sending after this long (default 5)")
    parser.add_argument("--window", type=int, default=INITIAL_WINDOW, help="Yamux receive window per stream")
    parser.add_argument("--connections", type=int, default=50, help="dials for the latency figure")
    parser.add_argument("--addr", default="/ip6/::1/tcp/0", help="listen address (default /ip6/::1/tcp/0)")
    parser.add_argument("--same-process", action="store_true", help="run both ends on one event loop")
    parser.add_argument("--skip-cipher", action="store_true", help="skip the cipher comparison")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
