"""The real node's targets (issue 4), measured side by side on loopback:

- connect + libp2p handshake + first protocol round trip (a ping) on a fresh connection, per transport;
- ping RTT on an open connection, per transport;
- 1,000 concurrent connections to one node process: its memory and file descriptors, and any errors;
- an idle node process: resident memory and CPU share.

Usage: .venv/bin/python benchmarks/bench_node.py [--connections 1000] [--rounds 30] [--idle 10]
The node under test runs as `p2pnode run` in its own process, so its memory and descriptors are its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from multiaddr import Multiaddr

from p2pnode.identity import Keypair, PeerId
from p2pnode.runtime.node import Node

LISTEN = {"quic": "/ip6/::1/udp/0/quic-v1", "tcp": "/ip6/::1/tcp/0"}


def start_node_process(directory: Path, extra: str = "") -> tuple[subprocess.Popen, dict]:
    config = directory / "node.toml"
    config.write_text(f"""
[network]
listen_addresses = ["/ip6/::1/udp/0/quic-v1", "/ip6/::1/tcp/0"]
[mcp]
server_address = "127.0.0.1:0"
[log]
level = "warning"
{extra}
""")
    proc = subprocess.Popen([sys.executable, "-m", "p2pnode.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = json.loads(proc.stdout.readline())
    return proc, ready


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


async def handshake_and_ping(transport: str, ready: dict, rounds: int) -> tuple[list[float], list[float]]:
    """Against a node process: fresh client nodes dial it and ping once (connect + handshake + first round
    trip), then one client pings 500 times over its open connection."""
    addr = next(Multiaddr(a) for a in ready["listen_addrs"] if ("/quic-v1" in a) == (transport == "quic"))
    server = PeerId.from_base58(ready["peer_id"])
    firsts = []
    for _ in range(rounds):
        client = Node(listen=[LISTEN[transport]], transports=[transport])
        await client.start()
        start = time.perf_counter()
        await client.ping(server, addrs=[addr])
        firsts.append(time.perf_counter() - start)
        await client.stop()
    client = Node(listen=[LISTEN[transport]], transports=[transport])
    await client.start()
    await client.ping(server, count=20, addrs=[addr])  # warm up
    rtts = await client.ping(server, count=500)
    await client.stop()
    return firsts, rtts


async def many_connections(transport: str, ready: dict, count: int):
    """Open ``count`` connections to the node at the same time (100 handshakes in flight at most)."""
    from p2pnode.runtime.node import make_transports

    addr = next(Multiaddr(a) for a in ready["listen_addrs"] if ("/quic-v1" in a) == (transport == "quic"))
    peer = PeerId.from_base58(ready["peer_id"])
    (dialer,) = make_transports(Keypair.generate(), [transport])
    limit = asyncio.Semaphore(100)
    conns, errors = [], 0

    async def one():
        nonlocal errors
        async with limit:
            try:
                conns.append(await asyncio.wait_for(dialer.dial(addr, peer), 30))
            except Exception:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    elapsed = time.perf_counter() - start
    await asyncio.sleep(1.0)
    alive = sum(not c.closed for c in conns)
    return alive, errors, elapsed, dialer, conns


async def measure_connections(node: psutil.Process, transport: str, ready: dict, count: int):
    alive, errors, elapsed, dialer, conns = await many_connections(transport, ready, count)
    rss, fds = node.memory_info().rss, node.num_fds()
    for conn in conns:
        await conn.close()
    await dialer.close()
    return alive, errors, elapsed, rss, fds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds to watch the idle node")
    args = parser.parse_args()

    print("against a node process on ::1:")
    print(f"{'transport':<9} {'connect+handshake+ping p50':>27} {'p90':>8} {'ping RTT p50':>13} {'p99':>8}")
    for transport in ("quic", "tcp"):
        with tempfile.TemporaryDirectory() as tmp:
            proc, ready = start_node_process(Path(tmp))
            try:
                firsts, rtts = asyncio.run(handshake_and_ping(transport, ready, args.rounds))
            finally:
                stop(proc)
        firsts.sort()
        rtts.sort()
        first_p50, first_p90 = statistics.median(firsts) * 1e3, firsts[int(len(firsts) * .9)] * 1e3
        rtt_p50, rtt_p99 = statistics.median(rtts) * 1e3, rtts[int(len(rtts) * .99)] * 1e3
        print(f"{transport:<9} {first_p50:>24.2f} ms {first_p90:>5.2f} ms {rtt_p50:>10.3f} ms {rtt_p99:>5.3f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        proc, ready = start_node_process(Path(tmp))
        try:
            node = psutil.Process(proc.pid)
            time.sleep(2.0)
            node.cpu_percent(None)
            time.sleep(args.idle)
            cpu = node.cpu_percent(None)
            rss = node.memory_info().rss
            print(f"\nidle node: {rss / 2**20:.1f} MiB RSS, {cpu:.2f}% of one core over {args.idle:.0f} s")
        finally:
            stop(proc)

    print(f"\n{args.connections} concurrent connections to one node process:")
    for transport in ("quic", "tcp"):
        with tempfile.TemporaryDirectory() as tmp:
            limits = "[pubsub]\nmax_peers = 5000\n[resources]\nmax_connections = 5000"
            proc, ready = start_node_process(Path(tmp), limits)
            try:
                node = psutil.Process(proc.pid)
                base_rss, base_fds = node.memory_info().rss, node.num_fds()

                alive, errors, elapsed, rss, fds = asyncio.run(
                    measure_connections(node, transport, ready, args.connections))
                per_conn = (rss - base_rss) / max(alive, 1) / 1024
                print(f"  {transport:<5} {alive} open, {errors} errors, opened in {elapsed:.1f} s; node RSS "
                      f"{base_rss / 2**20:.0f} -> {rss / 2**20:.0f} MiB ({per_conn:.0f} KiB/connection), "
                      f"fds {base_fds} -> {fds}")
            finally:
                stop(proc)


if __name__ == "__main__":
    main()
