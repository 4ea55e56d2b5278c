"""The user-facing node: the sans-IO ``Host`` over real QUIC and TCP connections, as coroutines.

``Node`` starts and stops the swarm, the asyncio runtime (``runtime/asyncio_runtime.py``: each protocol's
streams) and the host, and offers the DHT and pub-sub as ``node.dht`` and ``node.pubsub``::

    node = Node(listen=["/ip6/::1/udp/0/quic-v1"], bootstrap=["/ip6/::1/udp/4001/quic-v1/p2p/12D3Koo…"])
    await node.start()
    await node.dht.put(b"greeting", b"hello")
    node.pubsub.subscribe("news", print)
    node.pubsub.publish("news", b"hi")

With ``storage_path`` the records it stores are kept across restarts (``runtime/record_file.py``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from multiaddr import Multiaddr

from p2pnode import identify
from p2pnode.config import GossipConfig, KadConfig, NatConfig, ScoreConfig
from p2pnode.eventlog import EventWriter
from p2pnode.host import Host
from p2pnode.identity import Keypair, PeerId
from p2pnode.kad.events import GetFinished, LookupFinished, PeerFound, ProvidersFound, PutFinished
from p2pnode.kad.messages import DHTRecord, PeerInfo
from p2pnode.nodeconfig import DEFAULT_LISTEN
from p2pnode.pubsub.messages import Message
from p2pnode.resources import ResourceLimits, ResourceManager
from p2pnode.runtime.asyncio_runtime import AsyncioRuntime
from p2pnode.runtime.record_file import RecordFile
from p2pnode.runtime.swarm import Swarm
from p2pnode.security.access import AccessPolicy
from p2pnode.security.limits import InboundLimits
from p2pnode.security.ratelimit import TokenBucket
from p2pnode.transports.addresses import peer_id_of
from p2pnode.transports.base import Transport

log = logging.getLogger("p2pnode.node")

def make_transports(keypair: Keypair, names: Sequence[str],
                    resources: ResourceManager | None = None) -> list[Transport]:
    """Transports by name, in dialling preference order, accounting with ``resources`` (one of their own
    if None)."""
    out: list[Transport] = []
    for name in names:
        if name == "quic":
            from p2pnode.transports.quic import QuicTransport

            out.append(QuicTransport(keypair, resources=resources))
        elif name == "tcp":
            from p2pnode.transports.tcp import TcpTransport

            out.append(TcpTransport(keypair, resources=resources))
        else:
            raise ValueError(f"unknown transport {name!r} (known: quic, tcp)")
    return out


class Node:
    """A real p2pnode: DHT, GossipSub and request/response over QUIC and TCP+Noise+Yamux.

    ``listen`` defaults to the configuration file's default, the spec's four addresses (TCP 9000 and QUIC
    9001 on every interface); port 0 picks a free port."""

    def __init__(
        self,
        keypair: Keypair | None = None,
        *,
        listen: Iterable[str] = DEFAULT_LISTEN,
        bootstrap: Iterable[str] = (),
        transports: Sequence[str] = ("quic", "tcp"),
        kad: KadConfig | None = None,
        gossip: GossipConfig | None = None,
        score: ScoreConfig | None = None,
        pubsub: bool = True,
        peers: int = 8,
        max_peers: int = 64,
        max_connections: int = 1000,
        dial_timeout: float = 10.0,
        seed: int | None = None,
        storage_path: str | Path | None = None,
        events: EventWriter | None = None,
        node_index: int | None = None,
        nat: NatConfig | None = None,
        public_ranges: Iterable[str] = (),
        peer_index: Callable[[PeerId], int | None] | None = None,
        resources: ResourceLimits | None = None,
        rate_limits: tuple[float, float] | None = None,
        bandwidth_limit: float | None = None,
        access: AccessPolicy | None = None,
        protected_namespaces: Iterable[bytes] = (),
        mdns: bool = False,
        port_mapping: Sequence[str] = (),
    ):
        self.keypair = keypair or Keypair.generate()
        self.peer_id = self.keypair.peer_id
        self._listen = list(listen)
        self._bootstrap = [Multiaddr(a) for a in bootstrap]
        for addr in self._bootstrap:
            if peer_id_of(addr) is None:
                raise ValueError(f"bootstrap address {addr} does not end in /p2p/<peer id>")
            if peer_id_of(addr) == self.peer_id:
                raise ValueError(f"bootstrap address {addr} is this node's own peer ID (two nodes sharing a key?)")
        self._transport_names = list(transports)
        self._record_file = RecordFile(storage_path) if storage_path else None
        self.events = events  # measured events, as the simulator writes them (wall-clock time)
        self.node_index = node_index
        # NAT traversal (docs/nat.md): AutoNAT, relay reservations or service, DCUtR; ``public_ranges``
        # are networks whose addresses count as public (a lab's "internet")
        self._nat_config = nat
        self._public_ranges = tuple(ipaddress.ip_network(r) for r in public_ranges)
        self._peer_index = peer_index
        self.nat = None
        # [nat] mdns and port_mapping (runtime/mdns.py, runtime/portmap.py; ``port_mapping``: the protocols to
        # try, in order, none: off): each probed at start, on or off whether NAT traversal is
        self._mdns, self._port_mapping = mdns, tuple(port_mapping)
        self.mdns = None
        self.port_mapping = None
        # [security] rate_limit_per_peer and total_rate_limit (requests, messages and streams per second;
        # p2pnode.security.limits) and [resources] bandwidth_limit_mbps (bytes per second, one bucket for both
        # directions of the protocols' streams); None: no limit
        limits = InboundLimits(*rate_limits) if rate_limits is not None else None
        self.bandwidth = TokenBucket(bandwidth_limit) if bandwidth_limit is not None else None
        self._host_args = dict(kad=kad or KadConfig(), gossip=(gossip or GossipConfig()) if pubsub else None,
                               score=score,
                               peers=peers, max_peers=max_peers, limits=limits, access=access,
                               protected_namespaces=tuple(protected_namespaces))
        self._rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(8), "big"))
        # what peers may make this node hold (p2pnode.resources); ``max_connections`` unless ``resources`` says
        self.resources = ResourceManager(resources or ResourceLimits(connections=max_connections))
        self.swarm = Swarm(self.keypair, (), dial_timeout, self.resources.limits.connections, self.resources)
        self.runtime: AsyncioRuntime | None = None
        self.host: Host | None = None
        self.dht = DhtAPI(self)
        self.pubsub = PubSubAPI(self)
        self.running = False

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self, join: bool = True) -> None:
        """Listen, then join the network. ``join=False`` only listens (refusing connections) until ``join()``:
        how the emulator starts processes ahead of the moment a scenario has them join."""
        if self.running:
            return
        if self.swarm.closing:  # started and stopped before: a fresh swarm
            self.swarm = Swarm(self.keypair, (), self.swarm.dial_timeout, self.swarm.max_connections, self.resources)
        self.swarm.transports = make_transports(self.keypair, self._transport_names, self.resources)
        self.runtime = AsyncioRuntime(self, self._rng)  # serves the protocols on the swarm
        self.host = Host(self.keypair, self.runtime, **self._host_args)
        swarm = self.swarm
        if self._nat_config is not None:
            from p2pnode.runtime.nat import NatRuntime

            self.nat = NatRuntime(self, self._nat_config, self._public_ranges,
                                  self._peer_index or (lambda peer: None))
        try:
            await swarm.listen(self._listen)
            if self.nat is not None:
                await self.nat.start()
        except BaseException:
            await swarm.close()  # nothing half-open stays behind (e.g. the second of two addresses was taken)
            raise
        if self._port_mapping:
            from p2pnode.runtime.portmap import PortMapper

            self.port_mapping = PortMapper(self, self._port_mapping)
            swarm.spawn(self.port_mapping.start())  # probing takes seconds: the node does not wait for it
        if self._mdns:
            from p2pnode.runtime.mdns import MdnsDiscovery

            self.mdns = MdnsDiscovery(self)
            await self.mdns.start()
        own = PeerInfo(self.peer_id, tuple(a.to_bytes() for a in swarm.advertised_addrs()), puzzle=self.host.dht.puzzle)
        self.host.dht.info = self.host.info = own
        self.running = True
        log.info("node %s listening on %s", self.peer_id.short(), ", ".join(map(str, swarm.listen_addrs)))
        if join:
            self.join()

    def join(self) -> None:
        """Start the protocols: load kept records, bootstrap the DHT, open pub-sub connections."""
        if not self.running or self.host.running:
            return
        bootstrap = []
        for addr in self._bootstrap:
            peer = peer_id_of(addr)
            self.swarm.learn(peer, [addr])
            bootstrap.append(self.info_of(peer))
        if self._record_file is not None:
            self._record_file.load(self.host.dht.records, self.runtime.now())
        self.host.start(bootstrap)
        self.record_event("up", value=1)
        if self.mdns is not None:
            self.mdns.joined()

    async def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        if self.host.running:
            self.record_event("down", value=1)
            self.host.stop()
            if self._record_file is not None:
                self._record_file.save(self.host.dht.records, self.runtime.now())
        if self.mdns is not None:
            await self.mdns.stop()
        if self.port_mapping is not None:
            await self.port_mapping.stop()
        await self.swarm.close()
        log.info("node %s stopped", self.peer_id.short())

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_bootstrapped(self, timeout: float = 30.0) -> None:
        """Wait until the first self-lookup and bucket refresh finished (``TimeoutError`` after ``timeout``)."""
        async with asyncio.timeout(timeout):
            while not (self.host and self.host.bootstrapped):
                await asyncio.sleep(0.05)

    def record_event(self, kind: str, latency: float | None = None, hops: int | None = None, ok: bool | None = None,
                     value: float | int | None = None, count: int | None = None) -> None:
        if self.events is not None:
            self.events.write(time.time(), kind, self.node_index, latency, hops, ok, value, count)
            self.events.flush()

    # ---- facts -----------------------------------------------------------------------------------

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        """Where others can reach us (wildcards expanded), IPv6 first, each ending in /p2p/<our id>."""
        suffix = Multiaddr(f"/p2p/{self.peer_id}")
        return [a.encapsulate(suffix) for a in self.swarm.advertised_addrs()]

    @property
    def ready(self) -> bool:
        return bool(self.running and self.host.bootstrapped and len(self.host.dht.table) > 0)

    def connected_peers(self) -> list[PeerId]:
        return [p for p in self.swarm.connections if self.swarm.connection(p) is not None]

    def info_of(self, peer: PeerId) -> PeerInfo:
        """What we know of ``peer``: its ID, up to eight dialable addresses and the S/Kademlia puzzle solution
        its Identify told."""
        addrs = self.swarm.addrbook.get(peer, ())[:8]
        told = self.runtime.identified.get(peer) if self.runtime is not None else None  # its puzzle solution
        return PeerInfo(peer, tuple(a.to_bytes() for a in addrs), puzzle=told.kad_puzzle if told else b"")

    @property
    def identified(self) -> dict[PeerId, identify.IdentifyInfo]:
        """What each connected peer told of itself in Identify."""
        return self.runtime.identified if self.runtime is not None else {}

    async def ping(self, peer: PeerId | str, count: int = 1, timeout: float = 10.0,
                   addrs: Iterable[bytes | str | Multiaddr] = ()) -> list[float]:
        """Round-trip times in seconds of ``count`` pings over one stream (dialling ``addrs`` if needed)."""
        if self.runtime is None:
            raise RuntimeError("the node is not running: await node.start() first")
        return await self.runtime.ping(_as_peer_id(peer), count, timeout, addrs)


class DhtAPI:
    """The DHT as coroutines over the node's sans-IO Kademlia node."""

    def __init__(self, node: Node):
        self._node = node

    def _kad(self):
        if not self._node.running:
            raise RuntimeError("the node is not running: await node.start() first")
        return self._node.host.dht

    async def put(self, key: bytes | str, value: bytes, ttl: float | None = None) -> PutFinished:
        """Sign ``value`` as a new version of ``key`` and store it on the k closest peers."""
        kad = self._kad()
        result: PutFinished = await completion(lambda done: kad.put_value(_key(key), value, done, ttl))
        self._node.record_event("put", result.finished - result.started, None, result.replicas > 0,
                                result.replicas, result.requests)
        return result

    async def get_record(self, key: bytes | str) -> DHTRecord | None:
        kad = self._kad()
        result: GetFinished = await completion(lambda done: kad.get_value(_key(key), done))
        self._node.record_event("get", result.finished - result.started, result.hops, result.record is not None,
                                None, result.requests)
        return result.record

    async def get(self, key: bytes | str) -> bytes | None:
        """The value of the newest valid record of ``key`` found, or None."""
        record = await self.get_record(key)
        return None if record is None else record.value

    async def find_peer(self, peer: PeerId | str) -> PeerInfo | None:
        """Look ``peer`` up; its ID and addresses if the lookup reached it."""
        peer, kad = _as_peer_id(peer), self._kad()
        result: PeerFound = await completion(lambda done: kad.find_peer(peer, done))
        self._node.record_event("find_peer", result.finished - result.started, result.hops, result.peer is not None,
                                None, result.requests)
        return result.peer

    async def closest_peers(self, key: bytes | str) -> tuple[PeerInfo, ...]:
        kad = self._kad()
        result: LookupFinished = await completion(lambda done: kad.find_node(_key(key), done))
        return result.peers

    async def provide(self, key: bytes | str) -> PutFinished:
        kad = self._kad()
        return await completion(lambda done: kad.provide(_key(key), done))

    async def find_providers(self, key: bytes | str, count: int = 20) -> tuple[PeerInfo, ...]:
        kad = self._kad()
        result: ProvidersFound = await completion(lambda done: kad.find_providers(_key(key), done, count))
        return result.providers


