"""Yamux (``/yamux/1.0.0``): many byte streams over one ordered, reliable connection.

The wire format is hashicorp's ``spec.md`` as libp2p uses it. Every frame starts with a 12-byte big-endian
header: version (0), type (DATA, WINDOW_UPDATE, PING, GO_AWAY), flags (SYN, ACK, FIN, RST), stream ID and a
length (the payload size of a DATA frame, the window delta of a WINDOW_UPDATE, the opaque value of a PING,
the error code of a GO_AWAY). The dialler (client) numbers its streams with odd IDs, the listener with even
ones. Each direction of each stream starts with a 256 KiB window; a receiver grants more with
WINDOW_UPDATE as its application consumes data, and a sender never has more than the window in flight.

Two layers:

``YamuxSession`` is sans-IO (like aioquic's ``QuicConnection``): ``receive_data`` takes the bytes that
arrived and returns events, the local operations (``open_stream``, ``send_data``, ``send_fin``, ...) queue
frames, and ``data_to_send`` hands back the bytes to write. It does no I/O and keeps no clock, so the
protocol logic can be property-tested by shuffling bytes between two sessions. A peer that breaks the
protocol (bad version or type, a window overrun, a bogus SYN) gets a GO_AWAY with the protocol-error code
and a ``ConnectionTerminated`` event; nothing a peer sends makes the session raise.

``YamuxConnection`` / ``YamuxStream`` are the asyncio glue to the node's ``Connection`` / ``Stream``
interface, over a ``Link`` that carries the session's bytes (for TCP: Noise over the socket).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass
from typing import Protocol

from p2pnode.transports.base import Connection, ConnectionClosed, Stream, StreamReset, TransportError

logger = logging.getLogger(__name__)

PROTOCOL_ID = "/yamux/1.0.0"

HEADER = struct.Struct(">BBHII")
HEADER_SIZE = HEADER.size  # 12
VERSION = 0

TYPE_DATA = 0
TYPE_WINDOW_UPDATE = 1
TYPE_PING = 2
TYPE_GO_AWAY = 3

FLAG_SYN = 0x1
FLAG_ACK = 0x2
FLAG_FIN = 0x4
FLAG_RST = 0x8

GO_AWAY_NORMAL = 0
GO_AWAY_PROTOCOL_ERROR = 1
GO_AWAY_INTERNAL_ERROR = 2

INITIAL_WINDOW = 256 * 1024
"""Every stream's window in each direction when it opens (the spec's fixed starting point)."""
MAX_STREAM_ID = 2**32 - 1
MAX_INBOUND_STREAMS = 1000
"""Streams the remote may have open on one connection at once; further SYNs are answered with RST."""
MAX_CONTROL_BACKLOG = 256
"""PING answers waiting behind a blocked link before reading pauses (without a resource manager)."""
MAX_DATA_FRAME = 65535 - 16 - HEADER_SIZE
"""Largest DATA payload we send: with its header it fills one Noise transport message exactly."""


class YamuxError(TransportError):
    """A local operation the session cannot do: unknown or closed stream, or a session that has ended."""


# ---- events ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The remote opened ``stream_id`` (already acknowledged)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class DataReceived:
    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The remote closed its sending side of ``stream_id`` (FIN)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamWasReset:
    """The remote reset ``stream_id`` (RST), refused our SYN, or broke the stream's rules."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class WindowUpdated:
    """We may send more on ``stream_id`` (``send_window`` grew)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PingAcknowledged:
    """The remote answered our ping ``value``."""

    value: int


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    """The remote will accept no new streams; existing ones continue."""

    code: int


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The session is over (a protocol error, ours or the peer's): close the underlying connection."""

    code: int
    reason: str


Event = (
    StreamOpened
    | DataReceived
    | StreamEnded
    | StreamWasReset
    | WindowUpdated
    | PingAcknowledged
    | GoAwayReceived
    | ConnectionTerminated
)


class _StreamState:
    __slots__ = ("stream_id", "inbound", "send_window", "recv_window", "unacknowledged", "local_fin", "remote_fin")

    def __init__(self, stream_id: int, inbound: bool, recv_window: int):
        self.stream_id = stream_id
        self.inbound = inbound
        self.send_window = INITIAL_WINDOW  # what the remote lets us send
        self.recv_window = recv_window  # what we let the remote send
        self.unacknowledged = 0  # bytes the application consumed that we have not granted back yet
        self.local_fin = False
        self.remote_fin = False


