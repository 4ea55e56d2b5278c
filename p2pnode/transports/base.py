"""What every transport gives the node: secured, multiplexed connections made of byte streams.

A transport (QUIC, or TCP + Noise + Yamux) dials and listens on multiaddrs and hands back ``Connection``
objects whose remote peer ID has been authenticated by the handshake. A connection opens and accepts
``Stream`` objects; the node runs multistream-select on each stream before speaking a protocol on it.

``Stream`` here is the buffered reading side shared by all transports: a transport subclass feeds it the
bytes, end of stream and resets it receives (``_feed``, ``_feed_eof``, ``_feed_reset``) and implements the
sending side (``_send``, ``_send_fin``, ``_send_reset``).

Flow control gives the sender credit back (``_consumed``) for bytes the application has taken, and also for
bytes a waiting ``readexactly(n)`` has asked for: a reader that needs a whole frame larger than the
transport's window (a 1 MiB pub-sub message over Yamux's 256 KiB) would otherwise wait for bytes the sender
may not send, and the stream would stall for good. So one stream buffers at most what its reader asked for
plus one window.

Every buffered byte is reserved with the connection's ``ResourceManager`` (``p2pnode.resources``) before
it is kept: a stream, a peer and the node each buffer at most their limit, and a stream whose bytes would
pass one is reset (the refusal counted). A frame's body read with ``read_frame`` must keep arriving: a
read that waits ``frame_idle_timeout`` seconds for more of it resets the stream.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable

from multiaddr import Multiaddr

from p2pnode.identity import PeerId
from p2pnode.resources import ResourceManager


class TransportError(Exception):
    """A connection or stream that failed: refused, timed out, closed or reset."""


class HandshakeError(TransportError):
    """The security handshake failed, or authenticated a peer other than the one dialled."""


class StreamReset(TransportError):
    """The stream was reset (by either side) or its connection closed under it."""


class ConnectionClosed(TransportError):
    """The connection is closed: no more streams can be opened or accepted."""


class Stream(ABC):
    """One bidirectional byte stream of a connection (a QUIC stream or a Yamux stream)."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.protocol: str | None = None  # set once multistream-select agreed on one
        self._buffer = bytearray()
        self._credited = 0  # bytes at the head of _buffer already credited to flow control (see _claim)
        self._reserved = 0  # bytes of _buffer reserved with the connection's resource manager
        self._eof = False
        self._error: TransportError | None = None
        self._write_closed = False
        self._waiter: asyncio.Future[None] | None = None

    # ---- the transport's side --------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self._eof or self._error is not None:
            return
        resources = self.connection.resources
        if resources is not None:
            refused = resources.reserve_buffer(self.connection.remote_peer, self._reserved, len(data))
            if refused is not None:
                self._refuse(f"over the {refused} limit")
                self._consumed(len(data))  # never buffered: flow control must not count it as unread
                return
            self._reserved += len(data)
        self._buffer += data
        self._wake()

    def _release(self, size: int) -> None:
        """``size`` reserved bytes left the buffer (read, or dropped with the stream)."""
        size = min(size, self._reserved)
        if size > 0:
            self._reserved -= size
            self.connection.resources.release_buffer(self.connection.remote_peer, size)

    def _refuse(self, why: str) -> None:
        """Reset the stream for going over a resource limit: its buffer is dropped, the remote sees a reset."""
        self._error = StreamReset(f"stream refused: {why}")
        self._drop_buffer()
        self._send_reset()
        self._wake()

    def _drop_buffer(self) -> None:
        uncredited = self._uncredited()
        self._release(self._reserved)
        self._buffer.clear()
        self._credited = 0
        if uncredited > 0:  # flow control counts them as read now (QUIC's connection window)
            self._consumed(uncredited)

    def _feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def _feed_reset(self, error: TransportError | None = None) -> None:
        if self._error is None:
            self._error = error or StreamReset("stream reset by the remote peer")
        # What the stream buffered stays readable until its reader sees the reset, but no longer counts
        # against the peer: the reader's task ends with the reset (and the buffer with it).
        self._release(self._reserved)
        self._wake()

    def _consumed(self, n: int) -> None:  # noqa: B027 - optional hook: flow control credits
        """``n`` more buffered bytes are the application's: read, or claimed by a waiting read (Yamux sends
        window updates from here)."""

    def _uncredited(self) -> int:
        """Buffered bytes flow control still counts against the window."""
        return len(self._buffer) - self._credited

    def _claim(self, n: int) -> None:
        """A read waits for ``n`` bytes: credit the buffered ones among them now, so the sender can go on."""
        claimed = min(n, len(self._buffer))
        if claimed > self._credited:
            more, self._credited = claimed - self._credited, claimed
            self._consumed(more)

    def _take(self, n: int) -> bytes:
        """The first ``n`` buffered bytes, removed from the buffer and credited."""
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        credited = min(len(data), self._credited)
        self._credited -= credited
        self.connection.bytes_in += len(data)
        self._release(len(data))
        if len(data) > credited:
            self._consumed(len(data) - credited)
        return data

    @abstractmethod
    async def _send(self, data: bytes) -> None: ...

    @abstractmethod
    async def _send_fin(self) -> None: ...

    @abstractmethod
    def _send_reset(self) -> None: ...

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # ---- the application's side ------------------------------------------------------------------

    @property
    def is_reset(self) -> bool:
        return self._error is not None

    async def read(self, n: int = 65536) -> bytes:
        """Up to ``n`` bytes; ``b""`` once the remote closed its side. Raises ``StreamReset``."""
        while not self._buffer and not self._eof and self._error is None:
            await self._wait()
        if self._buffer:
            return self._take(n)
        if self._error is not None:
            raise self._error
        return b""

    @property
    def frame_idle_timeout(self) -> float | None:
        """Seconds a started frame may go without a byte before its stream is reset (None: no limit)."""
        resources = self.connection.resources
        return resources.limits.frame_idle_timeout if resources is not None else None

    async def readexactly(self, n: int, idle_timeout: float | None = None) -> bytes:
        """Exactly ``n`` bytes; ``asyncio.IncompleteReadError`` if the stream ends first. With
        ``idle_timeout``, a wait of that long without a byte resets the stream (``StreamReset``)."""
        while len(self._buffer) < n:
            if self._error is not None:
                raise self._error
            if self._eof:
                raise asyncio.IncompleteReadError(self._take(len(self._buffer)), n)
            self._claim(n)
            if idle_timeout is None:
                await self._wait()
                continue
            try:
                async with asyncio.timeout(idle_timeout):
                    await self._wait()
            except TimeoutError:
                resources = self.connection.resources
                if resources is not None:
                    resources.refuse("frame_idle")
                self._refuse(f"{len(self._buffer)} of {n} bytes, then nothing for {idle_timeout:g} s")
                raise self._error from None
        return self._take(n)

    async def write(self, data: bytes) -> None:
        """Send ``data``; waits while the transport's flow control says the peer cannot take more."""
        if self._error is not None:
            raise self._error
        if self._write_closed:
            raise StreamReset("write after close")
        if data:
            self.connection.bytes_out += len(data)
            await self._send(data)

    async def close(self) -> None:
        """Close our sending side (the remote reads end of stream); reading goes on."""
        if not self._write_closed and self._error is None:
            self._write_closed = True
            await self._send_fin()

    def reset(self) -> None:
        """Abort both directions at once (what is buffered is dropped)."""
        if self._error is None:
            self._error = StreamReset("stream reset locally")
            self._send_reset()
        self._drop_buffer()
        self._wake()


