"""The asyncio runtime: ``p2pnode.interface.Runtime`` on the running event loop, over the node's swarm.

``AsyncioRuntime`` is what the sans-IO ``Host`` is handed: the loop's clock and timers, and each message
carried on the wire under its libp2p protocol: Kademlia messages on ``/ipfs/kad/1.0.0`` (a stream per request,
as libp2p does), pub-sub RPCs on one long-lived ``/meshsub/1.1.0`` stream per peer, application requests on
``/p2pnode/reqresp/1.0.0``. It also runs Identify on every new connection and answers Ping, and turns the
swarm's connection events into the host's. ``p2pnode.runtime.node.Node`` makes one per start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from multiaddr import Multiaddr

from p2pnode import __version__, identify, reqresp
from p2pnode.framing import encode_uvarint
from p2pnode.identity import PeerId
from p2pnode.kad import codec as kad_codec
from p2pnode.kad.messages import PeerInfo, Ping, Pong
from p2pnode.peer_record import OwnRecord, PeerRecordBook
from p2pnode.pubsub import codec as pubsub_codec
from p2pnode.pubsub.messages import RPC
from p2pnode.runtime.swarm import PEER_ERRORS, new_correlation_id
from p2pnode.transports import multistream
from p2pnode.transports.base import Stream, TransportError
from p2pnode.transports.multistream import read_frame

if TYPE_CHECKING:
    from p2pnode.runtime.node import Node

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
        self._pubsub_out: dict[PeerId, tuple[asyncio.Queue[bytes], asyncio.Task]] = {}
        self._quiet_close: set[PeerId] = set()
        swarm = self.swarm
        swarm.on_connection = self.connection_opened
        swarm.on_disconnect = self.connection_closed
        swarm.set_handler(identify.PROTOCOL, self._serve_identify)
        swarm.set_handler(PING_PROTOCOL, self._serve_ping)
        swarm.set_handler(KAD_PROTOCOL, self._serve_kad)
        for protocol in MESHSUB_PROTOCOLS:
            swarm.set_handler(protocol, self._serve_pubsub)
        swarm.set_handler(REQRESP_PROTOCOL, self._serve_reqresp)

    # ---- the Runtime interface -------------------------------------------------------------------

    def now(self) -> float:
        return self._loop.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, callback)

    def request(self, peer: PeerInfo, message: Any, timeout: float,
                on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        self.swarm.spawn(self._ask(peer, message, timeout, on_response, on_failure))

    def send(self, peer: PeerInfo, message: Any) -> None:
        if type(message) is RPC:
            self._queue_rpc(peer, pubsub_codec.write_frame(message))
        else:
            self.swarm.spawn(self._send_kad(peer, message))

    def connect(self, peer: PeerInfo) -> None:
        self.swarm.spawn(self._dial(peer))

    def disconnect(self, peer: PeerInfo) -> None:
        self._quiet_close.add(peer.peer_id)
        self.swarm.spawn(self.swarm.disconnect(peer.peer_id))

    # ---- connection events -----------------------------------------------------------------------

    def connection_opened(self, conn) -> None:
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
            self._pubsub_out[peer] = (queue, self.swarm.spawn(self._pubsub_writer(self.node.info_of(peer), queue)))
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
        out = self._pubsub_out.pop(peer, None)
        if out is not None:
            out[1].cancel()
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

    # ---- requests (Kademlia, application request/response) ---------------------------------------

    async def _ask(self, peer: PeerInfo, message: Any, timeout: float,
                       on_response: Callable[[Any], None], on_failure: Callable[[str], None]) -> None:
        if type(message) is Ping:
            # The DHT's liveness check. Kademlia's PING is deprecated on the wire (libp2p nodes answer it
            # but never send it): ask over /ipfs/ping/1.0.0 instead.
            try:
                await self.ping(peer.peer_id, timeout=timeout, addrs=peer.addrs)
            except (TimeoutError, *PEER_ERRORS) as exc:
                if self.node.running:
                    on_failure(str(exc) or type(exc).__name__)
            else:
                if self.node.running:
                    on_response(Pong())
            return
        if type(message) is reqresp.AppRequest:
            protocol, frame = REQRESP_PROTOCOL, _frame(reqresp.encode(message))
            max_size, decode = REQRESP_MAX_FRAME, reqresp.decode
        else:
            protocol, frame = KAD_PROTOCOL, kad_codec.write_frame(message)
            max_size, decode = self._kad_frame_limit(), kad_codec.decode
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
            if self.node.running:
                for field in ("closer_peers", "provider_peers"):
                    for info in getattr(response, field, ()):
                        self.swarm.learn(info.peer_id, info.addrs)
                on_response(response)
            return
        if self.node.running:
            on_failure(failure)

    async def _send_kad(self, peer: PeerInfo, message: Any) -> None:
        try:
            async with asyncio.timeout(self.node.host.dht.config.request_timeout * 5):
                stream = await self.swarm.new_stream(peer.peer_id, [KAD_PROTOCOL], peer.addrs, lazy=True)
                try:
                    await stream.write(kad_codec.write_frame(message))
                finally:
                    await _finish(stream)
        except (TimeoutError, *PEER_ERRORS) as exc:
            log.debug("one-way %s to %s lost: %s", type(message).__name__, peer.peer_id.short(), exc)

    async def _serve_kad(self, stream: Stream) -> None:
        await self._serve_requests(stream, self._kad_frame_limit(), kad_codec.decode, kad_codec.write_frame)

    async def _serve_reqresp(self, stream: Stream) -> None:
        await self._serve_requests(stream, REQRESP_MAX_FRAME, reqresp.decode,
                                   lambda response: _frame(reqresp.encode(response)))

    async def _serve_requests(self, stream: Stream, max_size: int, decode: Callable[..., Any],
                              encode: Callable[[Any], bytes]) -> None:
        """Answer every request on ``stream`` until the remote closes it (one-way messages get no answer)."""
        sender = await self._sender(stream)
        async for data in self._frames(stream, max_size):
            response = self.node.host.handle_request(sender, decode(data, response=False))
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
        async for data in self._frames(stream, self._pubsub_frame_limit()):
            self.node.host.handle_request(sender, pubsub_codec.decode(data))

    # Frame limits follow the configured sizes, so a record or message the protocol allows always fits.

    def _kad_frame_limit(self) -> int:
        return self.node.host.dht.config.max_record_size + kad_codec.FRAME_OVERHEAD

    def _pubsub_frame_limit(self) -> int:
        router = self.node.host.pubsub
        largest = router.config.max_message_size if router is not None else pubsub_codec.MAX_MESSAGE_SIZE
        return largest + pubsub_codec.FRAME_OVERHEAD

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


def _frame(data: bytes) -> bytes:
    return encode_uvarint(len(data)) + data


async def _finish(stream: Stream) -> None:
    """Done with ``stream``: close our side (reset it if that fails)."""
    try:
        await stream.close()
    except PEER_ERRORS:
        stream.reset()
