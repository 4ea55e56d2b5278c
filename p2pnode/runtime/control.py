"""``p2pnode run --control stdio``: a node driven by another program over its stdin and stdout.

The emulator (and any script) sends one JSON object per line, ``{"id": 7, "cmd": "find_node", ...}``, and gets
one line back per command, ``{"id": 7, "ok": true, ...}`` or ``{"id": 7, "ok": false, "error": "..."}``. Commands
run concurrently; answers carry the node's own measurements (latency from its clock, hops, requests), so the
driver never times a round trip through the pipe. Pub-sub deliveries arrive as events,
``{"event": "message", "topic", "id_hex", "from", "size", "time"}``, and so does the end of the join,
``{"event": "bootstrapped", "time"}``.

Commands: ``join`` (after ``--defer-join``); ``status`` (with mesh sizes and message counts when pub-sub is
on); ``find_node {key_hex}``; ``find_peer {peer}``; ``put {key_hex, value_hex, ttl?}``; ``get {key_hex}``;
``provide {key_hex}``; ``find_providers {key_hex, count?}``; ``ping {peer, count?, addrs?}``;
``subscribe {topic}``; ``publish {topic, data_hex | size}``; ``mcp {message}`` (one JSON-RPC message to the
node's MCP server, as a local agent's over stdio: answers ``response`` and ``latency``, from the server's
receipt to its response); ``quit``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from p2pnode.kad.events import GetFinished, LookupFinished, PeerFound, ProvidersFound, PutFinished
from p2pnode.runtime.node import Node, completion


class Controller:
    def __init__(self, node: Node, write: Callable[[str], None], stop: asyncio.Event, mcp: Any = None):
        self.node = node
        self.write = write
        self.stop = stop
        self.mcp = mcp  # the node's McpService, when [mcp] is on
        self._tasks: set[asyncio.Task] = set()

    def emit(self, obj: dict[str, Any]) -> None:
        self.write(json.dumps(obj, separators=(",", ":")))

    def handle_line(self, line: str) -> None:
        try:
            request = json.loads(line)
            rid, cmd = request.get("id"), request["cmd"]
        except (ValueError, KeyError, AttributeError, TypeError):
            self.emit({"id": None, "ok": False, "error": f"not a command: {line[:80]!r}"})
            return
        task = asyncio.ensure_future(self._run(rid, cmd, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, rid: Any, cmd: str, request: dict) -> None:
        handler = getattr(self, f"cmd_{cmd}", None)
        if handler is None:
            self.emit({"id": rid, "ok": False, "error": f"unknown command {cmd!r}"})
            return
        try:
            result = await handler(**{k: v for k, v in request.items() if k not in ("id", "cmd")})
        except Exception as exc:  # a driver's mistake or a failed operation: answered, never fatal
            self.emit({"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
            return
        self.emit({"id": rid, "ok": True, **result})

    # ---- commands --------------------------------------------------------------------------------

    async def cmd_status(self) -> dict:
        host = self.node.host
        status = {"peer_id": str(self.node.peer_id), "joined": host.running, "bootstrapped": host.bootstrapped,
                  "table": [str(p.peer_id) for p in host.dht.table.peers.values()],
                  "connections": len(self.node.connected_peers()), "records": len(host.dht.records)}
        router = host.pubsub
        if router is not None:
            status["pubsub"] = {"mesh": {t: len(router.mesh.get(t, ())) for t in router.subscriptions},
                                "received": router.received, "first_received": router.first_received}
        return status

    async def _lookup(self, key: bytes) -> LookupFinished:
        return await completion(lambda done: self.node.host.dht.find_node(key, done))

    async def cmd_find_node(self, key_hex: str) -> dict:
        result = await self._lookup(bytes.fromhex(key_hex))
        return {"peers": [str(p.peer_id) for p in result.peers], "hops": result.hops,
                "requests": result.requests, "latency": result.finished - result.started}

    async def cmd_find_peer(self, peer: str) -> dict:
        from p2pnode.identity import PeerId

        kad = self.node.host.dht
        result: PeerFound = await completion(lambda done: kad.find_peer(PeerId.from_base58(peer), done))
        return {"found": result.peer is not None, "hops": result.hops,
                "requests": result.requests, "latency": result.finished - result.started}

    async def cmd_provide(self, key_hex: str) -> dict:
        kad = self.node.host.dht
        result: PutFinished = await completion(lambda done: kad.provide(bytes.fromhex(key_hex), done))
        return {"peers": result.replicas, "requests": result.requests, "latency": result.finished - result.started}

    async def cmd_find_providers(self, key_hex: str, count: int = 1) -> dict:
        kad = self.node.host.dht
        result: ProvidersFound = await completion(
            lambda done: kad.find_providers(bytes.fromhex(key_hex), done, count))
        return {"providers": [str(p.peer_id) for p in result.providers], "hops": result.hops,
                "requests": result.requests, "latency": result.finished - result.started}

    async def cmd_put(self, key_hex: str, value_hex: str, ttl: float | None = None) -> dict:
        kad = self.node.host.dht
        result: PutFinished = await completion(
            lambda done: kad.put_value(bytes.fromhex(key_hex), bytes.fromhex(value_hex), done, ttl))
        return {"replicas": result.replicas, "version": result.version, "requests": result.requests,
                "latency": result.finished - result.started}

    async def cmd_get(self, key_hex: str) -> dict:
        kad = self.node.host.dht
        result: GetFinished = await completion(lambda done: kad.get_value(bytes.fromhex(key_hex), done))
        record = result.record
        return {"found": record is not None, "version": record.version if record else None,
                "value_hex": record.value.hex() if record else None, "hops": result.hops,
                "requests": result.requests, "latency": result.finished - result.started}

    async def cmd_ping(self, peer: str, count: int = 1, addrs: list[str] = ()) -> dict:
        return {"rtts": await self.node.ping(peer, count=count, addrs=addrs)}

    async def cmd_subscribe(self, topic: str) -> dict:
        def delivered(message) -> None:
            self.emit({"event": "message", "topic": message.topic, "id_hex": (message.source + message.seqno).hex(),
                       "from": message.source.hex(), "size": len(message.data), "time": time.time()})

        self.node.pubsub.subscribe(topic, delivered)
        return {}

    async def cmd_publish(self, topic: str, data_hex: str | None = None, size: int | None = None) -> dict:
        """Publish ``data_hex``, or ``size`` random bytes (a large message need not cross the pipe)."""
        if (data_hex is None) == (size is None):
            raise ValueError("give data_hex or size")
        data = bytes.fromhex(data_hex) if data_hex is not None else os.urandom(size)
        return {"id_hex": self.node.pubsub.publish(topic, data).hex(), "time": time.time()}

    async def cmd_mcp(self, message: dict) -> dict:
        if self.mcp is None:
            raise ValueError("MCP is off on this node ([mcp] enabled = false)")
        from p2pnode.mcp.server import Channel

        answer: asyncio.Future = asyncio.get_running_loop().create_future()

        def send(reply: dict) -> None:
            if "id" in reply and not answer.done():  # progress notifications are not the answer
                answer.set_result(reply)

        clock = self.node.host.runtime
        started = clock.now()
        self.mcp.server.receive_bytes(json.dumps(message).encode(), Channel(send))
        response = await answer
        return {"response": response, "latency": clock.now() - started}

    async def cmd_join(self) -> dict:
        """Join the network; the event ``{"event": "bootstrapped", "time"}`` follows when the join lookup is done
        (a driver then counts the node as a member, as the simulator does)."""
        self.node.join()
        task = asyncio.ensure_future(self._bootstrapped())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {}

    async def _bootstrapped(self) -> None:
        await self.node.wait_bootstrapped(timeout=None)
        self.emit({"event": "bootstrapped", "time": time.time()})

    async def cmd_quit(self) -> dict:
        self.stop.set()
        return {}


async def serve_stdio(node: Node, stop: asyncio.Event, mcp: Any = None) -> None:
    """Read commands from stdin until EOF (which stops the node) or ``stop``; ``mcp``: the node's McpService."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def write(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    controller = Controller(node, write, stop, mcp)
    while not stop.is_set():
        line = await reader.readline()
        if not line:
            stop.set()
            return
        if line.strip():
            controller.handle_line(line.decode(errors="replace"))
