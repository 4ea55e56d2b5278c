"""Hosts with MCP services on the in-memory network (explicit time), and the link that carries JSON-RPC
requests between their MCP servers as ``/p2pnode/mcp/1.0.0`` would."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from p2pnode.config import KadConfig
from p2pnode.host import Host
from p2pnode.identity import Keypair, PeerId
from p2pnode.kad.messages import PeerInfo
from p2pnode.mcp.inference import MagikaBackend
from p2pnode.mcp.server import Channel
from p2pnode.mcp.service import McpRuntime, McpService
from p2pnode.nodeconfig import NodeConfig, validate_config
from tests.memnet import MemoryNet, _Endpoint

BACKEND = MagikaBackend()  # one model for all nodes: loading it is the slow part


class MemoryLink:
    """``PeerLink`` over the memory net: the request arrives after the latency, the response comes back
    after it too; a crashed node never answers (the caller's timeout fires)."""

    def __init__(self, mesh: McpMesh, src: PeerId):
        self.mesh = mesh
        self.src = src

    def call(self, peer: PeerInfo, message: dict, timeout: float, on_reply: Callable[[dict], None],
             on_failure: Callable[[str], None]) -> None:
        net = self.mesh.net
        done = [False]

        def finish(callback: Callable[[Any], None], value: Any) -> None:
            if not done[0]:
                done[0] = True
                callback(value)

        timer = net._schedule(timeout, lambda: finish(on_failure, "timeout"))
        dst = self.mesh.services.get(peer.peer_id)
        if dst is None or (self.src, peer.peer_id) in self.mesh.cut:
            net._schedule(0.001, lambda: (timer.cancel(), finish(on_failure, "connection refused")))
            return

        def answer(response: dict) -> None:
            if "id" in response and ("result" in response or "error" in response):
                net._schedule(net._delay(net.nodes[peer.peer_id], net.nodes[self.src]),
                              lambda: (timer.cancel(), finish(on_reply, response)))

        def arrive() -> None:
            if dst.host.running:
                dst.server.receive(_parse(message), Channel(answer, caller=self.src.to_base58()))

        net._schedule(net._delay(net.nodes[self.src], net.nodes[peer.peer_id]), arrive)


def _parse(message: dict):
    from p2pnode.mcp import jsonrpc

    return jsonrpc.parse_object(message)


class McpMesh:
    def __init__(self, seed: int = 0, latency: float = 0.01):
        self.net = MemoryNet(latency=latency, seed=seed)
        self.services: dict[PeerId, McpService] = {}
        self.cut: set[tuple[PeerId, PeerId]] = set()  # (from, to): no direct connection possible

    def add(self, config: NodeConfig | None = None, bootstrap: Host | None = None) -> McpService:
        net = self.net
        keypair = Keypair.from_seed(net.rng.randbytes(32))
        endpoint = _Endpoint(net, keypair.peer_id, random.Random(net.rng.getrandbits(64)))
        host = Host(keypair, endpoint, KadConfig(), peers=1, max_peers=8)
        net.nodes[keypair.peer_id] = host
        config = config or validate_config({"mcp": {"service_ttl": 60}})
        runtime = McpRuntime(MemoryLink(self, keypair.peer_id), BACKEND, lambda p: PeerInfo(p))
        service = McpService(host, config, runtime)
        self.services[keypair.peer_id] = service
        host.start([bootstrap.info] if bootstrap is not None else [])
        return service

    def populate(self, count: int) -> list[McpService]:
        first = self.add()
        out = [first]
        for _ in range(count - 1):
            out.append(self.add(bootstrap=first.host))
            self.net.run()
        for service in out:
            service.start()
        self.net.run()
        return out

    def connect(self, a: McpService, b: McpService) -> None:
        a.host.connections[b.host.info] = True
        b.host.connections[a.host.info] = False

    def crash(self, service: McpService) -> None:
        service.host.stop()
        service.stop()

    def call(self, service: McpService, tool: str, arguments: dict, caller: str | None = None,
             run_for: float | None = None) -> dict:
        """A local client's tools/call on ``service``; runs the network until it is answered."""
        from p2pnode.mcp import jsonrpc
        from p2pnode.mcp.server import META_CAPABILITIES, META_VERSION, MODERN_VERSIONS

        out: list[dict] = []
        message = jsonrpc.request(1, "tools/call", {"name": tool, "arguments": arguments,
                                  "_meta": {META_VERSION: MODERN_VERSIONS[0], META_CAPABILITIES: {}}})
        service.server.receive(jsonrpc.parse_object(message), Channel(out.append, caller=caller))
        deadline = self.net.time + (run_for or service.server.request_timeout + 1)
        while not any("id" in m for m in out) and self.net._heap and self.net._heap[0][0] <= deadline:
            self.net._next()
        final = [m for m in out if "id" in m]
        assert final, f"{tool} never answered"
        return final[-1]
