"""What aioquic lacks for libp2p, added by subclassing its TLS context, QUIC connection and pacer.

aioquic 1.7.2 has no public hook for client certificates or custom certificate checks, so this module
subclasses two of its classes and leans on private members (checked at import by ``_check_aioquic``):

* the TLS context (``tls.Context``) gets the libp2p certificate check after the CertificateVerify message
  on both sides, refuses any certificate cryptography cannot parse with a bad_certificate alert, requests
  a client certificate (``_request_client_certificate``) and refuses a handshake without one; X.509 chain
  verification is turned off (``verify_mode=CERT_NONE``), the libp2p check replaces it. (aioquic would
  also wait for a client certificate in a resumed handshake, where none is requested; that is fixed here
  too. Clients offer X25519 and P-256 key shares only, not aioquic's four.)
* the QUIC connection gets stream-count limits (100 bidirectional and 1000 unidirectional streams that the
  peer may have open at once, MAX_STREAMS giving one more back for each that ends; the libp2p QUIC spec
  sets no numbers, go-libp2p allows 256 and 5, for WebTransport) and receive flow control tied to what
  the application has read: aioquic doubles a receive window whenever half of it has arrived, so a peer
  could fill our memory however slowly we read. Here the window is what was read plus ``stream_window``
  (per stream) and ``connection_window`` (per connection).
* its pacer allows bursts of up to 2 ms (``Pacer``): asyncio timers fire a millisecond late at best, and
  aioquic's 16-packet bursts then cap the rate well below what the congestion window allows.

Session tickets are remembered here too (``remember_ticket``), in the transport's caches, with the peer ID
they were issued to.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from aioquic import tls
from aioquic.buffer import Buffer
from aioquic.quic import stream as aioquic_stream
from aioquic.quic.connection import QuicConnection as AioquicConnection
from aioquic.quic.packet import QuicFrameType
from aioquic.quic.recovery import QuicPacketPacer

from p2pnode.identity import PeerId
from p2pnode.transports.quic.constants import (
    MAX_INCOMING_BIDI_STREAMS,
    MAX_INCOMING_UNI_STREAMS,
    PACING_BURST,
    TICKET_CACHE,
)
from p2pnode.transports.tls import CertificateError, verify_certificate_chain

if TYPE_CHECKING:
    from p2pnode.transports.quic.transport import QuicTransport


def _check_aioquic() -> None:
    """The private aioquic members this module depends on (present in aioquic 1.7.2)."""
    needed = {
        tls.Context: [
            "_client_handle_certificate_verify",
            "_server_handle_hello",
            "_server_handle_certificate",
            "_server_handle_certificate_verify",
            "_server_expect_finished",
            "_set_peer_certificate",
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


class Libp2pTls(tls.Context):
    """aioquic's TLS 1.3 context with the libp2p peer authentication. Instances are made by aioquic as
    plain ``tls.Context`` and switched to this class right after (``Libp2pQuic._initialize``)."""

    p2p_quic: Libp2pQuic

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

    def _set_peer_certificate(self, certificate: tls.Certificate) -> None:
        # aioquic turns the ValueError of an unparsable certificate into bad_certificate, but cryptography
        # raises other exceptions too (InvalidVersion for an X.509 version other than 1 or 3), which then
        # escaped the handshake without an alert.
        try:
            super()._set_peer_certificate(certificate)
        except tls.Alert:
            raise
        except Exception as exc:
            self.p2p_quic.p2p_error = f"unparsable certificate: {type(exc).__name__}: {exc}"
            raise tls.AlertBadCertificate("Certificate could not be parsed") from exc

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


class Pacer(QuicPacketPacer):
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


class Libp2pQuic(AioquicConnection):
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
        self._loss._pacer = Pacer(max_datagram_size=self._max_datagram_size)
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
        self.tls.__class__ = Libp2pTls
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
                remember_ticket(self.p2p_transport._client_tickets, self.p2p_remote, (ticket, peer))
        else:
            remember_ticket(self.p2p_transport._server_tickets, ticket.ticket, (ticket, peer))

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
        target = stream.receiver.starting_offset() - (reader._uncredited() if reader is not None else 0) + window
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


def remember_ticket(cache: OrderedDict, key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > TICKET_CACHE:
        cache.popitem(last=False)
