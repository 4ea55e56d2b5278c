"""What a node's MCP server costs and how fast it answers, on real ``p2pnode run`` processes on loopback.

- requests per second one node serves (local ``get_status`` over Streamable HTTP, keep-alive connections),
  and the node's CPU per request (from its process's CPU time);
- the sans-IO server alone (no HTTP): CPU per ``get_status`` request handled in this process;
- 100 concurrent requests (``get_status``, and ``run_inference`` on the embedded model): all answered?
  wall time, p50/p99 latency;
- end to end: client -> node A (HTTP) -> node B's ``run_inference`` over ``/p2pnode/mcp/1.0.0`` -> back,
  ``forward_to_peer`` one after another: p50/p99 latency (the spec: an MCP request < 1 s).

Figures vary with the machine's load: each is the median of ``--rounds`` rounds, with the spread.

Usage: .venv/bin/python benchmarks/bench_mcp.py [--seconds 3] [--connections 4] [--forwards 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.mcp.procs import start_network, wait_registered  # noqa: E402

META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
CODE = ("import os\nimport sys\n\n\ndef main(argv):\n    for name in os.listdir(argv[1]):\n        print(name)\n"
        "    return 0\n\n\nif __name__ == '__main__':\n    sys.exit(main(sys.argv))\n")


def request_bytes(host: str, port: int, tool: str, arguments: dict, id: int, keep_alive: bool = True) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments, "_meta": META}}).encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
            f"Mcp-Method: tools/call\r\nMcp-Name: {tool}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> dict:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length"))
    return json.loads(await reader.readexactly(length))


async def throughput(url: str, seconds: float, connections: int) -> int:
    parts = urlsplit(url)
    deadline = time.perf_counter() + seconds
    counts = [0] * connections

    async def worker(i: int) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        n = 0
        while time.perf_counter() < deadline:
            writer.write(request_bytes(parts.hostname, parts.port, "get_status", {}, n))
            answer = await read_response(reader)
            assert "result" in answer and not answer["result"]["isError"], answer
            n += 1
        counts[i] = n
        writer.close()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    return sum(counts)


async def one_call(url: str, tool: str, arguments: dict, id: int) -> tuple[float, dict]:
    parts = urlsplit(url)
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(request_bytes(parts.hostname, parts.port, tool, arguments, id, keep_alive=False))
    raw = await reader.read()
    writer.close()
    return time.perf_counter() - started, json.loads(raw.split(b"\r\n\r\n", 1)[1])


async def concurrent(url: str, tool: str, arguments: dict, count: int) -> tuple[float, list[float], int]:
    started = time.perf_counter()
    answers = await asyncio.gather(*(one_call(url, tool, arguments, i) for i in range(count)))
    errors = sum(1 for _, a in answers if "result" not in a or a["result"]["isError"])
    return time.perf_counter() - started, sorted(t for t, _ in answers), errors


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def sans_io_cpu(requests: int) -> float:
    """CPU microseconds per get_status handled by the sans-IO server alone (one process, no HTTP)."""
    from tests.mcp.net import McpMesh
    from tests.net import MemoryNet

    mesh = McpMesh(MemoryNet, seed=1)
    node = mesh.populate(2)[0]
    from p2pnode.mcp import jsonrpc
    from p2pnode.mcp.server import Channel

    out: list = []
    channel = Channel(out.append)
    data = [jsonrpc.encode(jsonrpc.request(i, "tools/call", {"name": "get_status", "arguments": {}, "_meta": META}))
            for i in range(requests)]
    cpu = time.process_time()
    for message in data:
        node.server.receive_bytes(message, channel)
    spent = time.process_time() - cpu
    assert len(out) == requests and all("result" in m for m in out)
    return spent / requests * 1e6


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} (range {min(values):.1f}-{max(values):.1f})"


async def main_async(args) -> None:
    with tempfile.TemporaryDirectory() as root:
        nodes = start_network(Path(root), 2)
        try:
            a, b = nodes
            wait_registered(a, 1)
            proc = psutil.Process(a.proc.pid)
            await one_call(a.url, "run_inference", {"input": CODE}, 0)  # load the model
            rates, cpus = [], []
            for _ in range(args.rounds):
                cpu = sum(proc.cpu_times()[:2])
                served = await throughput(a.url, args.seconds, args.connections)
                cpus.append((sum(proc.cpu_times()[:2]) - cpu) / served * 1e6)
                rates.append(served / args.seconds)
            print(f"local get_status over HTTP ({args.connections} keep-alive connections): "
                  f"{spread(rates)} requests/s; node CPU {spread(cpus)} us/request")
            sans = [sans_io_cpu(2000) for _ in range(args.rounds)]
            print(f"sans-IO server alone (get_status, no HTTP): {spread(sans)} us CPU/request")
            for tool, arguments in (("get_status", {}), ("run_inference", {"input": CODE})):
                walls, p50s, p99s, errors = [], [], [], 0
                for _ in range(args.rounds):
                    wall, latencies, failed = await concurrent(a.url, tool, arguments, 100)
                    walls.append(wall * 1e3)
                    p50s.append(percentile(latencies, 50) * 1e3)
                    p99s.append(percentile(latencies, 99) * 1e3)
                    errors += failed
                print(f"100 concurrent {tool}: {errors} errors in {args.rounds} rounds; all answered in "
                      f"{spread(walls)} ms; p50 {spread(p50s)} ms, p99 {spread(p99s)} ms")
            p50s, p99s = [], []
            for _ in range(args.rounds):
                latencies = []
                for i in range(args.forwards):
                    elapsed, answer = await one_call(a.url, "forward_to_peer", {"input": CODE, "peer": b.peer_id}, i)
                    assert not answer["result"]["isError"], answer
                    latencies.append(elapsed)
                p50s.append(percentile(latencies, 50) * 1e3)
                p99s.append(percentile(latencies, 99) * 1e3)
            print(f"end to end forward_to_peer (client -> A -> B's run_inference -> back), {args.forwards} in a row: "
                  f"p50 {spread(p50s)} ms, p99 {spread(p99s)} ms (target p99 < 1000 ms)")
        finally:
            for node in nodes:
                node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--forwards", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
