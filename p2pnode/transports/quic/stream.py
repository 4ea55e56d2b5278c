"""One QUIC bidirectional stream as a libp2p ``Stream``, with write backpressure and read-driven credit."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aioquic.quic import stream as aioquic_stream

from p2pnode.transports.base import Stream, StreamReset, TransportError
from p2pnode.transports.quic.constants import ERROR_NO_ERROR, SEND_BUFFER_HIGH, SEND_BUFFER_LOW

if TYPE_CHECKING:
    from p2pnode.transports.quic.connection import QuicPeerConnection


class QuicStream(Stream):
    """A QUIC bidirectional stream. FIN is ``close()`` / end of stream; RESET_STREAM and STOP_SENDING are
    ``reset()``: a peer's RESET_STREAM fails reads (and writes), its STOP_SENDING fails writes."""

    def __init__(self, connection: QuicPeerConnection, stream_id: int):
        super().__init__(connection)
        self.connection: QuicPeerConnection = connection
        self.stream_id = stream_id
        self._quic_stream: aioquic_stream.QuicStream | None = None
        self._send_error: TransportError | None = None
        self._drain: asyncio.Future[None] | None = None
        self._read_done = False  # end of stream or reset received, or reset locally
        self._write_done = False  # FIN sent, STOP_SENDING received, or reset
        self._reaped = False  # dropped by the connection: its unread bytes no longer count against the window

    def __repr__(self) -> str:
        return f"<QuicStream {self.stream_id} of {self.connection!r}>"

    # -- the connection's side --

    def _attach(self, quic_stream: aioquic_stream.QuicStream) -> None:
        self._quic_stream = quic_stream
        quic_stream.p2p_stream = self  # read by Libp2pQuic._write_stream_limits

    def _buffered_to_send(self) -> int:
        sender = self._quic_stream.sender if self._quic_stream is not None else None
        return sender._buffer_stop - sender._buffer_start if sender is not None else 0

    def _maybe_finished(self) -> None:
        if self._read_done and self._write_done:
            self.connection._finishing.add(self)

    def _on_data(self, data: bytes, end_stream: bool) -> None:
        if data and not self._read_done:
            self.connection._quic.p2p_unread += len(data)
            self._feed(data)
        if end_stream:
            self._feed_eof()
            self._read_done = True
            self._maybe_finished()

    def _on_reset(self) -> None:  # RESET_STREAM: the peer abandoned its side, and so do we
        self._read_done = True
        self._feed_reset(StreamReset("stream reset by the remote peer"))
        if not self._write_done:
            self._abort_sending()
        self._maybe_finished()

    def _on_stop_sending(self) -> None:  # STOP_SENDING: the peer reads no more; aioquic already reset our side
        if self._send_error is None:
            self._send_error = StreamReset("stream reset by the remote peer (STOP_SENDING)")
        self._write_done = True
        self._wake_drain()
        self._maybe_finished()

    def _on_connection_closed(self, error: TransportError) -> None:
        self._read_done = self._write_done = True
        if self._send_error is None:
            self._send_error = error
        self._feed_reset(error)
        self._wake_drain()

    def _wake_drain(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _drained(self) -> bool:
        return (
            self._send_error is not None
            or self._error is not None
            or self.connection.closed
            or self._buffered_to_send() <= SEND_BUFFER_LOW
        )

    def _abort_sending(self) -> None:
        self._write_done = True
        try:
            self.connection._quic.reset_stream(self.stream_id, ERROR_NO_ERROR)
        except ValueError:
            pass
        self.connection._schedule_transmit()

    def _consumed(self, n: int) -> None:
        if self._reaped:
            return
        connection = self.connection
        quic = connection._quic
        quic.p2p_unread -= n
        if not self._read_done and quic.p2p_credit_due(self._quic_stream, self._uncredited()):
            connection._schedule_transmit()

    def _writable(self) -> None:
        if self._send_error is not None:
            raise self._send_error
        if self.connection.closed:
            raise StreamReset("connection closed")

    # -- Stream's sending side --

    async def _send(self, data: bytes) -> None:
        self._writable()
        connection = self.connection
        try:
            connection._quic.send_stream_data(self.stream_id, data)
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise StreamReset(f"cannot send on stream {self.stream_id}: {exc}") from exc
        connection._schedule_transmit()
        if self._buffered_to_send() > SEND_BUFFER_HIGH:
            while not self._drained():
                self._drain = asyncio.get_running_loop().create_future()
                connection._blocked_writers.add(self)
                try:
                    await self._drain
                finally:
                    connection._blocked_writers.discard(self)
                    self._drain = None
            self._writable()
            if self._error is not None:
                raise self._error

    async def _send_fin(self) -> None:
        self._writable()
        try:
            self.connection._quic.send_stream_data(self.stream_id, b"", end_stream=True)
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise StreamReset(f"cannot close stream {self.stream_id}: {exc}") from exc
        self._write_done = True
        self.connection._schedule_transmit()
        self._maybe_finished()

    def _send_reset(self) -> None:
        connection = self.connection
        if self._send_error is None:
            self._send_error = StreamReset("stream reset locally")
        self._wake_drain()
        if not connection.closed:
            quic = connection._quic
            try:  # also after our FIN: data not yet acknowledged is abandoned (aioquic ignores a finished side)
                quic.reset_stream(self.stream_id, ERROR_NO_ERROR)
            except ValueError:
                pass
            if not self._read_done:
                try:
                    quic.stop_stream(self.stream_id, ERROR_NO_ERROR)
                except ValueError:
                    pass
            connection._schedule_transmit()
        self._read_done = self._write_done = True
        self._maybe_finished()