class YamuxSession:
    """The Yamux protocol state of one connection, without I/O.

    ``window`` is the receive window we grant each stream (at least the 256 KiB every peer assumes; a larger
    one is announced with the SYN or ACK); we grant more once the application consumed half of it.
    """

    def __init__(
        self,
        *,
        is_client: bool,
        max_inbound_streams: int = MAX_INBOUND_STREAMS,
        window: int = INITIAL_WINDOW,
        max_frame: int = MAX_DATA_FRAME,
    ):
        if window < INITIAL_WINDOW or window > MAX_STREAM_ID:
            raise ValueError(f"window must be between {INITIAL_WINDOW} and 2**32 - 1 bytes")
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.is_client = is_client
        self.max_inbound_streams = max_inbound_streams
        self.window = window
        self.max_frame = max_frame
        self._next_stream_id = 1 if is_client else 2
        self._streams: dict[int, _StreamState] = {}
        self._inbound_count = 0
        self._out: list[bytes | memoryview] = []
        self._inbuf = bytearray()
        self._next_ping = 1
        self.pongs_queued = 0  # PING answers queued so far (the glue bounds those it cannot write)
        self.local_goaway = False
        self.remote_goaway = False
        self.terminated = False

    # ---- inspection ------------------------------------------------------------------------------------

    def has_stream(self, stream_id: int) -> bool:
        """Whether ``stream_id`` is still open in at least one direction."""
        return stream_id in self._streams

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @property
    def inbound_streams(self) -> int:
        return self._inbound_count

    def send_window(self, stream_id: int) -> int:
        """Bytes we may send on ``stream_id`` right now (0 for an unknown stream)."""
        state = self._streams.get(stream_id)
        return state.send_window if state is not None else 0

    # ---- local operations ------------------------------------------------------------------------------

    def open_stream(self) -> int:
        """A new outbound stream's ID; its SYN is queued at once (we may send data before the ACK)."""
        if self.terminated or self.local_goaway or self.remote_goaway:
            raise YamuxError("the session accepts no new streams")
        stream_id = self._next_stream_id
        if stream_id > MAX_STREAM_ID:
            raise YamuxError("stream IDs exhausted")
        self._next_stream_id += 2
        self._streams[stream_id] = _StreamState(stream_id, inbound=False, recv_window=self.window)
        self._frame(TYPE_WINDOW_UPDATE, FLAG_SYN, stream_id, self.window - INITIAL_WINDOW)
        return stream_id

    def send_data(self, stream_id: int, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as the stream's window allows; returns how many bytes that was.

        The session keeps a view of ``data`` until the next ``data_to_send``: do not change it before then.
        """
        state = self._writable(stream_id)
        size = min(len(data), state.send_window)
        if size <= 0:
            return 0
        view = memoryview(data)
        pack = HEADER.pack
        out = self._out
        offset = 0
        while offset < size:
            chunk = view[offset : offset + min(self.max_frame, size - offset)]
            out.append(pack(VERSION, TYPE_DATA, 0, stream_id, len(chunk)))
            out.append(chunk)
            offset += len(chunk)
        state.send_window -= size
        return size

    def send_fin(self, stream_id: int) -> None:
        """Close our sending side of ``stream_id`` (half-close)."""
        state = self._writable(stream_id)
        state.local_fin = True
        self._frame(TYPE_WINDOW_UPDATE, FLAG_FIN, stream_id, 0)
        if state.remote_fin:
            self._forget(state)

    def reset_stream(self, stream_id: int) -> None:
        """Abort ``stream_id`` in both directions (a no-op for a stream that is already gone)."""
        state = self._streams.get(stream_id)
        if state is None or self.terminated:
            return
        self._frame(TYPE_WINDOW_UPDATE, FLAG_RST, stream_id, 0)
        self._forget(state)

    def consume(self, stream_id: int, size: int) -> None:
        """The application read ``size`` bytes of ``stream_id``: grant them back once they add up to half
        a window (fewer, larger WINDOW_UPDATEs)."""
        state = self._streams.get(stream_id)
        if state is None or state.remote_fin or self.terminated or size <= 0:
            return
        state.unacknowledged += size
        if state.unacknowledged >= self.window // 2:
            delta, state.unacknowledged = state.unacknowledged, 0
            state.recv_window += delta
            self._frame(TYPE_WINDOW_UPDATE, 0, stream_id, delta)

    def ping(self) -> int:
        """Queue a PING; returns the value a ``PingAcknowledged`` event will carry."""
        if self.terminated:
            raise YamuxError("the session has ended")
        value = self._next_ping
        self._next_ping = (self._next_ping + 1) & MAX_STREAM_ID or 1
        self._frame(TYPE_PING, FLAG_SYN, 0, value)
        return value

    def go_away(self, code: int = GO_AWAY_NORMAL) -> None:
        """Tell the remote we accept no new streams (queue GO_AWAY); existing streams continue."""
        if self.terminated or self.local_goaway:
            return
        self.local_goaway = True
        self._frame(TYPE_GO_AWAY, 0, 0, code)

    def data_to_send(self) -> bytes:
        """The bytes queued since the last call (b"" when there are none)."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    # ---- the remote's frames ---------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Take bytes from the remote (any chunking) and return the events of the frames they complete."""
        events: list[Event] = []
        if self.terminated or not data:
            return events
        buf = self._inbuf
        if buf:
            buf += data
            source: bytes | bytearray | memoryview = buf
        else:
            source = data
        end = len(source)
        pos = 0
        unpack = HEADER.unpack_from
        while end - pos >= HEADER_SIZE:
            version, kind, flags, stream_id, length = unpack(source, pos)
            if version != VERSION:
                self._terminate(events, f"unsupported yamux version {version}")
                break
            if kind == TYPE_DATA:
                if length > self.window:
                    # No stream can ever have more than our window in flight, so this frame is invalid
                    # whatever its stream: refuse it on the header, before buffering its body.
                    self._terminate(events, f"data frame of {length} bytes exceeds the {self.window}-byte window")
                    break
                frame_end = pos + HEADER_SIZE + length
                if frame_end > end:
                    break
                payload = bytes(source[pos + HEADER_SIZE : frame_end])
                pos = frame_end
                self._on_stream_frame(events, kind, flags, stream_id, length, payload)
            else:
                pos += HEADER_SIZE
                if kind == TYPE_WINDOW_UPDATE:
                    self._on_stream_frame(events, kind, flags, stream_id, length, b"")
                elif kind == TYPE_PING:
                    self._on_ping(events, flags, length)
                elif kind == TYPE_GO_AWAY:
                    self._on_go_away(events, length)
                else:
                    self._terminate(events, f"unknown yamux frame type {kind}")
            if self.terminated:
                break
        if self.terminated:
            self._inbuf = bytearray()
        elif source is buf:
            del buf[:pos]
        elif pos < end:
            self._inbuf = bytearray(source[pos:])
        return events

    def _on_stream_frame(
        self, events: list[Event], kind: int, flags: int, stream_id: int, length: int, payload: bytes
    ) -> None:
        if stream_id == 0:
            self._terminate(events, "stream frame on the session stream ID 0")
            return
        state = self._streams.get(stream_id)
        if flags & FLAG_SYN:
            if state is not None or (stream_id & 1) == (1 if self.is_client else 0):
                self._terminate(events, f"invalid SYN for stream {stream_id}")
                return
            if self.local_goaway or self._inbound_count >= self.max_inbound_streams:
                self._frame(TYPE_WINDOW_UPDATE, FLAG_RST, stream_id, 0)  # refuse; any data is dropped
                return
            state = _StreamState(stream_id, inbound=True, recv_window=self.window)
            self._streams[stream_id] = state
            self._inbound_count += 1
            self._frame(TYPE_WINDOW_UPDATE, FLAG_ACK, stream_id, self.window - INITIAL_WINDOW)
            events.append(StreamOpened(stream_id))
        elif state is None:
            # A stream that has ended (its frames may still be in flight after a reset or close) or never
            # existed: drop the frame, as hashicorp's and go's yamux do. Never answer, or two peers could
            # bounce RSTs between them.
            return
        if kind == TYPE_DATA:
            if length:
                if length > state.recv_window:
                    self._terminate(events, f"stream {stream_id} overran its receive window")
                    return
                state.recv_window -= length
                if state.remote_fin:  # data after FIN: the stream is broken, not the session
                    self._frame(TYPE_WINDOW_UPDATE, FLAG_RST, stream_id, 0)
                    self._forget(state)
                    events.append(StreamWasReset(stream_id))
                    return
                events.append(DataReceived(stream_id, payload))
        elif length:
            state.send_window += length
            events.append(WindowUpdated(stream_id))
        if flags & FLAG_RST:
            self._forget(state)
            events.append(StreamWasReset(stream_id))
            return
        if flags & FLAG_FIN and not state.remote_fin:
            state.remote_fin = True
            events.append(StreamEnded(stream_id))
            if state.local_fin:
                self._forget(state)

    def _on_ping(self, events: list[Event], flags: int, value: int) -> None:
        if flags & FLAG_SYN:
            self._frame(TYPE_PING, FLAG_ACK, 0, value)
            self.pongs_queued += 1
        elif flags & FLAG_ACK:
            events.append(PingAcknowledged(value))

    def _on_go_away(self, events: list[Event], code: int) -> None:
        self.remote_goaway = True
        events.append(GoAwayReceived(code))

    # ---- internals -------------------------------------------------------------------------------------

    def _writable(self, stream_id: int) -> _StreamState:
        if self.terminated:
            raise YamuxError("the session has ended")
        state = self._streams.get(stream_id)
        if state is None:
            raise YamuxError(f"stream {stream_id} is closed or reset")
        if state.local_fin:
            raise YamuxError(f"stream {stream_id} is closed for writing")
        return state

    def _frame(self, kind: int, flags: int, stream_id: int, length: int) -> None:
        self._out.append(HEADER.pack(VERSION, kind, flags, stream_id, length))

    def _forget(self, state: _StreamState) -> None:
        del self._streams[state.stream_id]
        if state.inbound:
            self._inbound_count -= 1

    def _terminate(self, events: list[Event], reason: str, code: int = GO_AWAY_PROTOCOL_ERROR) -> None:
        if self.terminated:
            return
        if not self.local_goaway:
            self.local_goaway = True
            self._frame(TYPE_GO_AWAY, 0, 0, code)
        self.terminated = True
        self._streams.clear()
        self._inbound_count = 0
        events.append(ConnectionTerminated(code, reason))


# ---- asyncio glue ----------------------------------------------------------------------------------------


class Link(Protocol):
    """What carries a session's bytes: a secured byte pipe (for TCP: Noise over the socket)."""

    def write(self, data: bytes) -> None:
        """Send ``data`` (without blocking; buffered if the pipe is busy)."""

    async def drain(self) -> None:
        """Wait while too much is buffered; returns at once if the pipe is gone."""

    def close(self) -> None:
        """Flush what is buffered and close."""

    def abort(self) -> None:
        """Close at once."""

    @property
    def write_blocked(self) -> bool:
        """Whether what was written waits in a full buffer (the remote, or the path, does not keep up)."""

    def throttle(self) -> None:
        """Stop reading until ``write_blocked`` is over (backpressure on a remote that asks for answers it
        does not read)."""


class YamuxStream(Stream):
    def __init__(self, connection: YamuxConnection, stream_id: int):
        super().__init__(connection)
        self.stream_id = stream_id
        self._window_waiter: asyncio.Future[None] | None = None

    async def _send(self, data: bytes) -> None:
        conn: YamuxConnection = self.connection  # type: ignore[assignment]
        session = conn._session
        view = memoryview(data)
        while view:
            if self._error is not None:
                raise self._error
            if conn.closed:
                raise StreamReset("connection closed")
            try:
                sent = session.send_data(self.stream_id, view)
            except YamuxError as exc:
                raise StreamReset(str(exc)) from exc
            if sent:
                view = view[sent:]
                conn._flush()
                await conn._link.drain()
            else:  # the window is exhausted: wait for the remote's WINDOW_UPDATE (backpressure)
                self._window_waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._window_waiter
                finally:
                    self._window_waiter = None

    async def _send_fin(self) -> None:
        conn: YamuxConnection = self.connection  # type: ignore[assignment]
        if conn.closed:
            raise StreamReset("connection closed")
        try:
            conn._session.send_fin(self.stream_id)
        except YamuxError as exc:
            raise StreamReset(str(exc)) from exc
        conn._flush()
        conn._forget_if_gone(self.stream_id)

    def _send_reset(self) -> None:
        conn: YamuxConnection = self.connection  # type: ignore[assignment]
        if not conn.closed:
            conn._session.reset_stream(self.stream_id)
            conn._flush()
            conn._forget_if_gone(self.stream_id)
        self._wake_writer()

    def _consumed(self, n: int) -> None:
        conn: YamuxConnection = self.connection  # type: ignore[assignment]
        if not conn.closed:
            conn._session.consume(self.stream_id, n)
            conn._flush()

    def _wake_writer(self) -> None:
        if self._window_waiter is not None and not self._window_waiter.done():
            self._window_waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<YamuxStream {self.stream_id} protocol={self.protocol}>"


class YamuxConnection(Connection):
    """A ``Connection`` whose streams are Yamux streams over ``link``.

    The owner feeds what arrives on the link to ``_receive`` and calls ``_link_lost`` when the link drops.
    """

    transport = "yamux"

    def __init__(self, session: YamuxSession, link: Link):
        super().__init__()
        self._session = session
        self._link = link
        self._streams: dict[int, YamuxStream] = {}
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._pongs_seen = 0  # session.pongs_queued when last looked at
        self._pongs_owed = 0  # PING answers queued while the link's writes were blocked
        self.close_reason: str | None = None

    async def open_stream(self) -> Stream:
        if self.closed:
            raise ConnectionClosed("connection closed")
        try:
            stream_id = self._session.open_stream()
        except YamuxError as exc:
            raise ConnectionClosed(str(exc)) from exc
        stream = YamuxStream(self, stream_id)
        self._streams[stream_id] = stream
        self._flush()
        return stream

    async def ping(self, timeout: float = 10.0) -> float:
        """Round-trip time of a Yamux PING, in seconds."""
        if self.closed:
            raise ConnectionClosed("connection closed")
        loop = asyncio.get_running_loop()
        value = self._session.ping()
        waiter = self._pings[value] = loop.create_future()
        start = loop.time()
        self._flush()
        try:
            async with asyncio.timeout(timeout):
                await waiter
        finally:
            self._pings.pop(value, None)
        return loop.time() - start

    async def close(self) -> None:
        if self.closed:
            return
        self._session.go_away(GO_AWAY_NORMAL)
        self._flush()
        self._link.close()
        self._teardown("closed locally")

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    # ---- the owner's side ------------------------------------------------------------------------------

    def _receive(self, data: bytes | bytearray) -> None:
        """Bytes from the link: run them through the session and hand the events to the streams."""
        if self.closed:
            return
        streams = self._streams
        terminated: ConnectionTerminated | None = None
        for event in self._session.receive_data(data):
            kind = type(event)
            if kind is DataReceived:
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._feed(event.data)
            elif kind is WindowUpdated:
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._wake_writer()
            elif kind is StreamOpened:
                stream = YamuxStream(self, event.stream_id)
                streams[event.stream_id] = stream
                self._stream_opened_by_remote(stream)
            elif kind is StreamEnded:
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._feed_eof()
                    self._forget_if_gone(event.stream_id)
            elif kind is StreamWasReset:
                stream = streams.pop(event.stream_id, None)
                if stream is not None:
                    stream._feed_reset()
                    stream._wake_writer()
            elif kind is PingAcknowledged:
                waiter = self._pings.get(event.value)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif kind is ConnectionTerminated:
                terminated = event
            # GoAwayReceived: the session refuses new outbound streams from now on; existing ones go on.
        self._flush()
        if self._session.pongs_queued != self._pongs_seen:
            self._bound_pongs()
        if terminated is not None:
            logger.info("closing %r: %s", self, terminated.reason)
            self._link.close()
            self._teardown(f"yamux error: {terminated.reason}")

    def _bound_pongs(self) -> None:
        """A remote that sends PINGs and never reads the answers would have them pile up in our write
        buffer: once ``control_backlog`` answers wait behind a blocked link, stop reading the remote until
        the link drains (its own sending then stalls in TCP's flow control)."""
        answered = self._session.pongs_queued - self._pongs_seen
        self._pongs_seen = self._session.pongs_queued
        if not self._link.write_blocked:
            self._pongs_owed = 0
            return
        self._pongs_owed += answered
        limit = self.resources.limits.control_backlog if self.resources is not None else MAX_CONTROL_BACKLOG
        if self._pongs_owed >= limit:
            self._pongs_owed = 0
            if self.resources is not None:
                self.resources.refuse("control_backlog")
            self._link.throttle()

    def _link_lost(self, reason: str = "connection lost") -> None:
        self._teardown(reason)

    def _flush(self) -> None:
        data = self._session.data_to_send()
        if data and not self.closed:
            self._link.write(data)

    def _forget_if_gone(self, stream_id: int) -> None:
        if not self._session.has_stream(stream_id):
            self._streams.pop(stream_id, None)

    def _teardown(self, reason: str) -> None:
        if self.closed:
            return
        self.close_reason = reason
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            # A stream whose remote side already ended keeps its EOF (its data is complete); the others
            # are reset. Writes on either fail from now on, as the connection is closed.
            if not stream._eof:
                stream._feed_reset(StreamReset(f"connection closed: {reason}"))
            stream._wake_writer()
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(ConnectionClosed(reason))
        self._pings.clear()
        self._closed()


__all__ = [
    "PROTOCOL_ID",
    "YamuxSession",
    "YamuxConnection",
    "YamuxStream",
    "YamuxError",
    "Link",
    "Event",
    "StreamOpened",
    "DataReceived",
    "StreamEnded",
    "StreamWasReset",
    "WindowUpdated",
    "PingAcknowledged",
    "GoAwayReceived",
    "ConnectionTerminated",
]
