"""Our libp2p ``Connection`` to one authenticated peer, driving one aioquic ``QuicConnection`` (``Libp2pQuic``).

It feeds aioquic what its endpoint received, sends what aioquic has to send, re-arms aioquic's one timer,
turns aioquic's events into stream data, resets and the end of the handshake, and keeps the connection alive.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from aioquic import tls
from aioquic.quic import events
from aioquic.quic.packet import QuicErrorCode

from p2pnode.identity import PeerId
from p2pnode.transports.base import Connection, ConnectionClosed, HandshakeError, StreamReset, TransportError
from p2pnode.transports.quic.aioquic_patches import Libp2pQuic
from p2pnode.transports.quic.constants import ERROR_NO_ERROR
from p2pnode.transports.quic.endpoint import UdpEndpoint, format_addr, to_multiaddr
from p2pnode.transports.quic.stream import QuicStream

if TYPE_CHECKING:
    from p2pnode.transports.quic.transport import QuicTransport

logger = logging.getLogger(__package__)


class QuicPeerConnection(Connection):
    """One QUIC connection to an authenticated peer."""

    transport = "quic"

    def __init__(
        self,
        owner: QuicTransport,
        endpoint: UdpEndpoint,
        quic: Libp2pQuic,
        remote: tuple,
        outbound: bool,
    ) -> None:
        super().__init__()
        self.resources = owner.resources
        self._owner = owner
        self._endpoint = endpoint
        self._quic = quic
        self._loop = endpoint.loop
        self._remote = remote  # the socket address aioquic sends to
        self.outbound = outbound
        self.local_peer = owner.keypair.peer_id
        self.remote_peer: PeerId | None = None  # set once authenticated
        self.local_addr = endpoint.local_multiaddr(remote)
        self.remote_addr = to_multiaddr(remote)
        self.resumed = False  # the handshake resumed a TLS session (no certificates exchanged)
        self.early_data = False  # dialled with 0-RTT: streams opened before the handshake finished
        self.bytes_in = 0  # UDP payload bytes received and sent on this connection
        self.bytes_out = 0
        self._streams: dict[int, QuicStream] = {}
        self._finishing: set[QuicStream] = set()
        self._blocked_writers: set[QuicStream] = set()
        self._open_waiters: deque[asyncio.Future[None]] = deque()
        self._cids: set[bytes] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._transmit_pending = False
        self._dirty = False  # touched by the current receive batch
        self._handshake_done = False
        self._announced = False  # handed to the application (dial returned / on_connection called)
        self._handshake: asyncio.Future[None] = self._loop.create_future()
        self._handshake_deadline: asyncio.TimerHandle | None = None
        self._keep_alive: asyncio.TimerHandle | None = None
        self._last_received = self._loop.time()
        self._terminated = False  # aioquic is done with it: connection IDs unregistered, no timers
        self._close_reason: str | None = None
        self._failure_logged = False

    # -- Connection --

    async def open_stream(self) -> QuicStream:
        quic = self._quic
        while True:
            if self.closed:
                raise ConnectionClosed("connection closed")
            stream_id = quic.get_next_available_stream_id()
            if stream_id // 4 < quic._remote_max_streams_bidi:
                break
            waiter = self._loop.create_future()  # the peer's stream limit: wait until it raises it
            self._open_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._open_waiters:
                    self._open_waiters.remove(waiter)
        try:
            quic.send_stream_data(stream_id, b"")  # creates the stream (the peer learns of it with its data)
        except ValueError as exc:
            raise ConnectionClosed(f"cannot open a stream: {exc}") from exc
        stream = QuicStream(self, stream_id)
        stream._attach(quic._streams[stream_id])
        self._streams[stream_id] = stream
        return stream

    async def close(self) -> None:
        self._abort("connection closed locally")

    # -- driving aioquic --

    def _schedule_transmit(self) -> None:
        if not self._transmit_pending and not self._terminated:
            self._transmit_pending = True
            self._loop.call_soon(self._deferred_transmit)

    def _deferred_transmit(self) -> None:
        self._transmit_pending = False
        if self._terminated:
            return
        # Acknowledge what arrived now, in the packet that carries whatever was written since (after a
        # received batch: the answers of the readers it woke), rather than in a packet of its own when
        # aioquic's ACK delay (1 ms) expires. A request/response exchange then costs one packet each way
        # instead of two (RFC 9000 section 13.2.1 lets a receiver acknowledge at any time).
        space = self._quic._spaces.get(tls.Epoch.ONE_RTT)
        if space is not None and space.ack_at is not None:
            space.ack_at = 0.0
        try:
            self._transmit()
        except Exception:
            logger.exception("QUIC connection %r failed while sending", self)
            self._abort("internal error")

    def _transmit(self) -> None:
        quic = self._quic
        send = self._endpoint.send
        sent = 0
        for data, addr in quic.datagrams_to_send(now=self._loop.time()):
            send(data, addr)
            sent += len(data)
        self.bytes_out += sent
        timer_at = quic.get_timer()
        if timer_at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if timer_at is not None and not self._terminated:
                self._timer = self._loop.call_at(timer_at, self._on_timer)
            self._timer_at = timer_at

    def _on_timer(self) -> None:
        timer_at = self._timer_at
        self._timer = self._timer_at = None
        if self._terminated:
            return
        try:
            self._quic.handle_timer(now=max(timer_at or 0.0, self._loop.time()))
            self._after_io()
        except Exception:
            logger.exception("QUIC connection %r failed in its timer", self)
            self._abort("internal error")

    def _after_io(self) -> None:
        """After datagrams arrived or a timer fired: handle aioquic's events, send, wake writers."""
        self._process_events()
        if self._terminated:
            return
        close = self._quic._close_event
        if close is not None and not self.closed:
            # Closed by the peer or by an error: aioquic reports it terminated only after a closing period
            # of three PTOs, but nothing more can be sent or received now.
            self._on_closing(close)
        if self._handshake_done:
            # Send at the end of the next loop turn rather than now: the readers woken above usually answer
            # in that turn, and their answer then leaves in the same packet as the ACK (one packet, not two).
            self._schedule_transmit()
        else:  # handshake flights go at once, ahead of the work the completed handshake wakes
            self._transmit()
        if self._blocked_writers:
            for stream in [s for s in self._blocked_writers if s._drained()]:
                self._blocked_writers.discard(stream)
                stream._wake_drain()
        if self._open_waiters and (
            self._quic.get_next_available_stream_id() // 4 < self._quic._remote_max_streams_bidi
        ):
            for waiter in self._open_waiters:
                if not waiter.done():
                    waiter.set_result(None)
        if self._finishing:
            live = self._quic._streams
            for stream in [s for s in self._finishing if s.stream_id not in live]:
                self._reap(stream)

    def _reap(self, stream: QuicStream) -> None:
        self._finishing.discard(stream)
        if self._streams.get(stream.stream_id) is stream:
            del self._streams[stream.stream_id]
        if not stream._reaped:
            stream._reaped = True
            self._quic.p2p_unread -= stream._uncredited()

    def _process_events(self) -> None:
        quic = self._quic
        streams = self._streams
        event = quic.next_event()
        while event is not None:
            kind = type(event)
            if kind is events.StreamDataReceived:
                stream = streams.get(event.stream_id)
                if stream is None:
                    stream = self._new_remote_stream(event.stream_id)
                if stream is not None:
                    stream._on_data(event.data, event.end_stream)
            elif kind is events.StreamReset or kind is events.StopSendingReceived:
                stream = streams.get(event.stream_id)
                new = stream is None
                if new:
                    stream = self._new_remote_stream(event.stream_id, deliver=False)
                if stream is not None:
                    if kind is events.StreamReset:
                        stream._on_reset()
                    else:
                        stream._on_stop_sending()
                    if new:  # never delivered: abandon the rest of it too
                        stream._send_reset()
            elif kind is events.ConnectionIdIssued:
                self._endpoint.register(event.connection_id, self)
            elif kind is events.ConnectionIdRetired:
                self._endpoint.unregister(event.connection_id, self)
            elif kind is events.HandshakeCompleted:
                self._on_handshake_completed(event)
            elif kind is events.ConnectionTerminated:
                self._on_terminated(event)
                return
            event = quic.next_event()
        if not self._announced and not self._handshake_done and not quic._is_client and hasattr(quic, "tls"):
            # a resumed session (PSK binder checked, ticket single-use) can be used before it completes
            if quic.tls.session_resumed and quic.tls.early_data_accepted and quic.p2p_ticket_peer is not None:
                self.resumed = True
                self._announce(quic.p2p_ticket_peer)

    def _new_remote_stream(self, stream_id: int, deliver: bool = True) -> QuicStream | None:
        if bool(stream_id & 1) != self._quic._is_client:  # bit 0 clear: opened by the client
            return None  # ours, already dropped
        quic_stream = self._quic._streams.get(stream_id)
        if quic_stream is None:
            return None
        stream = QuicStream(self, stream_id)
        stream._attach(quic_stream)
        self._streams[stream_id] = stream
        if stream_id & 2:  # unidirectional: libp2p has no use for them
            stream._write_done = True
            stream._send_reset()
            stream._reaped = True  # its data is never buffered
            return None
        if deliver and not self.closed:
            self._stream_opened_by_remote(stream)
        return stream

    def _on_handshake_completed(self, event: events.HandshakeCompleted) -> None:
        self._handshake_done = True
        if self._handshake_deadline is not None:
            self._handshake_deadline.cancel()
            self._handshake_deadline = None
        quic = self._quic
        peer = quic.p2p_authenticated_peer()
        self.resumed = event.session_resumed
        if peer is None:
            self._fail_handshake("handshake completed without authenticating the peer")
            return
        if self._announced:
            if peer != self.remote_peer:  # cannot happen: the expected peer was checked
                self._fail_handshake(f"0-RTT peer {self.remote_peer} is not the authenticated {peer}")
            return
        self._announce(peer)

    def _announce(self, peer: PeerId) -> None:
        self.remote_peer = peer
        self._announced = True
        self._owner._pending_inbound.discard(self)
        if self._owner._keep_alive_interval is not None:
            self._keep_alive = self._loop.call_later(self._owner._keep_alive_interval, self._on_keep_alive)
        if not self._handshake.done():
            self._handshake.set_result(None)
        if not self.outbound:
            callback = self._endpoint.on_connection
            if callback is not None:
                try:
                    callback(self)
                except Exception:
                    logger.exception("on_connection callback failed for %r", self)

    def _fail_handshake(self, reason: str) -> None:
        self._quic.p2p_error = self._quic.p2p_error or reason
        self._abort(reason, error_code=QuicErrorCode.PROTOCOL_VIOLATION)

    def _on_keep_alive(self) -> None:
        self._keep_alive = None
        if self.closed or self._terminated:
            return
        interval = self._owner._keep_alive_interval
        if self._loop.time() - self._last_received >= interval * 0.9:
            self._quic.send_ping(0)
            self._schedule_transmit()
        self._keep_alive = self._loop.call_later(interval, self._on_keep_alive)

    def _on_handshake_timeout(self) -> None:
        self._handshake_deadline = None
        if not self._handshake_done and not self.closed:
            self._quic.p2p_error = self._quic.p2p_error or "handshake timed out"
            self._abort("handshake timed out")

    def _handshake_failure(self) -> TransportError:
        """What dial raises when the connection ended before it was authenticated."""
        quic = self._quic
        close = quic._close_event
        if quic.p2p_error is not None:
            return HandshakeError(quic.p2p_error)
        if close is not None and QuicErrorCode.CRYPTO_ERROR <= close.error_code < QuicErrorCode.CRYPTO_ERROR + 256:
            alert = close.error_code - QuicErrorCode.CRYPTO_ERROR
            return HandshakeError(f"the peer aborted the TLS handshake (alert {alert}): {close.reason_phrase}")
        if close is not None:
            return TransportError(f"connection closed during the handshake: {close.reason_phrase or close.error_code}")
        return TransportError(self._close_reason or "connection closed during the handshake")

    def _abort(self, reason: str, error_code: int = ERROR_NO_ERROR) -> None:
        """Close now: CONNECTION_CLOSE to the peer, streams reset, callbacks run. aioquic keeps the
        connection a few PTOs longer (to repeat the close if needed), then reports it terminated."""
        if self._close_reason is None:
            self._close_reason = reason
        self._log_inbound_failure()
        if not self._terminated:
            try:
                self._quic.close(error_code=error_code, reason_phrase=reason)
                self._transmit()
            except Exception:
                logger.exception("closing QUIC connection %r failed", self)
                self._on_terminated(None)
        self._shut(reason)

    def _on_terminated(self, event: events.ConnectionTerminated | None) -> None:
        """aioquic is done with the connection (closed by either side, idle timeout, handshake failure)."""
        if self._terminated:
            return
        self._terminated = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        self._endpoint.unregister_all(self)
        self._owner._connections.discard(self)
        if not self.closed:
            self._on_closing(event)

    def _on_closing(self, event: events.ConnectionTerminated | None) -> None:
        reason = self._close_reason
        if reason is None and event is not None:
            reason = event.reason_phrase or f"error {event.error_code:#x}"
            if event.error_code == QuicErrorCode.NO_ERROR and not event.reason_phrase:
                reason = "closed by the peer"
        self._log_inbound_failure()
        self._shut(reason or "connection closed")

    def _log_inbound_failure(self) -> None:
        if not self._announced and not self.outbound and not self._failure_logged:
            self._failure_logged = True
            error = self._handshake_failure()
            self._owner.peer_log.report(self._remote[0], "inbound QUIC handshake from %s failed: %s",
                                        format_addr(self._remote), error)

    def _shut(self, reason: str) -> None:
        """Reset every stream and mark the connection closed (once)."""
        if self._handshake_deadline is not None:
            self._handshake_deadline.cancel()
            self._handshake_deadline = None
        if self._keep_alive is not None:
            self._keep_alive.cancel()
            self._keep_alive = None
        self._owner._pending_inbound.discard(self)
        if not self._handshake.done():
            self._handshake.set_result(None)  # dial looks at how it ended
        if self.closed:
            return
        error = StreamReset(f"connection closed: {reason}")
        for stream in list(self._streams.values()):
            stream._on_connection_closed(error)
        self._blocked_writers.clear()
        for waiter in self._open_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._closed()

    def __repr__(self) -> str:
        direction = "to" if self.outbound else "from"
        peer = self.remote_peer.short() if self.remote_peer is not None else "?"
        return f"<QuicPeerConnection {direction} {peer} at {self.remote_addr}>"
