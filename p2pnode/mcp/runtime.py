"""The MCP service in the asyncio runtime: peers over ``/p2pnode/mcp/1.0.0`` streams, agents over stdio,
models on a worker thread. (Streamable HTTP is in ``p2pnode.mcp.http``, on the node's HTTP listener.)

``/p2pnode/mcp/1.0.0``: after multistream-select, each side writes JSON-RPC messages, one per
unsigned-varint-prefixed frame. A caller opens a stream per request, writes the request and closes its
side; the server answers with any notifications and then the response, and closes. A stream may carry
several requests: the server answers each and closes once the caller has closed and all are answered.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from p2pnode.framing import encode_uvarint
from p2pnode.kad.messages import PeerInfo
from p2pnode.mcp import jsonrpc
from p2pnode.mcp.inference import InferenceRequest, InferenceResult, MagikaBackend, SyncBackend
from p2pnode.mcp.routing import PROTOCOL
from p2pnode.mcp.server import Channel
from p2pnode.mcp.service import McpRuntime, McpService
from p2pnode.nodeconfig import NodeConfig
from p2pnode.runtime.swarm import PEER_ERRORS
from p2pnode.transports import multistream
from p2pnode.transports.base import Stream
from p2pnode.transports.multistream import read_frame
from p2pnode.wire import MCP

if TYPE_CHECKING:
    from p2pnode.runtime.node import Node

log = logging.getLogger("p2pnode.mcp")
MAX_FRAME = MCP.max_frame


def frame(message: dict[str, Any]) -> bytes:
    data = jsonrpc.encode(message)
    return encode_uvarint(len(data)) + data


def make_backend(config: NodeConfig) -> SyncBackend:
    inference = config.mcp.inference
    if inference.backend == "openai":
        from p2pnode.mcp.openai_http import OpenAIBackend

        return OpenAIBackend(inference.endpoint, inference.model or "default", inference.api_key_env,
                             inference.timeout)
    return MagikaBackend()


class ThreadedBackend:
    """Runs a blocking backend's ``run`` on worker threads; the callbacks come back on the event loop."""

    def __init__(self, backend: SyncBackend, workers: int = 2):
        self.backend = backend
        self.name = backend.name
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference")

    def models(self) -> list[str]:
        return self.backend.models()

    def prepare(self) -> None:
        """Load the backend's model on a worker thread now, not in the first call's time."""
        self._executor.submit(self.backend.prepare)

    def infer(self, request: InferenceRequest, on_done: Callable[[InferenceResult], None],
              on_error: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        results: list[Any] = []

        def work() -> None:
            self.backend.infer(request, lambda r: results.append((on_done, r)), lambda e: results.append((on_error, e)))

        def finished(future: asyncio.Future) -> None:
            if future.exception() is not None:
                on_error(f"{type(future.exception()).__name__}: {future.exception()}")
            else:
                callback, value = results[0]
                callback(value)

        loop.run_in_executor(self._executor, work).add_done_callback(finished)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class StreamLink:
    """``PeerLink`` over ``/p2pnode/mcp/1.0.0`` streams of the node's swarm."""

    def __init__(self, node: Node):
        self.node = node

    def call(self, peer: PeerInfo, message: dict[str, Any], timeout: float,
             on_reply: Callable[[dict[str, Any]], None], on_failure: Callable[[str], None]) -> None:
        self.node.swarm.spawn(self._call(peer, message, timeout, on_reply, on_failure))

    async def _call(self, peer: PeerInfo, message: dict[str, Any], timeout: float,
                    on_reply: Callable[[dict[str, Any]], None], on_failure: Callable[[str], None]) -> None:
        try:
            async with asyncio.timeout(timeout):
                stream = await self.node.swarm.new_stream(peer.peer_id, [PROTOCOL], peer.addrs, lazy=True)
                try:
                    await stream.write(frame(message))
                    await stream.close()
                    await multistream.confirm(stream, PROTOCOL)
                    while True:
                        reply = jsonrpc.parse(await read_frame(stream, MAX_FRAME))
                        if isinstance(reply, jsonrpc.Response) and reply.id == message["id"]:
                            break
                except BaseException:
                    stream.reset()
                    raise
        except TimeoutError:
            on_failure("timeout")
            return
        except (*PEER_ERRORS, jsonrpc.RpcError) as exc:
            on_failure(str(exc) or type(exc).__name__)
            return
        on_reply({"jsonrpc": "2.0", "id": reply.id, **({"result": reply.result} if reply.error is None
                                                        else {"error": reply.error})})


async def serve_stream(service: McpService, stream: Stream) -> None:
    """Answer the MCP requests a peer sends on ``stream``; close once it closed its side and all are answered."""
    peer = stream.connection.remote_peer
    out: asyncio.Queue[bytes | None] = asyncio.Queue()
    eof = False

    def pending() -> bool:
        return bool(channel.in_flight or (channel.session is not None and channel.session.in_flight))

    def send(message: dict[str, Any]) -> None:
        out.put_nowait(frame(message))
        if eof and not pending():
            out.put_nowait(None)

    channel = Channel(send, caller=peer.to_base58())

    async def writer() -> None:
        while (data := await out.get()) is not None:
            await stream.write(data)
        await stream.close()

    task = asyncio.ensure_future(writer())
    try:
        while True:
            try:
                data = await read_frame(stream, MAX_FRAME)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                break
            service.server.receive_bytes(data, channel)
        eof = True
        if not pending():
            out.put_nowait(None)
        await task
    except PEER_ERRORS as exc:
        log.debug("MCP stream from %s ended: %s", peer.short(), exc or type(exc).__name__)
        for exchange in list(channel.in_flight.values()):
            exchange.cancel("the peer's stream ended")
        task.cancel()
        stream.reset()


def attach(node: Node, config: NodeConfig) -> McpService:
    """Give a started ``Node`` its MCP service: the peer protocol, DHT registration, a threaded backend."""
    started = time.time()
    backend = ThreadedBackend(make_backend(config))
    if "run_inference" in config.mcp.available_tools:
        backend.prepare()  # a provider is ready when it says so in the DHT, not after its first caller's timeout

    def facts() -> dict[str, Any]:
        return {"listen_addrs": [str(a) for a in node.listen_addrs], "uptime_s": round(time.time() - started, 3),
                "peers_connected": len(node.connected_peers())}

    def connections() -> list[dict[str, Any]]:
        out = []
        for peer, conns in node.swarm.connections.items():
            for conn in conns:
                if not conn.closed:
                    out.append({"peer_id": peer.to_base58(), "direction": "outbound" if conn.outbound else "inbound",
                                "transport": conn.transport, "remote_addr": str(conn.remote_addr)})
        return out

    def on_config(new: NodeConfig, keys: list[str]) -> None:
        if "log.level" in keys:
            logging.getLogger().setLevel(new.log.level.upper())
        for module, level in new.log.modules.items():
            logging.getLogger(module).setLevel(level.upper())

    runtime = McpRuntime(StreamLink(node), backend, node.info_of, facts, connections, on_config)
    service = McpService(node.host, config, runtime)
    node.swarm.set_handler(PROTOCOL, lambda stream: serve_stream(service, stream))
    return service


async def serve_stdio(service: McpService, stop: asyncio.Event) -> None:
    """MCP over this process's stdin/stdout: one JSON-RPC message per line; EOF on stdin stops."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_FRAME + 1)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer

    def send(message: dict[str, Any]) -> None:
        out.write(jsonrpc.encode(message) + b"\n")
        out.flush()

    channel = Channel(send)
    while not stop.is_set():
        try:
            line = await reader.readline()
        except ValueError:  # a line over the limit
            send(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, f"message over {MAX_FRAME} bytes"))
            continue
        if not line:
            break
        if line.strip():
            service.server.receive_bytes(line, channel)
    stop.set()
