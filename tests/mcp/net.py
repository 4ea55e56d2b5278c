"""MCP services on the shared test network (``tests.net``: the in-memory heap or the simulator's
SimNetwork), and the link that carries JSON-RPC requests between their servers as ``/p2pnode/mcp/1.0.0``
would: on the simulator's network it is the simulator's own ``sim.mcp.SimMcpLink``; on the in-memory one,
``MemoryLink`` below (the request arrives after the one-way delay, the response comes back after it too,
a crashed node never answers and the caller's timeout fires)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p2pnode.kad.messages import PeerInfo
from p2pnode.mcp import jsonrpc
from p2pnode.mcp.inference import MagikaBackend
from p2pnode.mcp.server import META_CAPABILITIES, META_VERSION, MODERN_VERSIONS, Channel
from p2pnode.mcp.service import McpRuntime, McpService
from p2pnode.nodeconfig import NodeConfig, validate_config
from sim.mcp import SimMcpLink
from tests.net import SimNet, TestNet

BACKEND = MagikaBackend()  # one model for all nodes: loading it is the slow part


class MemoryLink:
    def __init__(self, mesh: McpMesh, src: int):
        self.mesh = mesh
        self.src = src

    def call(self, peer: PeerInfo, message: dict, timeout: float, on_reply: Callable[[dict], None],
             on_failure: Callable[[str], None]) -> None:
        net, src = self.mesh.net, self.src
        dst = net._index[peer.peer_id.raw]
        done = [False]

        def finish(callback: Callable[[Any], None], value: Any) -> None:
            if not done[0]:
                done[0] = True
                callback(value)

        net._timer(timeout, lambda: finish(on_failure, "timeout"))
        if net._dropped(src, dst, message):
            return

        def answer(response: dict) -> None:
            if "id" in response and ("result" in response or "error" in response) \
                    and not net._dropped(dst, src, response):
                net._timer(net.delays.one_way(dst, src), lambda: finish(on_reply, response))

        def arrive() -> None:
            service = self.mesh.services[dst]
            if service is not None and service.host.running:
                service.server.receive(jsonrpc.parse_object(message),
                                       Channel(answer, caller=net.infos[src].peer_id.to_base58()))

        net._timer(net.delays.one_way(src, dst), arrive)


class Unreachable:
    """A link through which some targets cannot be dialled (behind a NAT): the dial fails after a round trip."""

    def __init__(self, mesh: McpMesh, link: Any, src: int):
        self.mesh, self.link, self.src = mesh, link, src

    def call(self, peer: PeerInfo, message: dict, timeout: float, on_reply: Callable[[dict], None],
             on_failure: Callable[[str], None]) -> None:
        net = self.mesh.net
        dst = net._index[peer.peer_id.raw]
        if (self.src, dst) in self.mesh.unreachable:
            net._timer(2 * net.delays.one_way(self.src, dst), lambda: on_failure("dial failed: no route"))
        else:
            self.link.call(peer, message, timeout, on_reply, on_failure)


class McpMesh:
    def __init__(self, make_net: type[TestNet], seed: int = 0):
        self.net = make_net(seed=seed)
        self.services: list[McpService | None] = []
        self.unreachable: set[tuple[int, int]] = set()  # (from, to) endpoint indices

    def add(self, config: NodeConfig | None = None, bootstrap: McpService | None = None) -> McpService:
        net = self.net
        host = net.add_host(start=False, peers=1, max_peers=8)
        index = net._index[host.peer_id.raw]
        self.services.extend([None] * (index + 1 - len(self.services)))
        link = SimMcpLink(net.network, self.services, index) if isinstance(net, SimNet) else MemoryLink(self, index)
        link = Unreachable(self, link, index)
        config = config or validate_config({"mcp": {"service_ttl": 60}})
        service = McpService(host, config, McpRuntime(link, BACKEND, PeerInfo))
        self.services[index] = service
        net.start(host, [bootstrap.host.info] if bootstrap is not None else [])
        return service

    def populate(self, count: int) -> list[McpService]:
        first = self.add()
        out = [first]
        for _ in range(count - 1):
            out.append(self.add(bootstrap=first))
            self.net.run()
        for service in out:
            service.start()
        self.run_for(2.0)  # registrations wait for the bootstrap, then go out
        return out

    def run_for(self, seconds: float) -> None:
        self.net.run(self.net.time + seconds)
        self.net.run()

    def cut(self, a: McpService, b: McpService) -> None:
        """a cannot dial b directly."""
        self.unreachable.add((self.net._index[a.host.peer_id.raw], self.net._index[b.host.peer_id.raw]))

    def connect(self, a: McpService, b: McpService) -> None:
        self.net.connect(a.host, b.host)

    def crash(self, service: McpService) -> None:
        service.stop()
        self.net.crash(service.host)
        self.services[self.net._index[service.host.peer_id.raw]] = None

    def call(self, service: McpService, tool: str, arguments: dict, caller: str | None = None) -> dict:
        """A client's tools/call on ``service``; runs the network until it is answered."""
        out: list[dict] = []
        message = jsonrpc.request(1, "tools/call", {"name": tool, "arguments": arguments,
                                  "_meta": {META_VERSION: MODERN_VERSIONS[0], META_CAPABILITIES: {}}})
        service.server.receive(jsonrpc.parse_object(message), Channel(out.append, caller=caller))
        self.net.run_until(lambda: any("id" in m for m in out), service.server.request_timeout + 1,
                           f"{tool} never answered")
        return [m for m in out if "id" in m][-1]