class Connection(ABC):
    """A secured, multiplexed connection to one authenticated peer."""

    transport: str  # "quic" or "tcp"
    local_peer: PeerId
    remote_peer: PeerId
    local_addr: Multiaddr  # without /p2p
    remote_addr: Multiaddr
    outbound: bool  # we dialled
    resources: ResourceManager | None = None  # what its streams' buffers are reserved with (set by the transport)

    def __init__(self) -> None:
        self._inbound: asyncio.Queue[Stream | None] = asyncio.Queue()
        self._close_callbacks: list[Callable[[Connection], None]] = []
        self.closed = False
        self.bytes_in = 0  # application bytes read and written on this connection's streams
        self.bytes_out = 0

    @abstractmethod
    async def open_stream(self) -> Stream:
        """A new outbound stream (raises ``ConnectionClosed``)."""

    async def accept_stream(self) -> Stream:
        """The next stream the remote opened; raises ``ConnectionClosed`` once the connection is gone."""
        stream = await self._inbound.get()
        if stream is None:
            self._inbound.put_nowait(None)  # let every other waiter see the end too
            raise ConnectionClosed("connection closed")
        return stream

    @abstractmethod
    async def close(self) -> None:
        """Close the connection and reset its open streams; idempotent."""

    def on_close(self, callback: Callable[[Connection], None]) -> None:
        """Call ``callback(connection)`` once when the connection closes, for whatever reason."""
        if self.closed:
            callback(self)
        else:
            self._close_callbacks.append(callback)

    # ---- for transports --------------------------------------------------------------------------

    def _stream_opened_by_remote(self, stream: Stream) -> None:
        self._inbound.put_nowait(stream)

    def _closed(self) -> None:
        """Mark closed, wake stream acceptors and run close callbacks (once)."""
        if self.closed:
            return
        self.closed = True
        self._inbound.put_nowait(None)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            callback(self)

    def __repr__(self) -> str:
        direction = "to" if self.outbound else "from"
        return f"<{type(self).__name__} {direction} {self.remote_peer.short()} at {self.remote_addr}>"


class Transport(ABC):
    """Dials and listens for one family of multiaddrs."""

    name: str

    @abstractmethod
    def can_dial(self, addr: Multiaddr) -> bool:
        """Whether ``addr`` (with or without /p2p) is one this transport dials."""

    @abstractmethod
    async def dial(self, addr: Multiaddr, peer_id: PeerId | None = None) -> Connection:
        """Connect and authenticate; ``peer_id`` (or the /p2p part of ``addr``), if given, must be who
        answers, else ``HandshakeError``. Other failures raise ``TransportError`` or ``OSError``."""

    @abstractmethod
    async def listen(self, addr: Multiaddr, on_connection: Callable[[Connection], None]) -> Multiaddr:
        """Listen on ``addr`` (port 0 picks one) and return the bound address; every authenticated
        inbound connection is handed to ``on_connection``."""

    @abstractmethod
    async def close(self) -> None:
        """Stop listening and close every connection of this transport."""
