"""The libp2p TCP transport: TCP, then multistream-select ``/noise``, the Noise XX handshake, then
multistream-select ``/yamux/1.0.0`` inside the secure channel, then Yamux streams (libp2p specs
``connections/README.md``, ``noise/README.md``; hashicorp's yamux ``spec.md``).

Addresses are ``/ip4/<addr>/tcp/<port>`` or ``/ip6/<addr>/tcp/<port>``, optionally ending in ``/p2p/<id>``
when dialling. Each side gives the whole upgrade ``handshake_timeout`` seconds (10 by default). An inbound
connection whose upgrade fails is closed and logged (logger ``p2pnode.transports.tcp``); nothing a remote
sends raises into the event loop.

The socket is an ``asyncio.Protocol``: during the upgrade it buffers bytes for ``readexactly``; afterwards
every ``data_received`` is decrypted and fed to the connection's sans-IO ``YamuxSession`` straight away,
and what the session queues is encrypted and written in one piece, so a bulk transfer costs a few Python
calls per 64 KiB.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable

from multiaddr import Multiaddr

from p2pnode.identity import Keypair, PeerId
from p2pnode.peerlog import PeerLog
from p2pnode.resources import ResourceManager
from p2pnode.transports import multistream, noise, yamux
from p2pnode.transports.addresses import ip_endpoint, ip_multiaddr
from p2pnode.transports.base import Connection, Transport, TransportError

logger = logging.getLogger("p2pnode.transports.tcp")

HANDSHAKE_TIMEOUT = 10.0
_HANDSHAKE_BUFFER_LIMIT = 256 * 1024  # bytes buffered before the upgrade reads them; more pauses reading
_WRITE_BUFFER_HIGH = 1024 * 1024  # asyncio's write-buffer high-water mark (writers wait above it)


class _TcpProtocol(asyncio.Protocol):
    """A TCP socket: ``readexactly``/``write`` during the upgrade, then bytes pushed to a sink."""

    def __init__(self, on_made: Callable[[_TcpProtocol], None] | None = None):
        self.transport: asyncio.Transport | None = None
        self._on_made = on_made
        self._buffer = bytearray()
        self._eof = False
        self._lost = False
        self._reading_paused = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._throttled = False  # reading paused until writing resumes (see throttle)
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._sink: Callable[[bytes], None] | None = None
        self._on_lost: Callable[[str], None] | None = None

    # ---- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - not a TCP socket
                pass
        transport.set_write_buffer_limits(high=_WRITE_BUFFER_HIGH)
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        if self._sink is not None:
            self._sink(data)
            return
        self._buffer += data
        if len(self._buffer) > _HANDSHAKE_BUFFER_LIMIT and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        self._report_lost("connection closed by the remote")
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = True
        self._wake_reader()
        self._wake_drainers()
        self._report_lost(f"connection lost: {exc}" if exc else "connection closed")

    def _report_lost(self, reason: str) -> None:
        if self._on_lost is not None:
            try:
                self._on_lost(reason)
            except Exception:  # a close callback's bug must not escape into the event loop
                logger.exception("error while closing the connection")

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._throttled:
            self._throttled = False
            if not self._lost and self.transport is not None:
                self.transport.resume_reading()
        self._wake_drainers()

    def throttle(self) -> None:
        """Pause reading until asyncio's write buffer is below its low-water mark again."""
        if self._write_paused and not self._throttled and not self._lost and self.transport is not None:
            self._throttled = True
            self.transport.pause_reading()

    # ---- the upgrade's side ----------------------------------------------------------------------------

    async def readexactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if self._eof:
                partial = bytes(self._buffer)
                self._buffer.clear()
                raise asyncio.IncompleteReadError(partial, n)
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        if self._reading_paused and len(self._buffer) <= _HANDSHAKE_BUFFER_LIMIT // 2 and not self._lost:
            self._reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        if self._lost or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(data)
        await self.drain()

    async def drain(self) -> None:
        """Wait while asyncio's write buffer is above its high-water mark (returns if the socket is gone)."""
        if not self._write_paused or self._lost:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._drain_waiters:
                self._drain_waiters.remove(waiter)

    def attach(self, sink: Callable[[bytes], None], on_lost: Callable[[str], None]) -> None:
        """Push every further byte to ``sink`` (starting with what is buffered); ``on_lost`` once the socket
        ends."""
        self._sink = sink
        self._on_lost = on_lost
        data, self._buffer = bytes(self._buffer), bytearray()
        if self._reading_paused and not self._lost and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        if data:
            sink(data)
        if self._eof:
            on_lost("connection closed by the remote")

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _wake_reader(self) -> None:
        if self._read_waiter is not None and not self._read_waiter.done():
            self._read_waiter.set_result(None)

    def _wake_drainers(self) -> None:
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()


