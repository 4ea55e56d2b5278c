"""A node flooded by one peer, attack by attack: its memory against its configured limit, and how a second
peer is served meanwhile.

The node runs as ``p2pnode run`` in its own process on loopback (``[resources] max_memory_mb``, 200 here),
so its resident memory is its own; one attacking peer and one well-behaved peer run in this process. For
each attack: the node's RSS before, at its peak (sampled every 20 ms) and 2 s after the attacker left;
the second peer's ping round trip (TCP, open connection) or, for the QUIC attack, its connect + handshake +
first ping on a fresh QUIC connection, unflooded and during the attack (p50 and p99); and the bytes the
node logged meanwhile (at level info).

Attacks (issue 14): ``half-frames`` (1,000 pub-sub streams each announcing a 1 MiB frame and sending
250 KiB of it), ``ping-flood`` (20 MB of Yamux PINGs whose answers are never read), ``quic-initials``
(300 undecryptable 1,200-byte Initials from fresh connection IDs, every second), ``bad-requests``
(1,000 malformed ``/p2pnode/reqresp/1.0.0`` requests), ``bad-certificates`` (100 QUIC handshakes with an
X.509 version of 7).

Usage: nice -n 10 .venv/bin/python benchmarks/bench_flood.py [--attacks a,b] [--node-tree DIR]
``--node-tree`` runs the node from another checkout (e.g. an older commit's worktree) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from multiaddr import Multiaddr

from p2pnode.framing import encode_uvarint
from p2pnode.identity import Keypair, PeerId
from p2pnode.runtime.node import Node
from p2pnode.transports import multistream, yamux
from p2pnode.transports.base import TransportError
from p2pnode.transports.quic import QuicTransport
from p2pnode.transports.tcp import TcpTransport

MAX_MEMORY_MB = 200
ATTACKS = ("half-frames", "ping-flood", "quic-initials", "bad-requests", "bad-certificates")


# ---- the node under attack ---------------------------------------------------------------------------


def start_node(directory: Path, tree: Path | None) -> tuple[subprocess.Popen, dict, Path]:
    config = directory / "node.toml"
    config.write_text(f"""
[network]
listen_addresses = ["/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"]
[mcp]
enabled = false
[resources]
max_memory_mb = {MAX_MEMORY_MB}
[log]
level = "info"
""")
    log = directory / "node.log"
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    proc = subprocess.Popen([sys.executable, "-m", "p2pnode.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env,
                            cwd=tree or Path.cwd())
    ready = json.loads(proc.stdout.readline())
    return proc, ready, log


class Sampler:
    """The node's RSS every 20 ms, in a thread (the event loop is busy attacking)."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> Sampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def addr_of(ready: dict, transport: str) -> Multiaddr:
    return next(Multiaddr(a) for a in ready["listen_addrs"] if ("/quic-v1" in a) == (transport == "quic"))


# ---- the attacks (one peer each) ---------------------------------------------------------------------


async def half_frames(ready: dict, seconds: float) -> None:
    client = TcpTransport(Keypair.generate())
    conn = await client.dial(addr_of(ready, "tcp"), PeerId.from_base58(ready["peer_id"]))
    body = encode_uvarint(1 << 20) + b"x" * (250 * 1024)

    async def one() -> None:
        try:
            stream = await conn.open_stream()
            await multistream.propose(stream, "/meshsub/1.1.0")
            await stream.write(body)
        except TransportError:
            pass  # refused

    for _ in range(10):
        await asyncio.gather(*(one() for _ in range(100)))
    await asyncio.sleep(seconds)
    await client.close()


async def ping_flood(ready: dict, seconds: float) -> None:
    client = TcpTransport(Keypair.generate())
    conn = await client.dial(addr_of(ready, "tcp"), PeerId.from_base58(ready["peer_id"]))
    link = conn._link
    link._protocol.transport.pause_reading()  # never read an answer
    chunk = yamux.HEADER.pack(yamux.VERSION, yamux.TYPE_PING, yamux.FLAG_SYN, 0, 1) * 5000
    deadline = time.monotonic() + seconds
    sent = 0
    while sent < 20_000_000:
        link.write(chunk)
        sent += len(chunk)
        try:
            await asyncio.wait_for(link.drain(), 2)
        except TimeoutError:
            break  # the node stopped reading us
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    await client.close()


def fake_initial() -> bytes:
    header = b"\xc3" + (1).to_bytes(4, "big") + b"\x08" + os.urandom(8) + b"\x08" + os.urandom(8) + b"\x00"
    length = 1200 - len(header) - 2
    return header + (0x4000 | length).to_bytes(2, "big") + os.urandom(length)


async def quic_initials(ready: dict, seconds: float) -> None:
    target = ("127.0.0.1", int(addr_of(ready, "quic").value_for_protocol("udp")))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for _ in range(300):
                try:
                    sock.sendto(fake_initial(), target)
                except BlockingIOError:
                    pass
            await asyncio.sleep(1.0)
    finally:
        sock.close()


async def bad_requests(ready: dict, seconds: float) -> None:
    client = TcpTransport(Keypair.generate())
    conn = await client.dial(addr_of(ready, "tcp"), PeerId.from_base58(ready["peer_id"]))
    bad = encode_uvarint(5) + b"\xff" * 5

    async def one() -> None:
        try:
            stream = await conn.open_stream()
            await multistream.propose(stream, "/p2pnode/reqresp/1.0.0")
            await stream.write(bad)
            await stream.read()
        except TransportError:
            pass

    deadline = time.monotonic() + seconds
    for _ in range(10):
        await asyncio.gather(*(one() for _ in range(100)))
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    await client.close()


