"""The asyncio runtime: the sans-IO ``Host`` over real QUIC and TCP connections.

``AsyncioRuntime`` implements ``p2pnode.interface.Runtime`` with the event loop's clock and timers and the
swarm's streams; ``Node`` is the user-facing API around a ``Host``::

    node = Node(listen=["/ip6/::1/udp/0/quic-v1"], bootstrap=["/ip6/::1/udp/4001/quic-v1/p2p/12D3Koo…"])
    await node.start()
    await node.dht.put(b"greeting", b"hello")
    node.pubsub.subscribe("news", print)
    node.pubsub.publish("news", b"hi")

Each message type goes on the wire under its libp2p protocol: Kademlia messages on ``/ipfs/kad/1.0.0``
(a stream per request, as libp2p does), pub-sub RPCs on one long-lived ``/meshsub/1.1.0`` stream per
peer, application requests on ``/p2pnode/reqresp/1.0.0``; plus Identify and Ping.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from multiaddr import Multiaddr

from p2pnode import __version__, identify, reqresp
from p2pnode.config import GossipConfig, KadConfig, ScoreConfig
from p2pnode.eventlog import EventWriter
from p2pnode.framing import encode_uvarint
from p2pnode.host import Host
from p2pnode.identity import Keypair, PeerId
from p2pnode.kad import codec as kad_codec
from p2pnode.kad.events import GetFinished, LookupFinished, ProvidersFound, PutFinished
from p2pnode.kad.messages import DHTRecord, PeerInfo, Ping, Pong, PutValue
from p2pnode.pubsub import codec as pubsub_codec
from p2pnode.pubsub.messages import RPC, Message
from p2pnode.runtime.swarm import PEER_ERRORS, Swarm, new_correlation_id
from p2pnode.transports import multistream
from p2pnode.transports.addresses import peer_id_of
from p2pnode.transports.base import Stream, Transport, TransportError
from p2pnode.transports.multistream import read_frame

log = logging.getLogger("p2pnode.node")

AGENT_VERSION = f"p2pnode/{__version__}"
KAD_PROTOCOL = "/ipfs/kad/1.0.0"
MESHSUB_PROTOCOLS = ("/meshsub/1.1.0", "/meshsub/1.0.0")
PING_PROTOCOL = "/ipfs/ping/1.0.0"
REQRESP_PROTOCOL = "/p2pnode/reqresp/1.0.0"
PING_SIZE = 32
IDENTIFY_WAIT = 2.0  # how long an inbound DHT request waits for Identify to tell the sender's addresses
PUBSUB_QUEUE_LIMIT = 4096  # RPCs queued for one slow peer before new ones are dropped (gossip recovers them)
REQRESP_MAX_FRAME = 1 << 20

DEFAULT_LISTEN = ("/ip6/::/udp/0/quic-v1", "/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/tcp/0", "/ip4/0.0.0.0/tcp/0")


def make_transports(keypair: Keypair, names: Sequence[str]) -> list[Transport]:
    """Transports by name, in dialling preference order."""
    out: list[Transport] = []
    for name in names:
        if name == "quic":
            from p2pnode.transports.quic import QuicTransport

            out.append(QuicTransport(keypair))
        elif name == "tcp":
            from p2pnode.transports.tcp import TcpTransport

            out.append(TcpTransport(keypair))
        else:
            raise ValueError(f"unknown transport {name!r} (known: quic, tcp)")
    return out


class AsyncioRuntime:
    """``Runtime`` on the running event loop: real clock, loop timers, requests over the swarm."""

    def __init__(self, node: Node, rng: random.Random):
        self.node = node
        self.rng = rng
        self._loop = asyncio.get_running_loop()

    def now(self) -> float:
        return self._loop.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, callback)

    def request(self, peer: PeerInfo, message: Any, timeout: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        self.node.swarm.spawn(self.node._request(peer, message, timeout, on_response, on_failure))

    def send(self, peer: PeerInfo, message: Any) -> None:
        self.node._send(peer, message)

    def connect(self, peer: PeerInfo) -> None:
        self.node.swarm.spawn(self.node._connect(peer))

    def disconnect(self, peer: PeerInfo) -> None:
        self.node._quiet_close.add(peer.peer_id)
        self.node.swarm.spawn(self.node.swarm.disconnect(peer.peer_id))


class Node:
    """A real p2pnode: DHT, GossipSub and request/response over QUIC and TCP+Noise+Yamux."""

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
    ):
        self.keypair = keypair or Keypair.generate()
        self.peer_id = self.keypair.peer_id
        self._listen = list(listen)
        self._bootstrap = [Multiaddr(a) for a in bootstrap]
        for addr in self._bootstrap:
            if peer_id_of(addr) is None:
                raise ValueError(f"bootstrap address {addr} does not end in /p2p/<peer id>")
        self._transport_names = list(transports)
        self._storage = Path(storage_path) if storage_path else None
        self.events = events  # measured events, as the simulator writes them (wall-clock time)
        self.node_index = node_index
        self._host_args = dict(kad=kad or KadConfig(), gossip=(gossip or GossipConfig()) if pubsub else None,
                               score=score,
                               peers=peers, max_peers=max_peers)
        self._rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(8), "big"))
        self.swarm = Swarm(self.keypair, (), dial_timeout, max_connections)
        self.host: Host | None = None
        self.dht = DhtAPI(self)
        self.pubsub = PubSubAPI(self)
        self.identified: dict[PeerId, identify.IdentifyInfo] = {}
        self._identify_waiters: dict[PeerId, asyncio.Event] = {}
        self._pubsub_out: dict[PeerId, tuple[asyncio.Queue[bytes], asyncio.Task]] = {}
        self._quiet_close: set[PeerId] = set()
        self.running = False

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self, join: bool = True) -> None:
        """Listen, then join the network. ``join=False`` only listens (refusing connections) until ``join()``:
        how the emulator starts processes ahead of the moment a scenario has them join."""
        if self.running:
            return
        if self.swarm.closing:  # started and stopped before: a fresh swarm
            self.swarm = Swarm(self.keypair, (), self.swarm.dial_timeout, self.swarm.max_connections)
        self.swarm.transports = make_transports(self.keypair, self._transport_names)
        self.host = Host(self.keypair, AsyncioRuntime(self, self._rng), **self._host_args)
        swarm = self.swarm
        swarm.on_connection = self._connection_opened
        swarm.on_disconnect = self._connection_closed
        swarm.set_handler(identify.PROTOCOL, self._serve_identify)
        swarm.set_handler(PING_PROTOCOL, self._serve_ping)
        swarm.set_handler(KAD_PROTOCOL, self._serve_kad)
        for protocol in MESHSUB_PROTOCOLS:
            swarm.set_handler(protocol, self._serve_pubsub)
        swarm.set_handler(REQRESP_PROTOCOL, self._serve_reqresp)
        try:
            await swarm.listen(self._listen)
        except BaseException:
            await swarm.close()  # nothing half-open stays behind (e.g. the second of two addresses was taken)
            raise
        own = PeerInfo(self.peer_id, tuple(a.to_bytes() for a in swarm.advertised_addrs()))
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
            if peer != self.peer_id:
                self.swarm.learn(peer, [addr])
                bootstrap.append(self.info_of(peer))
        if self._storage is not None:
            self._load_records()
        self.host.start(bootstrap)
        self.record_event("up", value=1)

    async def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        if self.host.running:
            self.record_event("down", value=1)
            self.host.stop()
            if self._storage is not None:
                self._save_records()
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

    # ---- records kept across restarts -----------------------------------------------------------

    def _save_records(self) -> None:
        """Write the records this node stores, with their wall-clock expiry, atomically."""
        now, wall = self.host.runtime.now(), time.time()
        lines = [json.dumps({"record": kad_codec.encode(PutValue(stored.record)).hex(),
                             "expires_at": wall + stored.expires - now})
                 for stored in self.host.dht.records.items() if stored.expires > now]
        self._storage.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._storage.with_suffix(self._storage.suffix + ".tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        tmp.replace(self._storage)
        log.info("kept %d DHT records in %s", len(lines), self._storage)

    def _load_records(self) -> None:
        if not self._storage.exists():
            return
        now, wall = self.host.runtime.now(), time.time()
        restored = 0
        for number, line in enumerate(self._storage.read_text().splitlines(), 1):
            try:
                entry = json.loads(line)
                message = kad_codec.decode(bytes.fromhex(entry["record"]), response=False)
                expires = now + float(entry["expires_at"]) - wall
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s:%d: skipped an unreadable record: %s", self._storage, number, exc)
                continue
            if isinstance(message, PutValue) and self.host.dht.records.restore(message.record, expires, now):
                restored += 1
        log.info("restored %d DHT records from %s", restored, self._storage)

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
        """What we know of ``peer``: its ID and up to eight dialable addresses."""
        addrs = self.swarm.addrbook.get(peer, ())[:8]
        return PeerInfo(peer, tuple(a.to_bytes() for a in addrs))

    # ---- connection events -----------------------------------------------------------------------

    def _connection_opened(self, conn) -> None:
        peer = conn.remote_peer
        self._identify_waiters.setdefault(peer, asyncio.Event())
        out = self._pubsub_out.pop(peer, None)
        if out is not None:
            # A newer connection (the peer restarted, or we dialled each other at once): the old one may be
            # dead without our knowing for an idle timeout, so the pub-sub stream moves to the new one,
            # taking the frames still queued.
            out[1].cancel()
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            while not out[0].empty():
                queue.put_nowait(out[0].get_nowait())
            self._pubsub_out[peer] = (queue, self.swarm.spawn(self._pubsub_writer(self.info_of(peer), queue)))
        if conn.outbound:
            self.swarm.learn(peer, [conn.remote_addr])
        self.swarm.spawn(self._identify(conn))
        if self.running and not self.host.connection_opened(self.info_of(peer), conn.outbound):
            log.info("host refused the connection from %s (at its peer limit)", peer.short())
            self._quiet_close.add(peer)
            self.swarm.spawn(conn.close())

    def _connection_closed(self, peer: PeerId) -> None:
        self.identified.pop(peer, None)
        self._identify_waiters.pop(peer, None)
        out = self._pubsub_out.pop(peer, None)
        if out is not None:
            out[1].cancel()
        if peer in self._quiet_close:
            self._quiet_close.discard(peer)
        elif self.running:
            self.host.connection_closed(self.info_of(peer))

    async def _connect(self, peer: PeerInfo) -> None:
        try:
            await self.swarm.dial(peer.peer_id, peer.addrs)
        except PEER_ERRORS as exc:
            log.debug("dial %s failed: %s", peer.peer_id.short(), exc)
            if self.running:
                self.host.dial_failed(self.info_of(peer.peer_id))
            return
        if self.running and peer not in self.host.connections:
            # an existing connection (the peer dialled us) the host had not been told of as its own
            self.host.connection_opened(self.info_of(peer.peer_id), True)

    # ---- Identify --------------------------------------------------------------------------------

    async def _identify(self, conn) -> None:
        peer = conn.remote_peer
        try:
            async with asyncio.timeout(10):
                stream = await conn.open_stream()
                stream.protocol = await multistream.select(stream, [identify.PROTOCOL])
                data = bytearray()
                while chunk := await stream.read():
                    data += chunk
                    if len(data) > identify.MAX_SIZE:
                        break
            info = identify.decode(bytes(data), peer)
        except PEER_ERRORS as exc:
            log.info("identify %s failed: %s", peer.short(), exc or type(exc).__name__)
            return
        finally:
            waiter = self._identify_waiters.get(peer)
            if waiter is not None:
                waiter.set()
        self.identified[peer] = info
        self.swarm.learn(peer, info.listen_addrs)
        if KAD_PROTOCOL in info.protocols and self.running:
            self.host.dht.add_peer(self.info_of(peer))
        log.debug("identified %s: %s, %d addrs", peer.short(), info.agent_version, len(info.listen_addrs))

    async def _serve_identify(self, stream: Stream) -> None:
        conn = stream.connection
        info = identify.IdentifyInfo(
            public_key=self.keypair.public_key,
            listen_addrs=tuple(a.to_bytes() for a in self.swarm.advertised_addrs()),
            protocols=tuple(self.swarm.protocols),
            observed_addr=conn.remote_addr.to_bytes(),
            agent_version=AGENT_VERSION,
        )
        await stream.write(identify.encode(info))

    async def _sender(self, stream: Stream) -> PeerInfo:
        """The remote peer of ``stream`` with its addresses, once Identify told them (or gave up)."""
        peer = stream.connection.remote_peer
        waiter = self._identify_waiters.get(peer)
        if waiter is not None and not waiter.is_set():
            try:
                async with asyncio.timeout(IDENTIFY_WAIT):
                    await waiter.wait()
            except TimeoutError:
                pass
        return self.info_of(peer)

    # ---- Ping ------------------------------------------------------------------------------------

    async def _serve_ping(self, stream: Stream) -> None:
        while True:
            try:
                payload = await stream.readexactly(PING_SIZE)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                return
            await stream.write(payload)

    async def ping(self, peer: PeerId | str, count: int = 1, timeout: float = 10.0,
                   addrs: Iterable[bytes | str | Multiaddr] = ()) -> list[float]:
        """Round-trip times in seconds of ``count`` pings over one stream (dialling ``addrs`` if needed)."""
        peer = _as_peer_id(peer)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            # Lazy negotiation: the first ping travels with the protocol proposal and its echo with the
            # acceptance, so a fresh stream costs one round trip, not two.
            stream = await self.swarm.new_stream(peer, [PING_PROTOCOL], addrs, lazy=True)
            rtts = []
            try:
                for i in range(count):
                    payload = os.urandom(PING_SIZE)
                    start = loop.time()
                    await stream.write(payload)
                    if i == 0:
                        await multistream.confirm(stream, PING_PROTOCOL)
                    if await stream.readexactly(PING_SIZE) != payload:
                        raise TransportError("ping answer does not echo the payload")
                    rtts.append(loop.time() - start)
            finally:
                await _finish(stream)
        return rtts

    # ---- requests (Kademlia, application request/response) ---------------------------------------

    async def _request(self, peer: PeerInfo, message: Any, timeout: float,
                       on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        if type(message) is Ping:
            # The DHT's liveness check. Kademlia's PING is deprecated on the wire (libp2p nodes answer it
            # but never send it): ask over /ipfs/ping/1.0.0 instead.
            try:
                await self.ping(peer.peer_id, timeout=timeout, addrs=peer.addrs)
            except (TimeoutError, *PEER_ERRORS) as exc:
                if self.running:
                    on_failure(str(exc) or type(exc).__name__)
            else:
                if self.running:
                    on_response(Pong())
            return
        if type(message) is reqresp.AppRequest:
            protocol, frame = REQRESP_PROTOCOL, _frame(reqresp.encode(message))
            max_size, decode = REQRESP_MAX_FRAME, reqresp.decode
        else:
            protocol, frame = KAD_PROTOCOL, kad_codec.write_frame(message)
            max_size, decode = kad_codec.MAX_FRAME_SIZE, kad_codec.decode
        new_correlation_id(peer.peer_id)
        stage = "opening a stream"
        try:
            async with asyncio.timeout(timeout):
                stream = await self.swarm.new_stream(peer.peer_id, [protocol], peer.addrs, lazy=True)
                try:
                    stage = "sending"
                    await stream.write(frame)
                    # One request per stream: closing our side now puts the FIN in the request's packet, and
                    # the answer carries the server's. Three packets a request instead of five.
                    await stream.close()
                    stage = "waiting for the answer"
                    await multistream.confirm(stream, protocol)
                    response = decode(await read_frame(stream, max_size), response=True)
                except BaseException:
                    stream.reset()
                    raise
        except TimeoutError:
            failure = "timeout"
            log.debug("%s to %s timed out after %.1f s %s", type(message).__name__, peer.peer_id.short(),
                      timeout, stage)
        except PEER_ERRORS as exc:
            failure = str(exc) or type(exc).__name__
            log.debug("%s to %s failed: %s", type(message).__name__, peer.peer_id.short(), failure)
        else:
            if self.running:
                for field in ("closer_peers", "provider_peers"):
                    for info in getattr(response, field, ()):
                        self.swarm.learn(info.peer_id, info.addrs)
                on_response(response)
            return
        if self.running:
            on_failure(failure)

    def _send(self, peer: PeerInfo, message: Any) -> None:
        if type(message) is RPC:
            self._queue_rpc(peer, pubsub_codec.write_frame(message))
        else:
            self.swarm.spawn(self._send_kad(peer, message))

    async def _send_kad(self, peer: PeerInfo, message: Any) -> None:
        try:
            async with asyncio.timeout(self._host_args["kad"].request_timeout * 5):
                stream = await self.swarm.new_stream(peer.peer_id, [KAD_PROTOCOL], peer.addrs, lazy=True)
                try:
                    await stream.write(kad_codec.write_frame(message))
                finally:
                    await _finish(stream)
        except (TimeoutError, *PEER_ERRORS) as exc:
            log.debug("one-way %s to %s lost: %s", type(message).__name__, peer.peer_id.short(), exc)

    async def _serve_kad(self, stream: Stream) -> None:
        await self._serve_requests(stream, kad_codec.MAX_FRAME_SIZE, kad_codec.decode, kad_codec.write_frame)

    async def _serve_reqresp(self, stream: Stream) -> None:
        await self._serve_requests(stream, REQRESP_MAX_FRAME, reqresp.decode,
                                   lambda response: _frame(reqresp.encode(response)))

    async def _serve_requests(self, stream: Stream, max_size: int, decode: Callable[..., Any],
                              encode: Callable[[Any], bytes]) -> None:
        """Answer every request on ``stream`` until the remote closes it (one-way messages get no answer)."""
        sender = await self._sender(stream)
        async for data in self._frames(stream, max_size):
            response = self.host.handle_request(sender, decode(data, response=False))
            if response is not None:
                await stream.write(encode(response))

    # ---- pub-sub streams -------------------------------------------------------------------------

    def _queue_rpc(self, peer: PeerInfo, frame: bytes) -> None:
        out = self._pubsub_out.get(peer.peer_id)
        if out is None:
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            out = (queue, self.swarm.spawn(self._pubsub_writer(peer, queue)))
            self._pubsub_out[peer.peer_id] = out
        if out[0].qsize() < PUBSUB_QUEUE_LIMIT:
            out[0].put_nowait(frame)

    async def _pubsub_writer(self, peer: PeerInfo, queue: asyncio.Queue[bytes]) -> None:
        stream = None
        try:
            stream = await self.swarm.new_stream(peer.peer_id, MESHSUB_PROTOCOLS, peer.addrs)
            while True:
                frames = [await queue.get()]
                while not queue.empty():
                    frames.append(queue.get_nowait())
                await stream.write(b"".join(frames))
        except PEER_ERRORS as exc:
            log.debug("pub-sub stream to %s ended: %s", peer.peer_id.short(), exc or type(exc).__name__)
        except asyncio.CancelledError:
            if stream is not None:  # superseded by a stream on a newer connection, or the node stops
                stream.reset()
            raise
        finally:
            out = self._pubsub_out.get(peer.peer_id)
            if out is not None and out[0] is queue:
                del self._pubsub_out[peer.peer_id]

    async def _serve_pubsub(self, stream: Stream) -> None:
        sender = await self._sender(stream)
        async for data in self._frames(stream, pubsub_codec.MAX_FRAME_SIZE):
            self.host.handle_request(sender, pubsub_codec.decode(data))

    async def _frames(self, stream: Stream, max_size: int) -> AsyncIterator[bytes]:
        """Length-prefixed frames from ``stream`` until the remote closes it cleanly (or the node stops);
        a stream that ends inside a frame raises."""
        while self.running:
            try:
                yield await read_frame(stream, max_size)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                return


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
        result: LookupFinished = await completion(lambda done: kad.find_node(peer.raw, done))
        found = next((p for p in result.peers if p.peer_id == peer), None)
        self._node.record_event("lookup", result.finished - result.started, result.hops, found is not None,
                                None, result.requests)
        return found

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


def _frame(data: bytes) -> bytes:
    return encode_uvarint(len(data)) + data


def _key(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else key


def _as_peer_id(peer: PeerId | str) -> PeerId:
    return peer if isinstance(peer, PeerId) else PeerId.from_base58(peer)


async def _finish(stream: Stream) -> None:
    """Done with ``stream``: close our side (reset it if that fails)."""
    try:
        await stream.close()
    except PEER_ERRORS:
        stream.reset()


__all__ = ["Node", "AsyncioRuntime", "DhtAPI", "PubSubAPI", "Subscription", "completion"]