class _NoiseLink:
    """The Yamux session's byte pipe: Noise transport messages on the TCP socket."""

    def __init__(self, protocol: _TcpProtocol, cipher: noise.NoiseCipher):
        self._protocol = protocol
        self._cipher = cipher
        assert protocol.transport is not None
        self._transport = protocol.transport

    def write(self, data: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(self._cipher.encrypt(data))

    async def drain(self) -> None:
        await self._protocol.drain()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    @property
    def write_blocked(self) -> bool:
        return self._protocol._write_paused

    def throttle(self) -> None:
        self._protocol.throttle()


class TcpConnection(yamux.YamuxConnection):
    transport = "tcp"

    def __init__(
        self,
        session: yamux.YamuxSession,
        link: _NoiseLink,
        *,
        local_peer: PeerId,
        remote_peer: PeerId,
        local_addr: Multiaddr,
        remote_addr: Multiaddr,
        outbound: bool,
    ):
        super().__init__(session, link)
        self.local_peer = local_peer
        self.remote_peer = remote_peer
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        self.outbound = outbound


def _parse_addr(addr: Multiaddr) -> tuple[str, int, socket.AddressFamily, PeerId | None]:
    """``(host, port, family, peer)`` of ``/ip4|ip6/<host>/tcp/<port>[/p2p/<id>]``; ValueError otherwise."""
    host, port, peer = ip_endpoint(addr, "tcp")
    return host, port, socket.AF_INET6 if ":" in host else socket.AF_INET, peer


def _to_multiaddr(sockaddr: tuple) -> Multiaddr:
    return ip_multiaddr(str(sockaddr[0]), sockaddr[1], "tcp")


class TcpTransport(Transport):
    """Dials and listens on TCP; every connection is Noise-secured and Yamux-multiplexed."""

    name = "tcp"

    def __init__(
        self,
        keypair: Keypair,
        *,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        max_inbound_streams: int = yamux.MAX_INBOUND_STREAMS,
        window: int = yamux.INITIAL_WINDOW,
        resources: ResourceManager | None = None,
    ):
        self.keypair = keypair
        self.resources = resources or ResourceManager()
        self.peer_id = keypair.peer_id
        self.handshake_timeout = handshake_timeout
        self.max_inbound_streams = max_inbound_streams
        self.window = window
        self._credentials = noise.NoiseCredentials(keypair)
        self._servers: list[asyncio.Server] = []
        self._handshakes: set[asyncio.Task[None]] = set()
        self._handshake_sources: Counter[str] = Counter()  # inbound upgrades in progress per source host
        self.peer_log = PeerLog(logger, time.monotonic)  # failed inbound upgrades, per source address
        self._connections: set[TcpConnection] = set()
        self._closed = False

    @property
    def connections(self) -> list[TcpConnection]:
        return list(self._connections)

    def can_dial(self, addr: Multiaddr) -> bool:
        try:
            _, port, _, _ = _parse_addr(addr)
        except Exception:  # the multiaddr package raises a variety of errors for odd input
            return False
        return port != 0

    async def dial(self, addr: Multiaddr, peer_id: PeerId | None = None) -> Connection:
        if self._closed:
            raise TransportError("transport is closed")
        host, port, family, addr_peer = _parse_addr(addr)
        if peer_id is not None and addr_peer is not None and peer_id != addr_peer:
            raise TransportError(f"{addr} names a peer other than {peer_id}")
        expected = peer_id if peer_id is not None else addr_peer
        loop = asyncio.get_running_loop()
        protocol: _TcpProtocol | None = None
        try:
            async with asyncio.timeout(self.handshake_timeout):
                _, protocol = await loop.create_connection(_TcpProtocol, host, port, family=family)
                conn = await self._upgrade(protocol, outbound=True, expected=expected)
        except BaseException as exc:
            if protocol is not None:
                protocol.abort()
            if isinstance(exc, TimeoutError):
                raise TransportError(f"dialling {addr} timed out after {self.handshake_timeout} s") from exc
            if isinstance(exc, asyncio.IncompleteReadError):
                raise TransportError(f"{addr} closed the connection during the upgrade") from exc
            raise
        if self._closed:  # the transport closed while we were dialling
            await conn.close()
            raise TransportError("transport is closed")
        return conn

    async def listen(self, addr: Multiaddr, on_connection: Callable[[Connection], None]) -> Multiaddr:
        if self._closed:
            raise TransportError("transport is closed")
        host, port, family, _ = _parse_addr(addr)
        loop = asyncio.get_running_loop()

        def accepted(protocol: _TcpProtocol) -> None:
            assert protocol.transport is not None
            source = str((protocol.transport.get_extra_info("peername") or ("?",))[0])
            if self._closed or not self.resources.admit_handshake(len(self._handshakes),
                                                                 self._handshake_sources[source]):
                protocol.abort()
                return
            self._handshake_sources[source] += 1
            task = loop.create_task(self._inbound(protocol, on_connection))
            self._handshakes.add(task)
            task.add_done_callback(lambda t: self._handshake_done(t, source))

        server = await loop.create_server(
            lambda: _TcpProtocol(on_made=accepted), host, port, family=family, reuse_address=True
        )
        self._servers.append(server)
        return _to_multiaddr(server.sockets[0].getsockname())

    async def close(self) -> None:
        self._closed = True
        for server in self._servers:
            server.close()
        for task in list(self._handshakes):
            task.cancel()
        for conn in list(self._connections):
            await conn.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self._handshakes:
            await asyncio.gather(*self._handshakes, return_exceptions=True)

    # ---- internals -------------------------------------------------------------------------------------

    def _handshake_done(self, task: asyncio.Task[None], source: str) -> None:
        self._handshakes.discard(task)
        self._handshake_sources[source] -= 1
        if self._handshake_sources[source] <= 0:
            del self._handshake_sources[source]

    async def _inbound(self, protocol: _TcpProtocol, on_connection: Callable[[Connection], None]) -> None:
        assert protocol.transport is not None
        peer = protocol.transport.get_extra_info("peername")
        try:
            async with asyncio.timeout(self.handshake_timeout):
                conn = await self._upgrade(protocol, outbound=False, expected=None)
        except asyncio.CancelledError:
            protocol.abort()
            raise
        except Exception as exc:
            protocol.abort()
            reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            self.peer_log.report(peer[0] if peer else None, "inbound connection from %s failed its upgrade: %s",
                                 peer, reason)
            return
        try:
            on_connection(conn)
        except Exception:
            logger.exception("on_connection callback failed for %r; closing it", conn)
            await conn.close()

    async def _upgrade(self, protocol: _TcpProtocol, *, outbound: bool, expected: PeerId | None) -> TcpConnection:
        if outbound:
            await multistream.select(protocol, [noise.PROTOCOL_ID])
        else:
            await multistream.handle(protocol, [noise.PROTOCOL_ID])
        remote, cipher = await noise.handshake(protocol, self._credentials, initiator=outbound, expected_peer=expected)
        channel = noise.SecureChannel(protocol, cipher)
        if outbound:
            await multistream.select(channel, [yamux.PROTOCOL_ID])
        else:
            await multistream.handle(channel, [yamux.PROTOCOL_ID])

        transport = protocol.transport
        assert transport is not None
        if transport.is_closing():
            raise TransportError("connection closed during the upgrade")
        session = yamux.YamuxSession(
            is_client=outbound, max_inbound_streams=self.max_inbound_streams, window=self.window
        )
        conn = TcpConnection(
            session,
            _NoiseLink(protocol, cipher),
            local_peer=self.peer_id,
            remote_peer=remote,
            local_addr=_to_multiaddr(transport.get_extra_info("sockname")),
            remote_addr=_to_multiaddr(transport.get_extra_info("peername")),
            outbound=outbound,
        )
        conn.resources = self.resources
        self._connections.add(conn)
        conn.on_close(self._connections.discard)

        def on_data(data: bytes) -> None:
            try:
                plaintext = cipher.decrypt(data)
                if plaintext:
                    conn._receive(plaintext)
            except noise.NoiseError as exc:
                logger.info("closing %r: %s", conn, exc)
                transport.abort()
                conn._link_lost(str(exc))
            except Exception:  # a bug of ours: drop the connection rather than the event loop's callback
                logger.exception("closing %r after an internal error", conn)
                transport.abort()
                conn._link_lost("internal error")

        leftover = channel.leftover()
        if leftover:
            conn._receive(leftover)
        protocol.attach(on_data, conn._link_lost)
        return conn


__all__ = ["TcpTransport", "TcpConnection", "HANDSHAKE_TIMEOUT"]
