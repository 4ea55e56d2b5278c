"""The asyncio runtime: ``p2pnode.interface.Runtime`` on the running event loop, over the node's swarm.

``AsyncioRuntime`` is what the sans-IO ``Host`` is handed: the loop's clock and timers, and each message
carried on the wire under its protocol as ``p2pnode.wire`` registers it: on a stream per request (Kademlia
on ``/ipfs/kad/1.0.0``, application requests on ``/p2pnode/reqresp/1.0.0``), or on one long-lived stream per
peer (pub-sub RPCs on ``/meshsub/1.1.0``). Every registered protocol is served, so a new one needs no code
here. It also runs Identify on every new connection and answers Ping, and turns the swarm's connection
events into the host's. ``p2pnode.runtime.node.Node`` makes one per start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from multiaddr import Multiaddr

from p2pnode import __version__, identify, wire
from p2pnode.framing import CodecError
from p2pnode.identity import PeerId
from p2pnode.kad.messages import PeerInfo, Ping, Pong
from p2pnode.peer_record import OwnRecord, PeerRecordBook
from p2pnode.runtime.swarm import PEER_ERRORS, new_correlation_id
from p2pnode.security.limits import RateLimited
from p2pnode.transports import multistream
from p2pnode.transports.base import Stream, TransportError
from p2pnode.transports.multistream import read_frame
from p2pnode.wire import WireProtocol

if TYPE_CHECKING:
    from p2pnode.runtime.node import Node

log = logging.getLogger("p2pnode.node")

AGENT_VERSION = f"p2pnode/{__version__}"
KAD_PROTOCOL = wire.KAD.ids[0]  # a peer whose Identify lists it joins the routing table (libp2p's rule)
PING_PROTOCOL = "/ipfs/ping/1.0.0"
PING_SIZE = 32
IDENTIFY_WAIT = 2.0  # how long an inbound request waits for Identify to tell the sender's addresses
# Frames queued for one slow peer's long-lived stream before new ones are dropped (pub-sub: gossip recovers them)
OUTBOX_LIMIT = 4096
ONE_WAY_TIMEOUT = 10.0  # how long a one-way message on a stream of its own may take to go out

Outbox = tuple[asyncio.Queue[bytes], asyncio.Task]


class AsyncioRuntime:
    """``Runtime`` on the running event loop: real clock, loop timers, messages over the node's swarm."""

    def __init__(self, node: Node, rng: random.Random):
        self.node = node
        self.swarm = node.swarm
        self.rng = rng
        self._loop = asyncio.get_running_loop()
        self.identified: dict[PeerId, identify.IdentifyInfo] = {}
        self.peer_records = PeerRecordBook()  # the newest signed peer record of each peer
        self._own_record = OwnRecord(node.keypair)
        self._identify_waiters: dict[PeerId, asyncio.Event] = {}
        self._outboxes: dict[tuple[PeerId, WireProtocol], Outbox] = {}  # long-lived streams' queues and writers
        self._quiet_close: set[PeerId] = set()
        # called with (connection, IdentifyInfo) once a peer's Identify arrived (NAT traversal reads its
        # observed address and protocols)
        self.identify_hooks: list[Callable[[Any, identify.IdentifyInfo], None]] = []
        swarm = self.swarm
        swarm.on_connection = self.connection_opened
        swarm.on_disconnect = self.connection_closed
        swarm.admit_stream = self._admit_stream
        swarm.set_handler(identify.PROTOCOL, self._serve_identify)
        swarm.set_handler(PING_PROTOCOL, self._serve_ping)
        for protocol in wire.PROTOCOLS.values():
            for protocol_id in () if protocol.own_streams else protocol.ids:
                swarm.set_handler(protocol_id, partial(self._serve, protocol))

    # ---- the Runtime interface -------------------------------------------------------------------

    def now(self) -> float:
        return self._loop.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, callback)

    def request(self, peer: PeerInfo, message: Any, timeout: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        if type(message) is Ping:
            # The DHT's liveness check. Kademlia's PING is deprecated on the wire (libp2p nodes answer it
            # but never send it): ask over /ipfs/ping/1.0.0 instead.
            self.swarm.spawn(self._ping_for_kad(peer, timeout, on_response, on_failure))
        else:
            self.swarm.spawn(self._ask(peer, wire.protocol_of(message), message, timeout, on_response, on_failure))

    def send(self, peer: PeerInfo, message: Any) -> None:
        protocol = wire.protocol_of(message)
        if protocol.per_peer:
            self._queue(peer, protocol, protocol.frame(message))
        else:
            self.swarm.spawn(self._send_alone(peer, protocol, message))

    def connect(self, peer: PeerInfo) -> None:
        self.swarm.spawn(self._dial(peer))

    def disconnect(self, peer: PeerInfo) -> None:
        self._quiet_close.add(peer.peer_id)
        self.swarm.spawn(self.swarm.disconnect(peer.peer_id))

    # ---- connection events -----------------------------------------------------------------------

    def connection_opened(self, conn) -> None:
        peer = conn.remote_peer
        self._identify_waiters.setdefault(peer, asyncio.Event())
        for key in [key for key in self._outboxes if key[0] == peer]:
            # A newer connection (the peer restarted, or we dialled each other at once): the old one may be
            # dead without our knowing for an idle timeout, so the long-lived stream moves to the new one,
            # taking the frames still queued.
            old_queue, old_writer = self._outboxes.pop(key)
            old_writer.cancel()
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            while not old_queue.empty():
                queue.put_nowait(old_queue.get_nowait())
            self._outboxes[key] = (queue, self.swarm.spawn(self._writer(self.node.info_of(peer), key[1], queue)))
        if conn.outbound:
            self.swarm.learn(peer, [conn.remote_addr])
        self.swarm.spawn(self._identify(conn))
        if self.node.running and not self.node.host.connection_opened(self.node.info_of(peer), conn.outbound):
            log.info("host refused the connection from %s (at its peer limit)", peer.short())
            self._quiet_close.add(peer)
            self.swarm.spawn(conn.close())

    def connection_closed(self, peer: PeerId) -> None:
        self.identified.pop(peer, None)
        self._identify_waiters.pop(peer, None)
        for key in [key for key in self._outboxes if key[0] == peer]:
            self._outboxes.pop(key)[1].cancel()
        if peer in self._quiet_close:
            self._quiet_close.discard(peer)
        elif self.node.running:
            self.node.host.connection_closed(self.node.info_of(peer))

    async def _dial(self, peer: PeerInfo) -> None:
        try:
            await self.swarm.dial(peer.peer_id, peer.addrs)
        except PEER_ERRORS as exc:
            log.debug("dial %s failed: %s", peer.peer_id.short(), exc)
            if self.node.running:
                self.node.host.dial_failed(self.node.info_of(peer.peer_id))
            return
        if self.node.running and peer not in self.node.host.connections:
            # an existing connection (the peer dialled us) the host had not been told of as its own
            self.node.host.connection_opened(self.node.info_of(peer.peer_id), True)

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
        if info.peer_record_error:
            log.info("signed peer record of %s not taken: %s", peer.short(), info.peer_record_error)
        self.swarm.learn(peer, self.peer_records.addresses(peer, info.peer_record, info.listen_addrs))
        if KAD_PROTOCOL in info.protocols and self.node.running:
            self.node.host.dht.add_peer(self.node.info_of(peer))
        for hook in self.identify_hooks:
            hook(conn, info)
        log.debug("identified %s: %s, %d addrs", peer.short(), info.agent_version, len(info.listen_addrs))

    async def _serve_identify(self, stream: Stream) -> None:
        conn = stream.connection
        addrs = tuple(a.to_bytes() for a in self.swarm.advertised_addrs())
        info = identify.IdentifyInfo(
            public_key=self.node.keypair.public_key,
            listen_addrs=addrs,
            protocols=tuple(self.swarm.protocols),
            observed_addr=conn.remote_addr.to_bytes(),
            agent_version=AGENT_VERSION,
            signed_peer_record=self._own_record.sealed(addrs, time.time_ns()),
            kad_puzzle=self.node.host.dht.puzzle if self.node.host is not None else b"",
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
        return self.node.info_of(peer)

    def _admit_stream(self, peer: PeerId) -> bool:
        host = self.node.host
        if host is None or host.admit_stream(peer) is None:
            return True
        log.debug("stream from %s refused: over the stream rate limit", peer.short())
        return False

    async def _throttle(self, size: int) -> None:
        """Wait until ``[resources] bandwidth_limit_mbps`` lets ``size`` more bytes through (one bucket for
        what the node sends and receives on its protocols' streams)."""
        bucket = self.node.bandwidth
        if bucket is None:
            return
        cost = min(float(size), bucket.burst)  # a frame larger than a second's worth waits for a full bucket
        while not bucket.take(self._loop.time(), cost):
            await asyncio.sleep(bucket.wait_time(self._loop.time(), cost))

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

    async def ping(self, peer: PeerId, count: int = 1, timeout: float = 10.0,
                   addrs: Iterable[bytes | str | Multiaddr] = ()) -> list[float]:
        """Round-trip times in seconds of ``count`` pings over one stream (dialling ``addrs`` if needed)."""
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

    async def _ping_for_kad(self, peer: PeerInfo, timeout: float, on_response: Callable[[Any], None],
                            on_failure: Callable[[str], None]) -> None:
        try:
            await self.ping(peer.peer_id, timeout=timeout, addrs=peer.addrs)
        except (TimeoutError, *PEER_ERRORS) as exc:
            if self.node.running:
                on_failure(str(exc) or type(exc).__name__)
        else:
            if self.node.running:
                on_response(Pong())

    # ---- a stream per request ----------------------------------------------------------------------

    async def _ask(self, peer: PeerInfo, protocol: WireProtocol, message: Any, timeout: float,
                   on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        protocol_id = protocol.ids[0]
        frame = protocol.frame(message)
        new_correlation_id(peer.peer_id)
        stage = "opening a stream"
        try:
            async with asyncio.timeout(timeout):
                stream = await self.swarm.new_stream(peer.peer_id, [protocol_id], peer.addrs, lazy=True)
                try:
                    stage = "sending"
                    await self._throttle(len(frame))
                    await stream.write(frame)
                    # One request per stream: closing our side now puts the FIN in the request's packet, and
                    # the answer carries the server's. Three packets a request instead of five.
                    await stream.close()
                    stage = "waiting for the answer"
                    await multistream.confirm(stream, protocol_id)
                    response = protocol.decode(await read_frame(stream, protocol.limit_for(self.node.host)), True)
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
            if self.node.running:
                for field in ("closer_peers", "provider_peers"):  # what Kademlia answers tell of other peers
                    for info in getattr(response, field, ()):
                        self.swarm.learn(info.peer_id, info.addrs)
                on_response(response)
            return
        if self.node.running:
            on_failure(failure)

    async def _send_alone(self, peer: PeerInfo, protocol: WireProtocol, message: Any) -> None:
        """A one-way message of a stream-per-request protocol (Kademlia's ADD_PROVIDER), on its own stream."""
        try:
            async with asyncio.timeout(ONE_WAY_TIMEOUT):
                stream = await self.swarm.new_stream(peer.peer_id, [protocol.ids[0]], peer.addrs, lazy=True)
                try:
                    await stream.write(protocol.frame(message))
                finally:
                    await _finish(stream)
        except (TimeoutError, *PEER_ERRORS) as exc:
            log.debug("one-way %s to %s lost: %s", type(message).__name__, peer.peer_id.short(), exc)

    async def _serve(self, protocol: WireProtocol, stream: Stream) -> None:
        """Hand every message on ``stream`` to the host until the remote closes it, writing back the answers
        (one-way messages, and every message on a long-lived stream, get none)."""
        sender = await self._sender(stream)
        host, decode, frame = self.node.host, protocol.decode, protocol.frame
        async for data in self._frames(stream, protocol.limit_for(host)):
            await self._throttle(len(data))
            try:
                message = decode(data, False)
            except Exception as exc:  # whatever a decoder raises on a peer's bytes is the peer's bad input
                raise CodecError(f"malformed {protocol.name} message: {type(exc).__name__}: {exc}") from exc
            response = host.handle_request(sender, message)
            if type(response) is RateLimited:
                log.debug("%s from %s refused: over the %s rate limit", protocol.name, sender.peer_id.short(),
                          response.scope)
                if protocol.per_peer:
                    continue  # a one-way message on the peer's long-lived stream: dropped, the stream kept
                stream.reset()
                return
            if response is not None:
                frame_bytes = frame(response)
                await self._throttle(len(frame_bytes))
                await stream.write(frame_bytes)

    # ---- one long-lived stream per peer ------------------------------------------------------------

    def _queue(self, peer: PeerInfo, protocol: WireProtocol, frame: bytes) -> None:
        key = (peer.peer_id, protocol)
        out = self._outboxes.get(key)
        if out is None:
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            out = self._outboxes[key] = (queue, self.swarm.spawn(self._writer(peer, protocol, queue)))
        if out[0].qsize() < OUTBOX_LIMIT:
            out[0].put_nowait(frame)

    async def _writer(self, peer: PeerInfo, protocol: WireProtocol, queue: asyncio.Queue[bytes]) -> None:
        key = (peer.peer_id, protocol)
        stream = None
        try:
            stream = await self.swarm.new_stream(peer.peer_id, protocol.ids, peer.addrs)
            while True:
                frames = [await queue.get()]
                while not queue.empty():
                    frames.append(queue.get_nowait())
                await stream.write(b"".join(frames))
        except PEER_ERRORS as exc:
            log.debug("%s stream to %s ended: %s", protocol.name, peer.peer_id.short(), exc or type(exc).__name__)
        except asyncio.CancelledError:
            if stream is not None:  # superseded by a stream on a newer connection, or the node stops
                stream.reset()
            raise
        finally:
            out = self._outboxes.get(key)
            if out is not None and out[0] is queue:
                del self._outboxes[key]

    async def _frames(self, stream: Stream, max_size: int) -> AsyncIterator[bytes]:
        """Length-prefixed frames from ``stream`` until the remote closes it cleanly (or the node stops);
        a stream that ends inside a frame raises."""
        while self.node.running:
            try:
                yield await read_frame(stream, max_size)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                return


async def _finish(stream: Stream) -> None:
    """Done with ``stream``: close our side (reset it if that fails)."""
    try:
        await stream.close()
    except PEER_ERRORS:
        stream.reset()
