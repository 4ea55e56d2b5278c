"""The node's local HTTP listener: ``/health``, ``/ready``, ``/metrics`` (Prometheus), ``/debug/peers``, and
the MCP endpoint ``/mcp`` (Streamable HTTP, served by ``p2pnode.mcp.http`` when the node has MCP on).

A small HTTP/1.1 responder on asyncio streams (GET and HEAD; ``/mcp`` also takes POST and DELETE and keeps
the connection for the next request): a few endpoints on a loopback address do not need a web framework,
and aiohttp alone would take 14 MiB of the idle node's 60 MB budget (measured: 52 -> 66 MiB RSS after
import).

Metrics are read from the node when Prometheus scrapes (a custom collector on a registry of the node's
own), so nothing on the hot path updates counters. ``p2p_bandwidth_bytes`` counts application bytes on
streams (after decryption, before framing of the transport); it is a counter, so the exposition names
its sample ``p2p_bandwidth_bytes_total``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.process_collector import ProcessCollector

if TYPE_CHECKING:
    from p2pnode.runtime.node import Node

log = logging.getLogger(__name__)


def host_tunnel_protocol() -> str:
    """The transition mechanism this host's interface addresses show (``p2pnode.transition.detect``)."""
    import socket

    import psutil

    from p2pnode.transition.detect import active_mechanism

    return active_mechanism([a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                             if a.family in (socket.AF_INET, socket.AF_INET6)])


class NodeCollector:
    def __init__(self, node: Node, tunnel_protocol: str | None = None):
        self.node = node
        self.tunnel_protocol = tunnel_protocol  # None: read from the host's addresses at each scrape
        self.mcp: Any = None  # the node's McpService, once it has one

    def collect(self):
        node = self.node
        host = node.host
        yield GaugeMetricFamily("p2p_peers_connected", "Number of connected peers",
                                value=len(node.connected_peers()))
        yield GaugeMetricFamily("p2p_dht_records_stored", "DHT records stored on this node",
                                value=len(host.dht.records) if host else 0)
        yield GaugeMetricFamily("p2p_dht_routing_table_peers", "Peers in the Kademlia routing table",
                                value=len(host.dht.table) if host else 0)
        received, sent = node.swarm.bandwidth()
        bandwidth = CounterMetricFamily("p2p_bandwidth_bytes", "Bytes on streams by direction",
                                        labels=["direction"])
        bandwidth.add_metric(["in"], received)
        bandwidth.add_metric(["out"], sent)
        yield bandwidth
        tunnel = GaugeMetricFamily("p2p_tunnel_protocol", "Active IPv6 tunnelling protocol (1 = in use)",
                                   labels=["protocol"])
        tunnel.add_metric([self.tunnel_protocol or host_tunnel_protocol()], 1)
        yield tunnel
        if host is not None and host.pubsub is not None:
            yield GaugeMetricFamily("p2p_pubsub_topics", "Topics subscribed", value=len(host.pubsub.subscriptions))
            mesh = GaugeMetricFamily("p2p_pubsub_mesh_peers", "Mesh peers per topic", labels=["topic"])
            for topic, peers in host.pubsub.mesh.items():
                mesh.add_metric([topic], len(peers))
            yield mesh
        yield from resource_metrics(node.resources)
        if host is not None:
            yield from security_metrics(host)
        if self.mcp is not None:
            yield from mcp_metrics(self.mcp.server.metrics)
        if getattr(node, "nat", None) is not None:
            yield from nat_metrics(node)
        if getattr(node, "mdns", None) is not None:
            yield from mdns_metrics(node.mdns.status())
        if getattr(node, "port_mapping", None) is not None:
            yield from port_mapping_metrics(node.port_mapping.status())


def resource_metrics(resources: Any):
    """What peers make the node hold and what the resource manager refused (``p2pnode.resources``)."""
    yield GaugeMetricFamily("p2p_resource_buffered_bytes", "Bytes buffered on inbound streams, not yet read",
                            value=resources.buffered)
    yield GaugeMetricFamily("p2p_resource_buffer_limit_bytes", "Limit of bytes buffered on inbound streams",
                            value=resources.limits.memory)
    yield GaugeMetricFamily("p2p_resource_inbound_streams", "Inbound streams being served", value=resources.streams)
    refusals = CounterMetricFamily("p2p_resource_refusals", "Streams, connections and handshakes refused "
                                   "at a resource limit, by limit", labels=["limit"])
    for reason, count in sorted(resources.refusals.items()):
        refusals.add_metric([reason], count)
    yield refusals


