"""The libp2p QUIC-v1 transport (libp2p specs ``quic/README.md``) on aioquic's sans-IO ``QuicConnection``.

Multiaddrs are ``/ip4|ip6/<addr>/udp/<port>/quic-v1``, optionally ending ``/p2p/<peer ID>``. The handshake
is TLS 1.3 with ALPN ``libp2p`` and the libp2p certificates of ``tls.py``: both sides send one, both sides
check it. The server requires a client certificate and learns the client's peer ID from it; the client
checks that the server is the peer it dialled (``HandshakeError`` otherwise). Each QUIC bidirectional stream
is one ``Stream``; libp2p does not use unidirectional streams, so those a peer opens are refused with
STOP_SENDING and their data dropped.

I/O: this module drives aioquic itself rather than through ``aioquic.asyncio.serve``/``connect``, because

* one UDP socket per listen address serves every connection through it and is also the socket outbound
  connections are dialled from (same family, compatible address), as libp2p wants for hole punching later;
  ``connect`` opens a socket per connection;
* the socket is read with ``loop.add_reader`` in batches (up to ``RECV_BATCH`` datagrams per wake-up) and
  each connection touched by a batch handles its events and sends once per batch, where asyncio's datagram
  transport (and so aioquic's protocol class) costs a loop iteration, an event pass and a send pass per
  datagram;
* the TLS checks and the flow control below need our own ``QuicConnection`` subclass, which ``serve``
  cannot be told to create.

aioquic 1.7.2 has no public hook for client certificates or custom certificate checks, so this module
subclasses two of its classes and leans on private members (checked at import by ``_check_aioquic``):

* the TLS context (``tls.Context``) gets the libp2p certificate check after the CertificateVerify message
  on both sides, requests a client certificate (``_request_client_certificate``) and refuses a handshake
  without one; X.509 chain verification is turned off (``verify_mode=CERT_NONE``), the libp2p check
  replaces it. (aioquic would also wait for a client certificate in a resumed handshake, where none is
  requested; that is fixed here too. Clients offer X25519 and P-256 key shares only, not aioquic's four.)
* the QUIC connection gets stream-count limits (100 bidirectional and 1000 unidirectional streams that the
  peer may have open at once, MAX_STREAMS giving one more back for each that ends; the libp2p QUIC spec
  sets no numbers, go-libp2p allows 256 and 5, for WebTransport) and receive flow control tied to what
  the application has read: aioquic doubles a receive window whenever half of it has arrived, so a peer
  could fill our memory however slowly we read. Here the window is what was read plus ``stream_window``
  (per stream) and ``connection_window`` (per connection).
* its pacer allows bursts of up to 2 ms (``_Pacer``): asyncio timers fire a millisecond late at best, and
  aioquic's 16-packet bursts then cap the rate well below what the congestion window allows.

As TLS 1.3 has it, a client's handshake is complete once it has sent its certificate, before the server has
checked it: a server that refuses our certificate shows as the connection closing right after ``dial``.

Writes apply backpressure: ``Stream.write`` returns once the data is in aioquic's send buffer, but waits
while that buffer holds more than ``SEND_BUFFER_HIGH`` bytes (unsent or unacknowledged), until it drains
to ``SEND_BUFFER_LOW``.

Opening a stream beyond the peer's stream limit waits (``open_stream`` blocks until the peer lets one more
stream open, or the connection closes); it does not fail.

Session resumption and 0-RTT: servers issue TLS session tickets, single-use (a ticket is forgotten once
presented, so 0-RTT data cannot be replayed to this process) and remembered with the peer ID they were
issued to, because a resumed handshake carries no certificates. A client that holds a ticket for the
address (and the expected peer) resumes: ``connection.resumed``, no certificates signed or checked. With
``zero_rtt=True`` it also sends its first stream data as 0-RTT, and ``dial`` returns at once, before the
server has answered (``connection.early_data``): the peer is authenticated by the ticket, but whether it is
there at all shows only later: if the handshake fails or does not finish within ``handshake_timeout``, the
connection closes and its streams are reset. That bends the ``Transport.dial`` contract ("connect and
authenticate"), so it is off by default. If the server does not accept the ticket, the handshake falls back
to a full one (0-RTT data is then retransmitted). Tickets live in memory only.

Connections idle out after ``idle_timeout`` (30 s) and send a PING when nothing was received for
``keep_alive`` seconds (15 s), so an open connection stays open (and NAT bindings stay alive).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import socket
import ssl
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from aioquic import tls
from aioquic.buffer import Buffer
from aioquic.quic import events
from aioquic.quic import stream as aioquic_stream
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection as AioquicConnection
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicFrameType,
    QuicPacketType,
    QuicProtocolVersion,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.recovery import QuicPacketPacer
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from multiaddr import Multiaddr

from p2pnode.identity import Keypair, PeerId
from p2pnode.transports.addresses import ip_endpoint, ip_multiaddr
from p2pnode.transports.base import (
    Connection,
    ConnectionClosed,
    HandshakeError,
    Stream,
    StreamReset,
    Transport,
    TransportError,
)
from p2pnode.transports.tls import CertificateError, make_certificate, verify_certificate_chain

logger = logging.getLogger(__name__)

ALPN = "libp2p"
MAX_INCOMING_BIDI_STREAMS = 100
MAX_INCOMING_UNI_STREAMS = 1000
IDLE_TIMEOUT = 30.0
KEEP_ALIVE = 15.0
HANDSHAKE_TIMEOUT = 10.0
STREAM_WINDOW = 1 << 20  # receive window per stream, beyond what the application has read
CONNECTION_WINDOW = 4 << 20  # receive window per connection, likewise
SEND_BUFFER_HIGH = 1 << 20  # a write waits while a stream's send buffer holds more than this ...
SEND_BUFFER_LOW = 1 << 19  # ... until it is down to this
MAX_DATAGRAM_SIZE = 1350  # QUIC packet payload; fits the 1500-byte Ethernet MTU with room for tunnels
SOCKET_BUFFER = 4 << 20  # SO_RCVBUF / SO_SNDBUF asked for (the kernel caps it at net.core.[rw]mem_max)
RECV_BATCH = 256  # datagrams read per socket wake-up before the connections touched answer
CID_LENGTH = 8
MAX_PENDING_HANDSHAKES = 256  # inbound handshakes in progress per transport; Initials beyond are dropped
TICKET_CACHE = 4096  # session tickets remembered (server: issued; client: received), oldest forgotten first
CERTIFICATE_RENEWAL = datetime.timedelta(days=1)  # make a new certificate when ours has less than this left
PACING_BURST = 0.002  # seconds of sending at the pacing rate that may go out at once (see _Pacer)
SEND_QUEUE_LIMIT = 4096  # datagrams queued while the socket is not writable; beyond that they are dropped
ERROR_NO_ERROR = 0  # application error code for closing connections and resetting streams

SUPPORTED_VERSIONS = [QuicProtocolVersion.VERSION_1]


def _check_aioquic() -> None:
    """The private aioquic members this module depends on (present in aioquic 1.7.2)."""
    needed = {
        tls.Context: [
            "_client_handle_certificate_verify",
            "_server_handle_hello",
            "_server_handle_certificate",
            "_server_handle_certificate_verify",
            "_server_expect_finished",
        ],
        AioquicConnection: ["_initialize", "_write_connection_limits", "_write_stream_limits"],
        QuicPacketPacer: ["update_rate", "next_send_time"],
    }
    missing = [f"{cls.__name__}.{name}" for cls, names in needed.items() for name in names if not hasattr(cls, name)]
    if missing:
        raise ImportError(f"this aioquic lacks {', '.join(missing)}; p2pnode.transports.quic needs aioquic 1.7")


_check_aioquic()


class _CertificateRequired(tls.Alert):
    description = tls.AlertDescription.certificate_required


# ---- TLS: the libp2p certificate check, hooked into aioquic's TLS state machine ------------------------


class _Libp2pTls(tls.Context):
    """aioquic's TLS 1.3 context with the libp2p peer authentication. Instances are made by aioquic as
    plain ``tls.Context`` and switched to this class right after (``_Libp2pQuic._initialize``)."""

    p2p_quic: _Libp2pQuic

    def _p2p_authenticate(self) -> None:
        quic = self.p2p_quic
        chain = [self._peer_certificate, *self._peer_certificate_chain]
        try:
            peer = verify_certificate_chain(chain)
        except CertificateError as exc:
            quic.p2p_error = str(exc)
            raise tls.AlertBadCertificate(str(exc)) from exc
        if quic.p2p_expected is not None and peer != quic.p2p_expected:
            quic.p2p_error = f"dialled {quic.p2p_expected} but the peer is {peer}"
            raise tls.AlertBadCertificate("peer ID mismatch")
        quic.p2p_peer = peer

    def _client_handle_certificate_verify(self, input_buf: Buffer) -> None:
        super()._client_handle_certificate_verify(input_buf)  # the server owns the certificate's key
        self._p2p_authenticate()

    def _server_handle_hello(self, input_buf: Buffer, initial_buf: Buffer, handshake_buf: Buffer) -> None:
        super()._server_handle_hello(input_buf, initial_buf, handshake_buf)
        if self._session_resumed and self.state == tls.State.SERVER_EXPECT_CERTIFICATE:
            # A resumed handshake requests no certificate, but aioquic would still wait for one.
            self._server_expect_finished()

    def _server_handle_certificate(self, input_buf: Buffer) -> None:
        super()._server_handle_certificate(input_buf)
        if self._peer_certificate is None:  # an empty Certificate message: aioquic would carry on without
            self.p2p_quic.p2p_error = "the client sent no certificate"
            raise _CertificateRequired("a libp2p client certificate is required")

    def _server_handle_certificate_verify(self, input_buf: Buffer) -> None:
        super()._server_handle_certificate_verify(input_buf)  # the client owns the certificate's key
        self._p2p_authenticate()


class _Pacer(QuicPacketPacer):
    """aioquic's pacer lets a burst of 16 packets go, then asks to wait one packet time (microseconds at
    loopback rates); but an asyncio timer fires a millisecond late at best (epoll's resolution), by when
    the bucket has refilled to those 16 packets only, so the pace is capped near 16 packets per
    millisecond whatever the congestion window. Here the bucket holds up to ``PACING_BURST`` seconds at
    the pacing rate (at most half an RTT), so a late timer does not cost throughput. The rate stays
    congestion window / smoothed RTT."""

    def update_rate(self, congestion_window: int, smoothed_rtt: float) -> None:
        super().update_rate(congestion_window, smoothed_rtt)
        burst = min(PACING_BURST, smoothed_rtt / 2)
        if burst > self.bucket_max:
            self.bucket_max = burst


class _Libp2pQuic(AioquicConnection):
    """aioquic's QUIC connection with libp2p TLS, libp2p stream limits and read-driven flow control."""

    def __init__(
        self,
        *,
        transport: QuicTransport,
        expected: PeerId | None,
        stream_window: int,
        connection_window: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            session_ticket_fetcher=self._p2p_fetch_ticket,
            session_ticket_handler=self._p2p_ticket_issued,
            **kwargs,
        )
        self._local_max_streams_bidi.value = self._local_max_streams_bidi.sent = MAX_INCOMING_BIDI_STREAMS
        self._local_max_streams_uni.value = self._local_max_streams_uni.sent = MAX_INCOMING_UNI_STREAMS
        self._loss._pacer = _Pacer(max_datagram_size=self._max_datagram_size)
        self.p2p_transport = transport
        self.p2p_expected = expected  # the peer the client dialled (clients only)
        self.p2p_peer: PeerId | None = None  # authenticated by its certificate
        self.p2p_ticket_peer: PeerId | None = None  # who the session ticket presented was issued to
        self.p2p_error: str | None = None  # why the libp2p authentication failed
        self.p2p_remote: tuple[str, int] | None = None  # (host, port) a client dialled: its tickets' key
        self.p2p_unread = 0  # bytes delivered to the connection's streams and not yet read
        self.p2p_stream_window = stream_window
        self.p2p_connection_window = connection_window

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        self.tls.__class__ = _Libp2pTls
        self.tls.p2p_quic = self
        if self._is_client:
            # aioquic offers a key share for each of its four groups (one key pair each); X25519 first is
            # what servers pick, P-256 stays for those without it. (aioquic has no HelloRetryRequest.)
            self.tls._supported_groups = [tls.Group.X25519, tls.Group.SECP256R1]
        else:
            self.tls._request_client_certificate = True

    def p2p_authenticated_peer(self) -> PeerId | None:
        if self.p2p_peer is not None:
            return self.p2p_peer
        if self.tls.session_resumed:
            return self.p2p_ticket_peer
        return None

    # -- session tickets --

    def _p2p_fetch_ticket(self, label: bytes) -> tls.SessionTicket | None:  # server
        entry = self.p2p_transport._server_tickets.pop(label, None)  # single use: no 0-RTT replay
        if entry is None:
            return None
        ticket, peer = entry
        self.p2p_ticket_peer = peer
        return ticket

    def _p2p_ticket_issued(self, ticket: tls.SessionTicket) -> None:  # server: issued; client: received
        peer = self.p2p_authenticated_peer()
        if peer is None:
            return
        if self._is_client:
            if self.p2p_remote is not None:
                _remember(self.p2p_transport._client_tickets, self.p2p_remote, (ticket, peer))
        else:
            _remember(self.p2p_transport._server_tickets, ticket.ticket, (ticket, peer))

    # -- flow control --

    def _write_connection_limits(self, builder: Any, space: Any) -> None:
        max_data = self._local_max_data
        target = max_data.used - self.p2p_unread + self.p2p_connection_window
        if target - max_data.value >= self.p2p_connection_window >> 2:
            max_data.value = target
        # aioquic doubles MAX_DATA once more than half of it was received ("used"), whether or not it was
        # read; hide "used" for the call, which then only sends our MAX_DATA and handles MAX_STREAMS.
        used, max_data.used = max_data.used, 0
        try:
            super()._write_connection_limits(builder, space)
        finally:
            max_data.used = used

    def _write_stream_limits(self, builder: Any, space: Any, stream: aioquic_stream.QuicStream) -> None:
        local = stream.max_stream_data_local
        if not local:
            return  # a stream we only send on
        reader = getattr(stream, "p2p_stream", None)
        window = self.p2p_stream_window
        target = stream.receiver.starting_offset() - (len(reader._buffer) if reader is not None else 0) + window
        if target - local >= window >> 2:
            stream.max_stream_data_local = local = target
        if stream.max_stream_data_local_sent != local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=_MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(stream.stream_id)
            buf.push_uint_var(local)
            stream.max_stream_data_local_sent = local

    def p2p_credit_due(self, stream: aioquic_stream.QuicStream | None, unread_on_stream: int) -> bool:
        """Whether reading freed enough window that a MAX_DATA / MAX_STREAM_DATA update should go out."""
        max_data = self._local_max_data
        if max_data.used - self.p2p_unread + self.p2p_connection_window - max_data.value >= (
            self.p2p_connection_window >> 2
        ):
            return True
        if stream is None or not stream.max_stream_data_local:
            return False
        window = self.p2p_stream_window
        target = stream.receiver.starting_offset() - unread_on_stream + window
        return target - stream.max_stream_data_local >= window >> 2


_MAX_STREAM_DATA_FRAME_CAPACITY = 1 + 2 * 8


def _remember(cache: OrderedDict, key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > TICKET_CACHE:
        cache.popitem(last=False)


# ---- streams and connections -----------------------------------------------------------------------------


class QuicStream(Stream):
    """A QUIC bidirectional stream. FIN is ``close()`` / end of stream; RESET_STREAM and STOP_SENDING are
    ``reset()``: a peer's RESET_STREAM fails reads (and writes), its STOP_SENDING fails writes."""

    def __init__(self, connection: QuicConnection, stream_id: int):
        super().__init__(connection)
        self.connection: QuicConnection = connection
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
        quic_stream.p2p_stream = self  # read by _Libp2pQuic._write_stream_limits

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
        if not self._read_done and quic.p2p_credit_due(self._quic_stream, len(self._buffer)):
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


class QuicConnection(Connection):
    """One QUIC connection to an authenticated peer."""

    transport = "quic"

    def __init__(
        self,
        owner: QuicTransport,
        endpoint: _Endpoint,
        quic: _Libp2pQuic,
        remote: tuple,
        outbound: bool,
    ) -> None:
        super().__init__()
        self._owner = owner
        self._endpoint = endpoint
        self._quic = quic
        self._loop = endpoint.loop
        self._remote = remote  # the socket address aioquic sends to
        self.outbound = outbound
        self.local_peer = owner.keypair.peer_id
        self.remote_peer: PeerId | None = None  # set once authenticated
        self.local_addr = endpoint.local_multiaddr(remote)
        self.remote_addr = _to_multiaddr(remote)
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
            self._quic.p2p_unread -= len(stream._buffer)

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
            logger.info("inbound QUIC handshake from %s failed: %s", _format_addr(self._remote), error)

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
        return f"<QuicConnection {direction} {peer} at {self.remote_addr}>"


# ---- UDP endpoints ---------------------------------------------------------------------------------------


class _Endpoint:
    """One UDP socket: its listener (if any) and every connection through it, routed by connection ID."""

    def __init__(
        self,
        owner: QuicTransport,
        sock: socket.socket,
        on_connection: Callable[[Connection], None] | None,
    ) -> None:
        self.owner = owner
        self.loop = asyncio.get_running_loop()
        self.sock = sock
        self.family = sock.family
        bound = sock.getsockname()
        self.host = _normalise_host(bound[0])
        self.port = bound[1]
        self.on_connection = on_connection
        self.multiaddr = _to_multiaddr((self.host, self.port))
        self._by_cid: dict[bytes, QuicConnection] = {}
        self._sources: dict[str, str] = {}  # remote host -> our source address (wildcard binds)
        self._send_queue: deque[tuple[bytes, tuple]] = deque()
        self._closed = False
        self.loop.add_reader(sock.fileno(), self._on_readable)

    @property
    def listening(self) -> bool:
        return self.on_connection is not None

    def local_multiaddr(self, remote: tuple) -> Multiaddr:
        """Our address as ``remote`` sees it: for a wildcard bind, the source address the kernel picks
        for that destination (a connected UDP socket's, which sends nothing)."""
        if not ipaddress.ip_address(self.host).is_unspecified:
            return self.multiaddr
        source = self._sources.get(remote[0])
        if source is None:
            probe = socket.socket(self.family, socket.SOCK_DGRAM)
            try:
                probe.connect(remote)
                source = probe.getsockname()[0]
            except OSError:
                return self.multiaddr
            finally:
                probe.close()
            if len(self._sources) > 1024:
                self._sources.clear()
            self._sources[remote[0]] = source
        return _to_multiaddr((source, self.port))

    def can_reach(self, host: str) -> bool:
        """Whether dialling ``host`` from this socket works: same family, and a wildcard bind or one whose
        address is loopback exactly when the target is."""
        ip = ipaddress.ip_address(host)
        if (ip.version == 6) != (self.family == socket.AF_INET6):
            return False
        bound = ipaddress.ip_address(self.host)
        return bound.is_unspecified or bound.is_loopback == ip.is_loopback

    def register(self, cid: bytes, connection: QuicConnection) -> None:
        self._by_cid[cid] = connection
        connection._cids.add(cid)

    def unregister(self, cid: bytes, connection: QuicConnection) -> None:
        if self._by_cid.get(cid) is connection:
            del self._by_cid[cid]
        connection._cids.discard(cid)

    def unregister_all(self, connection: QuicConnection) -> None:
        for cid in list(connection._cids):
            self.unregister(cid, connection)

    # -- receiving --

    def _on_readable(self) -> None:
        recvfrom = self.sock.recvfrom
        by_cid = self._by_cid
        now = self.loop.time()
        touched: list[QuicConnection] = []
        for _ in range(RECV_BATCH):
            try:
                data, addr = recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. an ICMP error queued on the socket
                logger.debug("UDP receive error on %s: %s", self.multiaddr, exc)
                break
            if not data:
                continue
            if data[0] & 0x80:  # long header
                connection = self._route_long(data, addr)
            else:
                connection = by_cid.get(data[1 : 1 + CID_LENGTH])
            if connection is None or connection._terminated:
                continue
            connection.bytes_in += len(data)
            try:
                connection._quic.receive_datagram(data, addr, now)
            except Exception:
                logger.exception("QUIC connection %r failed on a datagram", connection)
                connection._abort("internal error")
                continue
            if not connection._dirty:
                connection._dirty = True
                touched.append(connection)
        for connection in touched:
            connection._dirty = False
            connection._last_received = now
            if connection._terminated:
                continue
            try:
                connection._after_io()
            except Exception:
                logger.exception("QUIC connection %r failed handling its events", connection)
                connection._abort("internal error")

    def _route_long(self, data: bytes, addr: tuple) -> QuicConnection | None:
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except ValueError:
            return None
        connection = self._by_cid.get(header.destination_cid)
        if connection is not None:
            return connection
        if (
            header.packet_type != QuicPacketType.VERSION_NEGOTIATION
            and header.version is not None
            and header.version not in SUPPORTED_VERSIONS
        ):
            if self.listening:
                self.send(
                    encode_quic_version_negotiation(
                        source_cid=header.destination_cid,
                        destination_cid=header.source_cid,
                        supported_versions=SUPPORTED_VERSIONS,
                    ),
                    addr,
                )
            return None
        if (
            self.listening
            and header.packet_type == QuicPacketType.INITIAL
            and len(data) >= 1200
            and not self.owner._closing
        ):
            if len(self.owner._pending_inbound) >= MAX_PENDING_HANDSHAKES:
                logger.debug("dropping a QUIC Initial from %s: too many handshakes in progress", addr)
                return None
            return self.owner._accept(self, header.destination_cid, addr)
        return None

    # -- sending --

    def send(self, data: bytes, addr: tuple) -> None:
        if self._closed:
            return
        if self._send_queue:
            if len(self._send_queue) < SEND_QUEUE_LIMIT:
                self._send_queue.append((data, addr))
            return
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._send_queue.append((data, addr))
            self.loop.add_writer(self.sock.fileno(), self._on_writable)
        except OSError as exc:  # unreachable network and the like: to QUIC, a lost packet
            logger.debug("UDP send to %s failed: %s", addr, exc)

    def _on_writable(self) -> None:
        queue = self._send_queue
        while queue:
            data, addr = queue[0]
            try:
                self.sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.debug("UDP send to %s failed: %s", addr, exc)
            queue.popleft()
        self.loop.remove_writer(self.sock.fileno())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.loop.remove_reader(self.sock.fileno())
        if self._send_queue:
            self.loop.remove_writer(self.sock.fileno())
            self._send_queue.clear()
        self.sock.close()


# ---- the transport ---------------------------------------------------------------------------------------


class QuicTransport(Transport):
    """libp2p over QUIC v1 (RFC 9000) with the libp2p TLS handshake."""

    name = "quic"

    def __init__(
        self,
        keypair: Keypair,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        keep_alive: float | None = KEEP_ALIVE,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        stream_window: int = STREAM_WINDOW,
        connection_window: int = CONNECTION_WINDOW,
        max_datagram_size: int = MAX_DATAGRAM_SIZE,
        session_resumption: bool = True,
        zero_rtt: bool = False,
    ) -> None:
        self.keypair = keypair
        self._idle_timeout = idle_timeout
        self._keep_alive_interval = keep_alive
        self._handshake_timeout = handshake_timeout
        self._stream_window = stream_window
        self._connection_window = max(connection_window, stream_window)
        self._max_datagram_size = max_datagram_size
        self._session_resumption = session_resumption
        self._zero_rtt = zero_rtt
        self._certificate: x509.Certificate | None = None
        self._certificate_key: ec.EllipticCurvePrivateKey | None = None
        self._endpoints: list[_Endpoint] = []
        self._dial_endpoints: dict[int, _Endpoint] = {}  # family -> socket for dialling when no listener fits
        self._connections: set[QuicConnection] = set()
        self._pending_inbound: set[QuicConnection] = set()
        self._server_tickets: OrderedDict[bytes, tuple[tls.SessionTicket, PeerId]] = OrderedDict()
        self._client_tickets: OrderedDict[tuple[str, int], tuple[tls.SessionTicket, PeerId]] = OrderedDict()
        self._closing = False

    # -- Transport --

    def can_dial(self, addr: Multiaddr) -> bool:
        try:
            _parse_multiaddr(addr)
        except ValueError:
            return False
        return True

    async def dial(self, addr: Multiaddr, peer_id: PeerId | None = None) -> QuicConnection:
        host, port, in_addr = _parse_multiaddr(addr)
        if peer_id is not None and in_addr is not None and peer_id != in_addr:
            raise ValueError(f"{addr} names peer {in_addr}, not the expected {peer_id}")
        expected = peer_id or in_addr
        if ipaddress.ip_address(host).is_unspecified:
            raise TransportError(f"cannot dial the unspecified address in {addr}")
        if self._closing:
            raise TransportError("transport closed")
        endpoint = self._endpoint_for(host)
        remote = _socket_address(host, port)

        ticket = None
        if self._session_resumption:
            entry = self._client_tickets.pop((host, port), None)
            if entry is not None and (expected is None or entry[1] == expected) and entry[0].is_valid:
                ticket = entry
        quic = self._make_quic(is_client=True, expected=ticket[1] if ticket else expected, ticket=ticket)
        quic.p2p_remote = (host, port)
        connection = QuicConnection(self, endpoint, quic, remote, outbound=True)
        self._connections.add(connection)
        loop = endpoint.loop
        try:
            quic.connect(remote, now=loop.time())
            endpoint.register(quic.host_cid, connection)
            connection._transmit()
            if ticket is not None and self._zero_rtt and quic._cryptos[tls.Epoch.ZERO_RTT].send.is_valid():
                # 0-RTT: usable now; the handshake finishes in the background (or the connection closes)
                connection.early_data = connection.resumed = True
                connection._handshake_deadline = loop.call_later(
                    self._handshake_timeout, connection._on_handshake_timeout
                )
                connection._announce(ticket[1])
                return connection
            async with asyncio.timeout(self._handshake_timeout):
                await asyncio.shield(connection._handshake)
        except TimeoutError:
            connection._abort(f"handshake with {addr} timed out")
            raise TransportError(f"QUIC handshake with {addr} timed out") from None
        except BaseException:
            connection._abort("dial abandoned")
            raise
        if not connection._announced:
            connection._abort("handshake failed")
            raise connection._handshake_failure()
        return connection

    async def listen(self, addr: Multiaddr, on_connection: Callable[[Connection], None]) -> Multiaddr:
        host, port, peer = _parse_multiaddr(addr)
        if peer is not None and peer != self.keypair.peer_id:
            raise ValueError(f"{addr} names another peer")
        if self._closing:
            raise TransportError("transport closed")
        sock = _bind(host, port)
        endpoint = _Endpoint(self, sock, on_connection)
        self._endpoints.append(endpoint)
        self._credentials()  # made now rather than in the first handshake, which it would delay by a millisecond
        return endpoint.multiaddr

    async def close(self) -> None:
        self._closing = True
        for connection in list(self._connections):
            connection._abort("transport closed")
            connection._on_terminated(None)
        for endpoint in [*self._endpoints, *self._dial_endpoints.values()]:
            endpoint.close()
        self._endpoints.clear()
        self._dial_endpoints.clear()

    @property
    def listen_addrs(self) -> list[Multiaddr]:
        return [e.multiaddr for e in self._endpoints]

    # -- internals --

    def _credentials(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        now = datetime.datetime.now(datetime.UTC)
        if self._certificate is None or self._certificate.not_valid_after_utc - now < CERTIFICATE_RENEWAL:
            self._certificate, self._certificate_key = make_certificate(self.keypair, now=now)
        return self._certificate, self._certificate_key

    def _make_quic(
        self,
        *,
        is_client: bool,
        expected: PeerId | None = None,
        ticket: tuple | None = None,
        odcid: bytes | None = None,
    ) -> _Libp2pQuic:
        certificate, key = self._credentials()
        configuration = QuicConfiguration(
            is_client=is_client,
            alpn_protocols=[ALPN],
            certificate=certificate,
            private_key=key,
            verify_mode=ssl.CERT_NONE,  # the libp2p check (_Libp2pTls) replaces X.509 chain verification
            idle_timeout=self._idle_timeout,
            max_data=self._connection_window,
            max_stream_data=self._stream_window,
            max_datagram_size=self._max_datagram_size,
            connection_id_length=CID_LENGTH,
            supported_versions=list(SUPPORTED_VERSIONS),
            session_ticket=ticket[0] if ticket is not None else None,
        )
        kwargs: dict[str, Any] = {}
        if not is_client:
            kwargs["original_destination_connection_id"] = odcid
        quic = _Libp2pQuic(
            configuration=configuration,
            transport=self,
            expected=expected,
            stream_window=self._stream_window,
            connection_window=self._connection_window,
            **kwargs,
        )
        if ticket is not None:
            quic.p2p_ticket_peer = ticket[1]
        if not self._session_resumption:
            quic._session_ticket_fetcher = None
            quic._session_ticket_handler = None
        return quic

    def _accept(self, endpoint: _Endpoint, odcid: bytes, addr: tuple) -> QuicConnection:
        quic = self._make_quic(is_client=False, odcid=odcid)
        connection = QuicConnection(self, endpoint, quic, addr, outbound=False)
        self._connections.add(connection)
        self._pending_inbound.add(connection)
        endpoint.register(odcid, connection)
        endpoint.register(quic.host_cid, connection)
        connection._handshake_deadline = endpoint.loop.call_later(
            self._handshake_timeout, connection._on_handshake_timeout
        )
        return connection

    def _endpoint_for(self, host: str) -> _Endpoint:
        for endpoint in self._endpoints:
            if endpoint.can_reach(host):
                return endpoint
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        endpoint = self._dial_endpoints.get(family)
        if endpoint is None:
            sock = _bind("::" if family == socket.AF_INET6 else "0.0.0.0", 0)
            endpoint = self._dial_endpoints[family] = _Endpoint(self, sock, None)
        return endpoint


# ---- addresses -------------------------------------------------------------------------------------------


def _parse_multiaddr(addr: Multiaddr) -> tuple[str, int, PeerId | None]:
    """(host, port, peer ID or None) of ``/ip4|ip6/<host>/udp/<port>/quic-v1[/p2p/<id>]``; ValueError else."""
    return ip_endpoint(addr, "udp", "quic-v1")


def _normalise_host(host: str) -> str:
    return ipaddress.ip_address(host.split("%", 1)[0]).compressed


def _socket_address(host: str, port: int) -> tuple:
    """The address form recvfrom reports for this peer, so aioquic sees replies come from where it sent."""
    if ipaddress.ip_address(host).version == 6:
        return (host, port, 0, 0)
    return (host, port)


def _to_multiaddr(addr: tuple) -> Multiaddr:
    return ip_multiaddr(addr[0], addr[1], "udp", "quic-v1")


def _format_addr(addr: tuple) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            except OSError:
                pass
        sock.setblocking(False)
        sock.bind(_socket_address(host, port))
    except BaseException:
        sock.close()
        raise
    return sock


__all__ = ["ALPN", "QuicConnection", "QuicStream", "QuicTransport"]
