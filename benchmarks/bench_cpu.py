"""What a real node's work costs in CPU, per transport: the budget that bounds how many real nodes one
machine can emulate (issue 5).

- a new connection: dial, handshake, Identify both ways and one ping;
- a DHT request on an open connection: a FIND_NODE whose answer carries 20 peers.

Both ends run in this process, so each figure is the CPU of both sides together. Multiply by the
connections and requests a formation needs (about n²/2 connections for n nodes in a network smaller
than a few k, and some tens of requests per lookup) to see when two cores run out.

Usage: .venv/bin/python benchmarks/bench_cpu.py [--connections 60] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from multiaddr import Multiaddr

from p2pnode.identity import Keypair
from p2pnode.kad.messages import FindNode, PeerInfo
from p2pnode.runtime.node import Node, completion

LISTEN = {"quic": "/ip6/::1/udp/0/quic-v1", "tcp": "/ip6/::1/tcp/0"}


def node(transport: str) -> Node:
    return Node(listen=[LISTEN[transport]], transports=[transport], pubsub=False)


async def per_connection(transport: str, count: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per new connection, dialled one after another by fresh nodes."""
    server = node(transport)
    await server.start()
    clients = [node(transport) for _ in range(count)]  # their start-up (a certificate each) is not counted
    await asyncio.gather(*(c.start() for c in clients))
    addr = server.listen_addrs[0]
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for client in clients:
            await client.ping(server.peer_id, addrs=[addr])
        while len(server.identified) < count:  # the server's Identify of each client
            await asyncio.sleep(0.01)
        return (time.process_time() - cpu) / count * 1e3, (time.perf_counter() - wall) / count * 1e3
    finally:
        await asyncio.gather(*(n.stop() for n in (server, *clients)))


async def per_request(transport: str, count: int, in_flight: int = 10) -> tuple[float, float]:
    """(CPU ms per request, requests per second) for FIND_NODE between two connected nodes."""
    server, client = node(transport), node(transport)
    await server.start()
    await client.start()
    for i in range(40):  # answers carry 20 peers, each with an address, as in a real network
        fake = PeerInfo(Keypair.generate().peer_id, (Multiaddr(f"/ip6/fd00::{i + 1}/udp/4001/quic-v1").to_bytes(),))
        server.host.dht.table.update(fake, 0)
    client.swarm.learn(server.peer_id, server.listen_addrs)
    target = server.host.dht.info
    limit = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with limit:
            answer = await completion(lambda done: client.host.runtime.request(
                target, FindNode(os.urandom(32)), 10.0, done, lambda why: done(RuntimeError(why))))
            if isinstance(answer, RuntimeError):
                raise answer
            assert len(answer.closer_peers) == 20

    try:
        await asyncio.gather(*(one() for _ in range(50)))  # the connection and warm caches
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return (time.process_time() - cpu) / count * 1e3, count / (time.perf_counter() - wall)
    finally:
        await client.stop()
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=60, help="below the pub-sub peer limit (64)")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'transport':>9} {'CPU/connection':>15} {'wall/connection':>16} {'CPU/request':>12} {'requests/s':>11}")
    for transport in ("quic", "tcp"):
        conn_cpu, conn_wall = asyncio.run(per_connection(transport, args.connections))
        req_cpu, rate = asyncio.run(per_request(transport, args.requests))
        print(f"{transport:>9} {conn_cpu:>12.2f} ms {conn_wall:>13.2f} ms {req_cpu:>9.3f} ms {rate:>11.0f}")


if __name__ == "__main__":
    main()