def security_metrics(host: Any):
    """Refusals of the security layer (docs/security.md): rate limits, node-ID puzzles, records."""
    limited = CounterMetricFamily("p2p_rate_limited", "Inbound requests, messages and streams refused by the "
                                  "rate limits", labels=["kind", "scope"])
    for (kind, scope), count in sorted((host.limits.refused if host.limits is not None else {}).items()):
        limited.add_metric([kind, scope], count)
    yield limited
    puzzles = CounterMetricFamily("p2p_dht_puzzle_refusals", "Peers kept out of the routing table and lookups "
                                  "by the S/Kademlia ID puzzles", labels=["puzzle"])
    for puzzle, count in sorted(host.dht.puzzles.refused.items()):
        puzzles.add_metric([puzzle], count)
    yield puzzles
    records = CounterMetricFamily("p2p_dht_records_refused", "Records refused by this node's store or left out "
                                  "of a lookup's answers", labels=["where", "reason"])
    for reason, count in sorted(host.dht.records.refused.items()):
        records.add_metric(["store", reason], count)
    for reason, count in sorted(host.dht.refused_answers.items()):
        records.add_metric(["lookup", reason], count)
    yield records


def nat_metrics(node: Any):
    """NAT traversal (docs/nat.md): reachability, connections by kind, reservations, hole punches, relaying."""
    status = node.nat.status()
    reachability = GaugeMetricFamily("p2p_nat_reachability", "AutoNAT's verdict (1 = current)", labels=["status"])
    for name in ("unknown", "public", "private"):
        reachability.add_metric([name], 1 if status["reachability"] == name else 0)
    yield reachability
    kinds = GaugeMetricFamily("p2p_connections", "Open connections by kind", labels=["kind"])
    conns = [c for cs in node.swarm.connections.values() for c in cs if not c.closed]
    kinds.add_metric(["relayed"], sum(c.transport == "circuit" for c in conns))
    kinds.add_metric(["direct"], sum(c.transport != "circuit" for c in conns))
    yield kinds
    yield GaugeMetricFamily("p2p_relay_reservations_held", "Relays this node holds a reservation at",
                            value=len(status["relays"]))
    punches = CounterMetricFamily("p2p_hole_punches", "DCUtR upgrades by outcome", labels=["outcome"])
    for outcome, count in sorted(status["hole_punches"].items()):
        punches.add_metric([outcome], count)
    yield punches
    service = status["relay_service"]
    if service is not None:
        yield GaugeMetricFamily("p2p_relay_service_reservations", "Reservations this relay holds for others",
                                value=service["reservations"])
        yield GaugeMetricFamily("p2p_relay_service_circuits", "Circuits open through this relay",
                                value=service["circuits"])
        yield CounterMetricFamily("p2p_relay_service_bytes", "Bytes relayed", value=service["bytes_relayed"])


def mdns_metrics(status: dict[str, Any]):
    """mDNS discovery on the local link (runtime/mdns.py)."""
    state = GaugeMetricFamily("p2p_mdns_state", "mDNS discovery's state (1 = current)", labels=["state"])
    for name in ("running", "unavailable", "stopped"):
        state.add_metric([name], 1 if status["state"] == name else 0)
    yield state
    yield CounterMetricFamily("p2p_mdns_peers_discovered", "Peers found on the local link",
                              value=len(status["discovered"]))
    yield CounterMetricFamily("p2p_mdns_announcements_refused", "Announcements whose TXT record named no "
                              "usable peer address", value=status["refused"])
    if status["first_discovery_seconds"] is not None:
        yield GaugeMetricFamily("p2p_mdns_first_discovery_seconds", "Seconds from start to the first peer "
                                "found", value=status["first_discovery_seconds"])


def port_mapping_metrics(status: dict[str, Any]):
    """Router port mapping (runtime/portmap.py)."""
    state = GaugeMetricFamily("p2p_port_mapping_state", "Port mapping's state (1 = current)", labels=["state"])
    for name in ("probing", "mapped", "none", "lost", "stopped"):
        state.add_metric([name], 1 if status["state"] == name else 0)
    yield state
    mappings = GaugeMetricFamily("p2p_port_mappings", "Ports mapped at the router, by protocol and transport",
                                 labels=["protocol", "transport"])
    for m in status["mappings"]:
        mappings.add_metric([status["protocol"], m["transport"]], 1)
    yield mappings
    yield CounterMetricFamily("p2p_port_mapping_renewals", "Mappings renewed", value=status["renewals"])


def mcp_metrics(metrics: Any):
    requests = CounterMetricFamily("mcp_requests", "MCP requests by tool (or method) and outcome",
                                   labels=["tool", "outcome"])
    for (tool, outcome), count in sorted(metrics.requests.items()):
        requests.add_metric([tool, outcome], count)
    yield requests
    durations = HistogramMetricFamily("mcp_request_duration_seconds", "MCP request latency", labels=["tool"])
    for tool, histogram in sorted(metrics.durations.items()):
        durations.add_metric([tool], histogram.cumulative(), histogram.sum)
    yield durations


