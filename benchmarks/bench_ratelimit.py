"""A real node flooded by one peer at 100x its per-peer rate limit keeps answering other peers within their
limits (issue 19's target: their p99 latency at most 2x the unflooded value).

Three kinds of process on loopback: the server node (``[security] rate_limit_per_peer`` = --limit), one flooder
sending FIND_NODE requests open-loop at --flood x the limit (each on a stream of its own, as libp2p sends them),
and the honest clients (--clients nodes in one process, each at half the limit), which measure each request's
latency. The honest clients run alone first (unflooded), then with the flood, for --seconds each.

Usage: nice -n 10 .venv/bin/python benchmarks/bench_ratelimit.py [--limit 4] [--flood 100] [--seconds 20]
       [--clients 3] [--transport tcp]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import time

from p2pnode.identity import PeerId
from p2pnode.kad.messages import FindNode, PeerInfo
from p2pnode.runtime.node import Node

LISTEN = {"quic": "/ip6/::1/udp/0/quic-v1", "tcp": "/ip6/::1/tcp/0"}


def _server(limit: float, total: float, transport: str, pipe) -> None:
    async def main() -> None:
        node = Node(listen=[LISTEN[transport]], transports=[transport], pubsub=False, rate_limits=(limit, total))
        await node.start()
        pipe.send((node.peer_id.raw, [a.to_bytes() for a in node.listen_addrs]))
        while await asyncio.get_running_loop().run_in_executor(None, pipe.recv) == "cpu":  # until told to stop
            pipe.send(time.process_time())
        limits = node.host.limits
        pipe.send({"refused": dict(limits.refused), "cpu": time.process_time()})
        await node.stop()

    asyncio.run(main())


def _target(server: tuple[bytes, list[bytes]]) -> PeerInfo:
    return PeerInfo(PeerId(server[0]), tuple(server[1]))


async def _client(transport: str) -> Node:
    node = Node(listen=[LISTEN[transport]], transports=[transport], pubsub=False)
    await node.start()
    return node


def _flooder(server, transport: str, rate: float, nice: int, pipe) -> None:
    os.nice(nice)

    async def main() -> None:
        node = await _client(transport)
        target = _target(server)
        counts = {"answered": 0, "failed": 0, "sent": 0}

        def answered(_):
            counts["answered"] += 1

        def failed(_):
            counts["failed"] += 1

        pipe.send("ready")
        loop = asyncio.get_running_loop()
        stop = loop.run_in_executor(None, pipe.recv)
        start = loop.time()
        while not stop.done():
            due = int((loop.time() - start) * rate) - counts["sent"]
            for _ in range(max(0, due)):
                node.host.runtime.request(target, FindNode(os.urandom(32)), 5.0, answered, failed)
                counts["sent"] += 1
            await asyncio.sleep(0.005)
        counts["rate"] = counts["sent"] / (loop.time() - start)
        pipe.send(counts)
        await node.stop()

    asyncio.run(main())


async def _honest(clients: list[Node], target: PeerInfo, rate: float, seconds: float) -> tuple[list[float], int]:
    """Each client sends at ``rate`` a second (evenly spaced, one after another); latencies of answers."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    failures = 0

    async def one(node: Node, offset: float) -> None:
        nonlocal failures
        await asyncio.sleep(offset)
        end = loop.time() + seconds
        while loop.time() < end:
            sent = loop.time()
            done: asyncio.Future = loop.create_future()
            node.host.runtime.request(target, FindNode(os.urandom(32)), 5.0,
                                      lambda r, done=done: done.done() or done.set_result(True),
                                      lambda why, done=done: done.done() or done.set_result(False))
            if await done:
                latencies.append(loop.time() - sent)
            else:
                failures += 1
            await asyncio.sleep(max(0.0, sent + 1 / rate - loop.time()))

    await asyncio.gather(*(one(c, i / rate / len(clients)) for i, c in enumerate(clients)))
    return latencies, failures


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=float, default=4.0, help="rate_limit_per_peer (requests/s)")
    parser.add_argument("--total", type=float, default=10000.0, help="total_rate_limit (requests/s)")
    parser.add_argument("--flood", type=float, default=100.0, help="the flooder's rate, in multiples of --limit")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="of each phase")
    parser.add_argument("--transport", choices=sorted(LISTEN), default="tcp")
    parser.add_argument("--flooder-nice", type=int, default=0,
                        help="niceness added to the flooder's process: on a real network its CPU is the attacker's "
                             "machine, here it shares the cores with the node under test")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    server_pipe, child = ctx.Pipe()
    server_proc = ctx.Process(target=_server, args=(args.limit, args.total, args.transport, child))
    server_proc.start()
    server = server_pipe.recv()
    target = _target(server)

    async def run() -> None:
        clients = [await _client(args.transport) for _ in range(args.clients)]
        rate = args.limit / 2
        await _honest(clients, target, rate, 2.0)  # connections and caches
        server_pipe.send("cpu")
        cpu0 = server_pipe.recv()
        calm, calm_failed = await _honest(clients, target, rate, args.seconds)
        server_pipe.send("cpu")
        cpu1 = server_pipe.recv()
        flood_pipe, child2 = ctx.Pipe()
        flooder = ctx.Process(target=_flooder, args=(server, args.transport, args.limit * args.flood,
                                                          args.flooder_nice, child2))
        flooder.start()
        await asyncio.get_running_loop().run_in_executor(None, flood_pipe.recv)
        await asyncio.sleep(2.0)  # the flood under way
        server_pipe.send("cpu")
        cpu2 = server_pipe.recv()
        flooded, flooded_failed = await _honest(clients, target, rate, args.seconds)
        server_pipe.send("cpu")
        cpu3 = server_pipe.recv()
        flood_pipe.send("stop")
        counts = await asyncio.get_running_loop().run_in_executor(None, flood_pipe.recv)
        flooder.join()
        for c in clients:
            await c.stop()
        server_pipe.send("stop")
        stats = server_pipe.recv()
        server_proc.join()
        print(f"server: rate_limit_per_peer {args.limit:g}/s, total {args.total:g}/s, {args.transport}; "
              f"{args.clients} honest clients at {rate:g}/s each; phases of {args.seconds:g} s")
        print(f"flooder (nice +{args.flooder_nice}): {counts['sent']} requests at {counts['rate']:.0f}/s "
              f"({counts['rate'] / args.limit:.0f}x the limit), {counts['answered']} answered, "
              f"{counts['failed']} refused or failed")
        print(f"server refusals: {stats['refused']}")
        refused = sum(stats["refused"].values())
        extra = (cpu3 - cpu2) - (cpu1 - cpu0)
        print(f"server CPU per phase: unflooded {(cpu1 - cpu0) / args.seconds * 100:.1f} % of a core, flooded "
              f"{(cpu3 - cpu2) / args.seconds * 100:.1f} %; about {extra / max(refused, 1) * 1e6:.0f} us per "
              "refused request")
        for name, lat, failed in (("unflooded", calm, calm_failed), ("flooded", flooded, flooded_failed)):
            print(f"honest {name:>9}: {len(lat)} answered, {failed} failed, p50 {_p(lat, 50) * 1e3:.2f} ms, "
                  f"p99 {_p(lat, 99) * 1e3:.2f} ms")
        print(f"p99 flooded / unflooded: {_p(flooded, 99) / _p(calm, 99):.2f} (target <= 2)")

    asyncio.run(run())


if __name__ == "__main__":
    main()
