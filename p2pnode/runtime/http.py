"""The node's local HTTP listener: ``/health``, ``/ready``, ``/metrics`` (Prometheus), ``/debug/peers``.

Metrics are read from the node when Prometheus scrapes (a custom collector on a registry of the node's
own), so nothing on the hot path updates counters. ``p2p_bandwidth_bytes`` counts application bytes on
streams (after decryption, before framing of the transport); it is a counter, so the exposition names
its sample ``p2p_bandwidth_bytes_total``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

if TYPE_CHECKING:
    from p2pnode.runtime.node import Node


class NodeCollector:
    def __init__(self, node: Node, tunnel_protocol: str = "native"):
        self.node = node
        self.tunnel_protocol = tunnel_protocol

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
        tunnel.add_metric([self.tunnel_protocol], 1)
        yield tunnel
        if host is not None and host.pubsub is not None:
            yield GaugeMetricFamily("p2p_pubsub_topics", "Topics subscribed", value=len(host.pubsub.subscriptions))
            mesh = GaugeMetricFamily("p2p_pubsub_mesh_peers", "Mesh peers per topic", labels=["topic"])
            for topic, peers in host.pubsub.mesh.items():
                mesh.add_metric([topic], len(peers))
            yield mesh


class HttpServer:
    def __init__(self, node: Node, host: str, port: int):
        self.node = node
        self.address = (host, port)
        self.started = time.time()
        self.registry = CollectorRegistry()
        self.registry.register(NodeCollector(node))
        ProcessCollector(registry=self.registry)
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/ready", self.ready)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/debug/peers", self.peers)
        self._runner = web.AppRunner(app, access_log=None)
        self.port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address[0], self.address[1])
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def health(self, request: web.Request) -> web.Response:
        node = self.node
        return web.json_response({
            "status": "ok" if node.running else "stopped",
            "peer_id": str(node.peer_id),
            "listen_addrs": [str(a) for a in node.listen_addrs],
            "peers": len(node.connected_peers()),
            "uptime_s": round(time.time() - self.started, 3),
        }, status=200 if node.running else 503)

    async def ready(self, request: web.Request) -> web.Response:
        node = self.node
        body = {
            "ready": node.ready,
            "bootstrapped": bool(node.host and node.host.bootstrapped),
            "routing_table_peers": len(node.host.dht.table) if node.host else 0,
        }
        return web.json_response(body, status=200 if node.ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        data = generate_latest(self.registry)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def peers(self, request: web.Request) -> web.Response:
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
        return web.json_response({"peer_id": str(node.peer_id), "peers": out})
