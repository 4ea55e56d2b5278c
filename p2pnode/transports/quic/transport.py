"""``QuicTransport``: dial and listen over QUIC v1, holding the certificate, the endpoints and the tickets."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aioquic import tls
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.retry import QuicRetryTokenHandler
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from multiaddr import Multiaddr

from p2pnode.identity import Keypair, PeerId
from p2pnode.peerlog import PeerLog
from p2pnode.resources import ResourceManager
from p2pnode.transports.addresses import ip_endpoint
from p2pnode.transports.base import Connection, Transport, TransportError
from p2pnode.transports.quic.aioquic_patches import Libp2pQuic
from p2pnode.transports.quic.connection import QuicPeerConnection
from p2pnode.transports.quic.constants import (
    ALPN,
    CERTIFICATE_RENEWAL,
    CID_LENGTH,
    CONNECTION_WINDOW,
    HANDSHAKE_TIMEOUT,
    IDLE_TIMEOUT,
    KEEP_ALIVE,
    MAX_DATAGRAM_SIZE,
    STREAM_WINDOW,
    SUPPORTED_VERSIONS,
)
from p2pnode.transports.quic.endpoint import UdpEndpoint, bind_udp, socket_address
from p2pnode.transports.tls import make_certificate


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
        resources: ResourceManager | None = None,
    ) -> None:
        self.keypair = keypair
        self.resources = resources or ResourceManager()
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
        self._endpoints: list[UdpEndpoint] = []
        self._dial_endpoints: dict[int, UdpEndpoint] = {}  # family -> socket for dialling when no listener fits
        self._connections: set[QuicPeerConnection] = set()
        self._pending_inbound: set[QuicPeerConnection] = set()
        # failed inbound handshakes, per source address
        self.peer_log = PeerLog(logging.getLogger(__package__), time.monotonic)
        self._retry = QuicRetryTokenHandler()  # address-validation tokens (a key of this process's own)
        self._server_tickets: OrderedDict[bytes, tuple[tls.SessionTicket, PeerId]] = OrderedDict()
        self._client_tickets: OrderedDict[tuple[str, int], tuple[tls.SessionTicket, PeerId]] = OrderedDict()
        self._closing = False

    # -- Transport --

    def can_dial(self, addr: Multiaddr) -> bool:
        try:
            parse_multiaddr(addr)
        except ValueError:
            return False
        return True

    async def dial(self, addr: Multiaddr, peer_id: PeerId | None = None) -> QuicPeerConnection:
        host, port, in_addr = parse_multiaddr(addr)
        if peer_id is not None and in_addr is not None and peer_id != in_addr:
            raise ValueError(f"{addr} names peer {in_addr}, not the expected {peer_id}")
        expected = peer_id or in_addr
        if ipaddress.ip_address(host).is_unspecified:
            raise TransportError(f"cannot dial the unspecified address in {addr}")
        if self._closing:
            raise TransportError("transport closed")
        endpoint = self._endpoint_for(host)
        remote = socket_address(host, port)

        ticket = None
        if self._session_resumption:
            entry = self._client_tickets.pop((host, port), None)
            if entry is not None and (expected is None or entry[1] == expected) and entry[0].is_valid:
                ticket = entry
        quic = self._make_quic(is_client=True, expected=ticket[1] if ticket else expected, ticket=ticket)
        quic.p2p_remote = (host, port)
        connection = QuicPeerConnection(self, endpoint, quic, remote, outbound=True)
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
        host, port, peer = parse_multiaddr(addr)
        if peer is not None and peer != self.keypair.peer_id:
            raise ValueError(f"{addr} names another peer")
        if self._closing:
            raise TransportError("transport closed")
        sock = bind_udp(host, port)
        endpoint = UdpEndpoint(self, sock, on_connection)
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

    def send_datagram(self, host: str, port: int, data: bytes) -> None:
        """One UDP datagram from the socket dials to ``host`` go out of (our listening one): DCUtR's spray,
        which opens our NAT for the peer's QUIC dial."""
        self._endpoint_for(host).send(data, socket_address(host, port))

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
        retry_cid: bytes | None = None,
    ) -> Libp2pQuic:
        certificate, key = self._credentials()
        configuration = QuicConfiguration(
            is_client=is_client,
            alpn_protocols=[ALPN],
            certificate=certificate,
            private_key=key,
            verify_mode=ssl.CERT_NONE,  # the libp2p check (Libp2pTls) replaces X.509 chain verification
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
            kwargs["retry_source_connection_id"] = retry_cid
        quic = Libp2pQuic(
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

    def _accept(self, endpoint: UdpEndpoint, odcid: bytes, addr: tuple,
                retry_cid: bytes | None = None) -> QuicPeerConnection:
        """A server connection for a client's first Initial (sent to ``odcid``, or after our Retry to
        ``retry_cid``)."""
        quic = self._make_quic(is_client=False, odcid=odcid, retry_cid=retry_cid)
        connection = QuicPeerConnection(self, endpoint, quic, addr, outbound=False)
        self._connections.add(connection)
        self._pending_inbound.add(connection)
        endpoint.register(retry_cid or odcid, connection)
        endpoint.register(quic.host_cid, connection)
        connection._handshake_deadline = endpoint.loop.call_later(
            self._handshake_timeout, connection._on_handshake_timeout
        )
        return connection

    def _endpoint_for(self, host: str) -> UdpEndpoint:
        for endpoint in self._endpoints:
            if endpoint.can_reach(host):
                return endpoint
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        endpoint = self._dial_endpoints.get(family)
        if endpoint is None:
            sock = bind_udp("::" if family == socket.AF_INET6 else "0.0.0.0", 0)
            endpoint = self._dial_endpoints[family] = UdpEndpoint(self, sock, None)
        return endpoint


def parse_multiaddr(addr: Multiaddr) -> tuple[str, int, PeerId | None]:
    """(host, port, peer ID or None) of ``/ip4|ip6/<host>/udp/<port>/quic-v1[/p2p/<id>]``; ValueError else."""
    return ip_endpoint(addr, "udp", "quic-v1")
