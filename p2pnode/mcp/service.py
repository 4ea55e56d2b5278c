"""One node's MCP service, sans-IO: the server with the nine tools and the node's resources, the service
registration in the DHT, and the router for calls to other peers. Both runtimes build this and feed it:
the asyncio runtime from HTTP, stdio and ``/p2pnode/mcp/1.0.0`` streams, the simulator from its modelled
network.

What only a runtime knows (listen addresses, transport details of connections, where a peer's addresses
are, how to carry a JSON-RPC request to a peer, where a model runs) comes in through ``McpRuntime``.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from p2pnode import __version__
from p2pnode.host import Host
from p2pnode.identity import PeerId
from p2pnode.kad.messages import PeerInfo
from p2pnode.mcp import jsonrpc
from p2pnode.mcp.inference import Backend
from p2pnode.mcp.node_tools import make_tools
from p2pnode.mcp.routing import MAX_HOPS, Outcome, PeerLink, Router, peer_from_json
from p2pnode.mcp.server import Exchange, McpServer, Resource
from p2pnode.mcp.services import ServiceDirectory
from p2pnode.nodeconfig import NodeConfig, validate_config
from p2pnode.security.access import AccessPolicy
from p2pnode.security.ratelimit import RateLimiter

INBOX_SIZE = 100
RUNTIME_KEYS = frozenset({"mcp.available_tools", "mcp.max_concurrent_requests", "mcp.request_timeout",
                          "mcp.page_size", "mcp.peer_tools", "security.rate_limit_per_peer",
                          "security.total_rate_limit", "log.level", "log.modules"})


@dataclass
class McpRuntime:
    """What the MCP service asks of the runtime it runs in."""

    link: PeerLink                                   # carries JSON-RPC requests to peers
    backend: Backend                                 # runs run_inference (inline, or on a worker thread)
    address_of: Callable[[PeerId], PeerInfo]         # a peer with the addresses known for it
    facts: Callable[[], dict[str, Any]] = dict       # listen_addrs, uptime_s, ...
    connections: Callable[[], list[dict[str, Any]]] | None = None  # transport details of connections
    on_config: Callable[[NodeConfig, list[str]], None] = lambda config, keys: None  # e.g. log levels


class McpService:
    RUNTIME_MCP_KEYS = {"available_tools", "max_concurrent_requests", "request_timeout", "page_size", "peer_tools"}

    def __init__(self, host: Host, config: NodeConfig, runtime: McpRuntime):
        self.host = host
        self.runtime = host.runtime
        self.config = config
        self.env = runtime
        self.backend = runtime.backend
        self.inbox: deque[dict[str, Any]] = deque(maxlen=INBOX_SIZE)
        mcp, security = config.mcp, config.security
        self.router = Router(self.runtime, runtime.link, host.info,
                             lambda: list(self.host.connections), client_name=f"p2pnode/{__version__}")
        self.directory = ServiceDirectory(host.dht, self.runtime, mcp.service_name, mcp.service_ttl, self.describe)
        self.server = McpServer(
            self.runtime, make_tools(self), self._resources(), name="p2pnode", version=__version__,
            instructions="A p2pnode peer: DHT lookups, peer discovery, message relay, local and remote "
                         "inference over a libp2p overlay, node status and configuration.",
            available_tools=mcp.available_tools, max_concurrent=mcp.max_concurrent_requests,
            request_timeout=mcp.request_timeout, page_size=mcp.page_size,
            access=host.access if host.access is not None else AccessPolicy(mcp.peer_tools),
            limiter=RateLimiter(security.rate_limit_per_peer, security.total_rate_limit),
            extra_methods={"p2pnode/forward": self._forward, "p2pnode/deliver": self._deliver})

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.config.mcp.advertise:
            self.directory.start()

    def stop(self) -> None:
        self.directory.stop()

    # ---- facts -----------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What this node's service descriptor says (besides service, peer ID and TTL)."""
        tools = sorted(self.server.available)
        models = self.backend.models() if "run_inference" in self.server.available else []
        facts = self.env.facts()
        return {"tools": tools, "capabilities": tools + [f"model:{m}" for m in models], "models": models,
                "backend": self.backend.name, "protocol": "/p2pnode/mcp/1.0.0",
                "addrs": facts.get("listen_addrs", [])[:8]}

    def peer_info(self, peer: PeerId) -> PeerInfo:
        return self.env.address_of(peer)

    def attempt_timeout(self) -> float:
        """How long one attempt at a remote call may take: a third of the request timeout, at most 10 s."""
        return min(10.0, self.server.request_timeout / 3)

    def status(self) -> dict[str, Any]:
        host, server = self.host, self.server
        facts = self.env.facts()
        return {
            "peer_id": host.peer_id.to_base58(), "version": __version__, "running": host.running,
            "bootstrapped": host.bootstrapped, "uptime_s": facts.get("uptime_s", 0.0),
            "peers_connected": facts.get("peers_connected", len(host.connections)),
            "routing_table_peers": len(host.dht.table), "dht_records": len(host.dht.records),
            "listen_addrs": facts.get("listen_addrs", []),
            "mcp": {"service": self.directory.service, "tools": sorted(server.available),
                    "models": self.backend.models(), "backend": self.backend.name,
                    "requests_total": server.metrics.total(), "in_flight": server.running + len(server.waiting),
                    "registrations": self.directory.registrations, "failovers": self.router.failovers,
                    "hedges": self.router.hedges,
                    "access_denials": sum(server.access.denials.values())},
        }

    def connections(self) -> list[dict[str, Any]]:
        if self.env.connections is not None:
            return self.env.connections()
        return [{"peer_id": p.peer_id.to_base58(), "direction": "outbound" if outbound else "inbound"}
                for p, outbound in self.host.connections.items()]

    def routing_table(self) -> dict[str, Any]:
        table = self.host.dht.table
        buckets: dict[int, list[str]] = {}
        for kad_id, peer in table.peers.items():
            buckets.setdefault(table.bucket_index(kad_id), []).append(peer.peer_id.to_base58())
        return {"peer_id": self.host.peer_id.to_base58(), "size": len(table),
                "buckets": [{"index": i, "peers": sorted(p)} for i, p in sorted(buckets.items())]}

    def _resources(self) -> list[Resource]:
        def dump(data: Callable[[], Any]) -> Callable[[], str]:
            return lambda: json.dumps(data(), indent=1, sort_keys=True)

        return [
            Resource("p2pnode://node/status", "status", "Node status (as get_status returns it)",
                     dump(self.status)),
            Resource("p2pnode://node/routing-table", "routing-table", "The Kademlia routing table by distance",
                     dump(self.routing_table)),
            Resource("p2pnode://node/config", "config", "The node's current configuration (TOML sections)",
                     dump(lambda: self.config.model_dump(mode="json")), ttl_ms=10_000),
            Resource("p2pnode://node/messages", "messages", f"The last {INBOX_SIZE} messages relayed to this node",
                     dump(lambda: list(self.inbox))),
        ]

    # ---- configure -------------------------------------------------------------------------------

    def configure(self, changes: dict[str, Any], dry_run: bool = False) -> tuple[list[str], list[str]]:
        """Check ``changes`` (TOML sections) by the file's rules; apply the keys that can change while the
        node runs. Returns (applied, needing a restart); raises ``NodeConfigError``."""
        current = self.config.model_dump(mode="json")
        merged = {section: dict(values) for section, values in current.items()}
        for section, values in changes.items():
            merged.setdefault(section, {})
            if isinstance(values, dict):
                merged[section] = {**merged[section], **values}
            else:
                merged[section] = values
        proposed = validate_config(merged, self.config.base_dir, "<configure>")
        new = proposed.model_dump(mode="json")
        changed = [f"{section}.{key}" for section, values in new.items() for key, value in values.items()
                   if current.get(section, {}).get(key) != value]
        applied = [key for key in changed if key in RUNTIME_KEYS]
        pending = [key for key in changed if key not in RUNTIME_KEYS]
        if dry_run or not applied:
            return applied, pending
        effective = {section: dict(values) for section, values in current.items()}
        for key in applied:
            section, name = key.split(".", 1)
            effective[section][name] = new[section][name]
        self.config = validate_config(effective, self.config.base_dir, "<configure>")
        mcp, security = self.config.mcp, self.config.security
        server = self.server
        server.available = set(mcp.available_tools) & set(server.tools)
        server.max_concurrent, server.request_timeout = mcp.max_concurrent_requests, mcp.request_timeout
        server.page_size = mcp.page_size
        server.access.grants = AccessPolicy(mcp.peer_tools).grants
        server.limiter.reconfigure(security.rate_limit_per_peer, security.total_rate_limit)
        server._start_waiting()
        self.env.on_config(self.config, applied)
        return applied, pending

    # ---- methods peers call through the overlay --------------------------------------------------

    def _forward(self, exchange: Exchange) -> None:
        """``p2pnode/forward``: make a request to the target on the caller's behalf (a relay hop)."""
        caller = exchange.channel.caller
        if not self.server.access.check(caller, "relay"):
            exchange.fail(jsonrpc.ACCESS_DENIED, f"Access denied: peer {caller} may not relay through this node",
                          outcome="denied")
            return
        params = exchange.request.params
        inner = params.get("request")
        try:
            target = peer_from_json(params.get("target"))
            if not isinstance(inner, dict) or not isinstance(inner.get("method"), str):
                raise ValueError("request must be {method, params}")
        except ValueError as exc:
            exchange.fail(jsonrpc.INVALID_PARAMS, f"Invalid params: {exc}", outcome="invalid")
            return
        if exchange.hops >= MAX_HOPS:
            exchange.fail(jsonrpc.PEER_UNREACHABLE, f"more than {MAX_HOPS} hops", outcome="error")
            return
        known = self.peer_info(target.peer_id)
        target = known if known.addrs else target
        exchange.label = "p2pnode/forward"

        def answered(outcome: Outcome) -> None:
            response = outcome.response or {}
            if "result" in response:
                exchange.reply(response["result"])
            else:
                error = response.get("error") or {}
                exchange.fail(error.get("code", jsonrpc.PEER_UNREACHABLE), error.get("message", "no answer"),
                              error.get("data"))

        self.router.call(target, inner["method"], dict(inner.get("params") or {}),
                         self.attempt_timeout(), exchange.hops, answered, relay=False)

    def _deliver(self, exchange: Exchange) -> None:
        """``p2pnode/deliver``: a message relayed to this node (kept in the messages resource)."""
        if not self.server.access.check(exchange.channel.caller, "relay_message"):
            exchange.fail(jsonrpc.ACCESS_DENIED, f"Access denied: peer {exchange.channel.caller} may not send "
                          "messages to this node", outcome="denied")
            return
        params = exchange.request.params
        message = params.get("message")
        if not isinstance(message, str):
            exchange.fail(jsonrpc.INVALID_PARAMS, "Invalid params: message must be a string", outcome="invalid")
            return
        self.inbox.append({"from": exchange.channel.caller or str(params.get("from", "")),
                           "topic": str(params.get("topic", "")), "message": message, "hops": exchange.hops,
                           "received": self.runtime.now()})
        exchange.reply({"delivered": True})