async def bad_certificates(ready: dict, seconds: float) -> None:
    from aioquic.asyncio import connect
    from aioquic.quic.configuration import QuicConfiguration
    from cryptography.hazmat.primitives.serialization import Encoding

    from p2pnode.transports.tls import make_certificate

    certificate, key = make_certificate(Keypair.generate())
    der = certificate.public_bytes(Encoding.DER)
    at = der.find(bytes([0xA0, 3, 2, 1, 2]))
    bad = der[: at + 4] + b"\x07" + der[at + 5:]

    class Raw:
        def public_bytes(self, encoding):
            return bad

    port = int(addr_of(ready, "quic").value_for_protocol("udp"))

    async def one() -> None:
        configuration = QuicConfiguration(is_client=True, alpn_protocols=["libp2p"], verify_mode=ssl.CERT_NONE,
                                          certificate=Raw(), private_key=key, idle_timeout=2.0)
        try:
            async with asyncio.timeout(3):
                async with connect("127.0.0.1", port, configuration=configuration) as protocol:
                    await protocol.wait_closed()
        except (TimeoutError, ConnectionError):
            pass

    deadline = time.monotonic() + seconds
    for _ in range(10):
        await asyncio.gather(*(one() for _ in range(10)))
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


FLOODS = {"half-frames": half_frames, "ping-flood": ping_flood, "quic-initials": quic_initials,
          "bad-requests": bad_requests, "bad-certificates": bad_certificates}


# ---- the second peer ---------------------------------------------------------------------------------


async def pings(client: Node, ready: dict, seconds: float) -> list[float]:
    """Ping round trips over the client's open TCP connection for ``seconds``."""
    server = PeerId.from_base58(ready["peer_id"])
    rtts: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            rtts += await client.ping(server, count=10, timeout=15, addrs=[addr_of(ready, "tcp")])
        except (TransportError, TimeoutError, OSError):
            rtts.append(15.0)  # counted as a 15 s answer
        await asyncio.sleep(0.02)
    return rtts


async def quic_dials(ready: dict, seconds: float) -> list[float]:
    """Connect + handshake + first ping on fresh QUIC connections for ``seconds``."""
    server = PeerId.from_base58(ready["peer_id"])
    times: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        transport = QuicTransport(Keypair.generate())
        start = time.perf_counter()
        try:
            conn = await asyncio.wait_for(transport.dial(addr_of(ready, "quic"), server), 15)
            stream = await conn.open_stream()
            await multistream.select(stream, ["/ipfs/ping/1.0.0"])
            await stream.write(b"p" * 32)
            await stream.readexactly(32)
            times.append(time.perf_counter() - start)
        except (TransportError, TimeoutError, OSError):
            times.append(15.0)
        finally:
            await transport.close()
        await asyncio.sleep(0.05)
    return times


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"{statistics.median(values) * 1e3:7.2f} / {p99 * 1e3:8.2f}"


async def run_attack(name: str, ready: dict, proc: subprocess.Popen, log: Path, seconds: float) -> str:
    quic = name in ("quic-initials", "bad-certificates")
    client = None
    if not quic:
        client = Node(listen=["/ip4/127.0.0.1/tcp/0"], transports=["tcp"], pubsub=False)
        await client.start()

    def second_peer():
        return quic_dials(ready, seconds) if quic else pings(client, ready, seconds)

    quiet = await second_peer()
    log_before = log.stat().st_size
    with Sampler(proc.pid) as memory:
        before = memory.rss()
        flood = asyncio.ensure_future(FLOODS[name](ready, seconds))
        await asyncio.sleep(0.2)
        flooded = await second_peer()
        await flood
    if client is not None:
        await client.stop()
    await asyncio.sleep(2.0)
    after = memory.rss()
    logged = log.stat().st_size - log_before
    mib = 2 ** 20
    return (f"{name:<17} {before / mib:6.0f} {memory.peak / mib:6.0f} {after / mib:6.0f}   "
            f"{percentiles(quiet)}   {percentiles(flooded)}   {logged / 1024:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each attack")
    parser.add_argument("--node-tree", type=Path, default=None, help="run the node from this checkout")
    args = parser.parse_args()
    attacks = args.attacks.split(",")
    unknown = set(attacks) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks {', '.join(sorted(unknown))} (known: {', '.join(ATTACKS)})")
    print(f"node process on 127.0.0.1, [resources] max_memory_mb = {MAX_MEMORY_MB}, "
          f"from {args.node_tree or 'this checkout'}")
    print(f"{'attack':<17} {'RSS MiB: before':>15} {'peak':>6} {'after':>6}   "
          f"{'second peer ms p50 / p99: unflooded':>34}   {'flooded':>17}   {'log KiB':>8}")
    for name in attacks:
        with tempfile.TemporaryDirectory() as tmp:
            proc, ready, log = start_node(Path(tmp), args.node_tree)
            try:
                print(asyncio.run(run_attack(name, ready, proc, log, args.seconds)), flush=True)
            finally:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print("(second peer: ping round trip on an open TCP connection; for the QUIC attacks, connect + handshake"
          " + first ping on a fresh QUIC connection; a failure counts as 15 s)")


if __name__ == "__main__":
    main()