class HttpServer:
    MAX_REQUEST = 8192

    def __init__(self, node: Node, host: str, port: int, local_mcp_only: bool = False):
        self.node = node
        # [security] require_authentication: /mcp is served only to clients on this machine (an HTTP client has
        # no identity; peers call MCP over /p2pnode/mcp/1.0.0, authenticated by the secure channel)
        self.local_mcp_only = local_mcp_only
        self.address = (host, port)
        self.port = port
        self.started = time.time()
        self.registry = CollectorRegistry()
        self.collector = NodeCollector(node)
        self.registry.register(self.collector)
        self.mcp: Any = None  # p2pnode.mcp.http.McpEndpoint: serves /mcp when set
        ProcessCollector(registry=self.registry)
        self.routes = {"/health": self.health, "/ready": self.ready, "/metrics": self.metrics,
                       "/debug/peers": self.peers}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.address[0], self.address[1])
        self.port = self._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def attach_mcp(self, service: Any, endpoint: Any) -> None:
        """Serve ``/mcp`` with ``endpoint`` and export ``service``'s MCP metrics."""
        self.mcp = endpoint
        self.collector.mcp = service
        self.routes["/mcp"] = lambda: (405, "text/plain", b"POST JSON-RPC messages to /mcp\n")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            keep_alive = True
            while keep_alive:
                async with asyncio.timeout(10):
                    head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                path = target.split("?", 1)[0]
                if path == "/mcp" and self.mcp is not None and self.local_mcp_only and not _on_loopback(writer):
                    log.warning("refused /mcp to %s: require_authentication serves HTTP clients on this machine only",
                                writer.get_extra_info("peername"))
                    body = b"require_authentication: /mcp is for this machine; peers use /p2pnode/mcp/1.0.0\n"
                    writer.write(f"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: "
                                 f"{len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
                    await writer.drain()
                    return
                if path == "/mcp" and self.mcp is not None:
                    headers = [(name.strip().lower(), value.strip())
                               for name, _, value in (line.partition(":") for line in lines[1:] if line)]
                    wants = next((v.lower() for k, v in headers if k == "connection"), "")
                    keep_alive = await self.mcp.serve(reader, writer, method, path, headers,
                                                      version.strip() == "HTTP/1.1" and wants != "close")
                    await writer.drain()
                    continue
                keep_alive = False
                route = self.routes.get(path)
                if method not in ("GET", "HEAD"):
                    status, content_type, body = 405, "text/plain", b"only GET and HEAD\n"
                elif route is None:
                    status, content_type, body = 404, "text/plain", b"try /health, /ready, /metrics, /debug/peers\n"
                else:
                    status, content_type, body = route()
                writer.write(f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {content_type}\r\n"
                             f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
                if method != "HEAD":
                    writer.write(body)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError, OSError):
            pass  # a client that sent no request, or garbage, or went quiet: just close
        finally:
            writer.close()

    def _json(self, data: dict, status: int = 200) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(data).encode()

    def health(self) -> tuple[int, str, bytes]:
        node = self.node
        return self._json({
            "status": "ok" if node.running else "stopped",
            "peer_id": str(node.peer_id),
            "listen_addrs": [str(a) for a in node.listen_addrs],
            "peers": len(node.connected_peers()),
            "uptime_s": round(time.time() - self.started, 3),
        }, 200 if node.running else 503)

    def ready(self) -> tuple[int, str, bytes]:
        node = self.node
        return self._json({
            "ready": node.ready,
            "bootstrapped": bool(node.host and node.host.bootstrapped),
            "routing_table_peers": len(node.host.dht.table) if node.host else 0,
        }, 200 if node.ready else 503)

    def metrics(self) -> tuple[int, str, bytes]:
        return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)

    def peers(self) -> tuple[int, str, bytes]:
        node = self.node
        out = []
        for peer, conns in node.swarm.connections.items():
            info = node.identified.get(peer)
            out.append({
                "peer_id": str(peer),
                "connections": [{"transport": c.transport, "direction": "outbound" if c.outbound else "inbound",
                                 "remote_addr": str(c.remote_addr), "bytes_in": c.bytes_in,
                                 "bytes_out": c.bytes_out} for c in conns if not c.closed],
                "agent_version": info.agent_version if info else None,
                "protocols": list(info.protocols) if info else None,
                "addrs": [str(a) for a in node.swarm.addrbook.get(peer, ())],
            })
        def status(part: str) -> dict[str, Any] | None:
            attached = getattr(node, part, None)
            return attached.status() if attached is not None else None

        return self._json({"peer_id": str(node.peer_id), "peers": out, "nat": status("nat"),
                           "mdns": status("mdns"), "port_mapping": status("port_mapping")})


def _on_loopback(writer: asyncio.StreamWriter) -> bool:
    peer = writer.get_extra_info("peername")
    try:
        return ipaddress.ip_address(str(peer[0]).split("%")[0]).is_loopback
    except (TypeError, ValueError, IndexError):
        return False