class Subscription:
    """Messages of one topic as they arrive: ``async for message in subscription`` or ``await get()``."""

    def __init__(self, topic: str):
        self.topic = topic
        self._queue: asyncio.Queue[Message] = asyncio.Queue()

    def _deliver(self, message: Message) -> None:
        self._queue.put_nowait(message)

    async def get(self) -> Message:
        return await self._queue.get()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        return await self._queue.get()


class PubSubAPI:
    def __init__(self, node: Node):
        self._node = node

    def _host(self) -> Host:
        if not self._node.running:
            raise RuntimeError("the node is not running: await node.start() first")
        return self._node.host

    def subscribe(self, topic: str, handler: Callable[[Message], None] | None = None) -> Subscription:
        """Join ``topic``; messages go to ``handler`` if given, and to the returned subscription."""
        subscription = Subscription(topic)

        def deliver(message: Message) -> None:
            subscription._deliver(message)
            if handler is not None:
                handler(message)

        self._host().subscribe(topic, deliver)
        return subscription

    def unsubscribe(self, topic: str) -> None:
        self._host().unsubscribe(topic)

    def publish(self, topic: str, data: bytes) -> bytes:
        """Sign and send ``data`` to ``topic``; returns the message ID."""
        return self._host().publish(topic, data)

    def mesh(self, topic: str) -> list[PeerId]:
        router = self._host().pubsub
        return [p.peer_id for p in router.mesh.get(topic, ())]

    def topic_peers(self, topic: str) -> list[PeerId]:
        router = self._host().pubsub
        return [p.peer_id for p in router.topics.get(topic, ())]


# ---- helpers ---------------------------------------------------------------------------------------


async def completion(start: Callable[[Callable[[Any], None]], Any]) -> Any:
    """Await a sans-IO operation that reports through a callback: ``start(done)`` begins it."""
    future = asyncio.get_running_loop().create_future()
    start(lambda result: future.done() or future.set_result(result))
    return await future


def _key(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else key


def _as_peer_id(peer: PeerId | str) -> PeerId:
    return peer if isinstance(peer, PeerId) else PeerId.from_base58(peer)


__all__ = ["Node", "AsyncioRuntime", "DhtAPI", "PubSubAPI", "Subscription", "completion"]
