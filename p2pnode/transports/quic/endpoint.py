"""UDP endpoints: one socket serves its listener and every connection through it, routed by connection ID;
and the socket addresses of the QUIC transport."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from aioquic.asyncio.server import _encode_invalid_token_close  # private, but aioquic's own INVALID_TOKEN close
from aioquic.buffer import Buffer
from aioquic.quic.packet import (
    QuicPacketType,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from multiaddr import Multiaddr

from p2pnode.transports.addresses import ip_multiaddr
from p2pnode.transports.base import Connection
from p2pnode.transports.quic.constants import (
    CID_LENGTH,
    RECV_BATCH,
    SEND_QUEUE_LIMIT,
    SOCKET_BUFFER,
    SUPPORTED_VERSIONS,
)

if TYPE_CHECKING:
    from p2pnode.transports.quic.connection import QuicPeerConnection
    from p2pnode.transports.quic.transport import QuicTransport

logger = logging.getLogger(__package__)


class UdpEndpoint:
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
        self.host = normalise_host(bound[0])
        self.port = bound[1]
        self.on_connection = on_connection
        self.multiaddr = to_multiaddr((self.host, self.port))
        self._by_cid: dict[bytes, QuicPeerConnection] = {}
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
        return to_multiaddr((source, self.port))

    def can_reach(self, host: str) -> bool:
        """Whether dialling ``host`` from this socket works: same family, and a wildcard bind or one whose
        address is loopback exactly when the target is."""
        ip = ipaddress.ip_address(host)
        if (ip.version == 6) != (self.family == socket.AF_INET6):
            return False
        bound = ipaddress.ip_address(self.host)
        return bound.is_unspecified or bound.is_loopback == ip.is_loopback

    def register(self, cid: bytes, connection: QuicPeerConnection) -> None:
        self._by_cid[cid] = connection
        connection._cids.add(cid)

    def unregister(self, cid: bytes, connection: QuicPeerConnection) -> None:
        if self._by_cid.get(cid) is connection:
            del self._by_cid[cid]
        connection._cids.discard(cid)

    def unregister_all(self, connection: QuicPeerConnection) -> None:
        for cid in list(connection._cids):
            self.unregister(cid, connection)

    # -- receiving --

    def _on_readable(self) -> None:
        recvfrom = self.sock.recvfrom
        by_cid = self._by_cid
        now = self.loop.time()
        touched: list[QuicPeerConnection] = []
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

    def _route_long(self, data: bytes, addr: tuple) -> QuicPeerConnection | None:
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
            return self._admit(header, addr)
        return None

    def _admit(self, header, addr: tuple) -> QuicPeerConnection | None:
        """A new connection for a client's first Initial, if the resource manager admits it. Once
        handshakes pile up, a client without a token is first sent a Retry (stateless: nothing is kept),
        and one whose token does not validate is told INVALID_TOKEN (RFC 9000 §8.1)."""
        owner = self.owner
        resources = owner.resources
        pending = owner._pending_inbound
        retry_cid = None
        odcid = header.destination_cid
        now = self.loop.time()
        if header.token:
            try:
                odcid = owner._retry.validate_token(address=addr, destination_cid=header.destination_cid,
                                                    token=header.token, now=now)
            except ValueError:
                resources.refuse("invalid_token")
                self.send(_encode_invalid_token_close(version=header.version, source_cid=header.destination_cid,
                                                      destination_cid=header.source_cid), addr)
                return None
            retry_cid = header.destination_cid
        elif len(pending) >= resources.limits.retry_after:
            resources.refuse("retry")  # not a refusal of the client: it dials again with the token
            source_cid = os.urandom(CID_LENGTH)
            token = owner._retry.create_token(address=addr, original_destination_connection_id=odcid,
                                              retry_source_connection_id=source_cid, now=now)
            self.send(encode_quic_retry(version=header.version, source_cid=source_cid,
                                        destination_cid=header.source_cid, original_destination_cid=odcid,
                                        retry_token=token), addr)
            return None
        from_source = sum(1 for c in pending if c._remote[0] == addr[0])
        if not resources.admit_handshake(len(pending), from_source):
            logger.debug("dropping a QUIC Initial from %s: too many handshakes in progress", addr)
            return None
        return owner._accept(self, odcid, addr, retry_cid)

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


def normalise_host(host: str) -> str:
    return ipaddress.ip_address(host.split("%", 1)[0]).compressed


def socket_address(host: str, port: int) -> tuple:
    """The address form recvfrom reports for this peer, so aioquic sees replies come from where it sent."""
    if ipaddress.ip_address(host).version == 6:
        return (host, port, 0, 0)
    return (host, port)


def to_multiaddr(addr: tuple) -> Multiaddr:
    return ip_multiaddr(addr[0], addr[1], "udp", "quic-v1")


def format_addr(addr: tuple) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def bind_udp(host: str, port: int) -> socket.socket:
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
        sock.bind(socket_address(host, port))
    except BaseException:
        sock.close()
        raise
    return sock
