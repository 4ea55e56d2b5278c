"""Relayed connections (Circuit Relay v2) as a transport: ``/…/p2p/<relay>/p2p-circuit/p2p/<peer>``.

Dialling opens a hop stream to the relay (through the swarm, over whatever connection reaches it), sends
``CONNECT``, and on ``OK`` the stream is the relayed connection's byte pipe. Inbound, the stop handler
(``p2pnode.runtime.nat``) answers the relay's ``CONNECT`` and hands its stream here. Either way the stream is
upgraded as a TCP connection is (libp2p's rule: the relay must see only ciphertext): multistream-select
``/noise``, the Noise XX handshake (the dialler the initiator), then ``/yamux/1.0.0`` inside the secure
channel. ``CircuitConnection.transport`` is ``"circuit"``, so the swarm prefers a direct connection to the
same peer when there is one and AutoNAT servers refuse requests that come through relays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from multiaddr import Multiaddr

from p2pnode.framing import encode_uvarint
from p2pnode.identity import Keypair, PeerId
from p2pnode.relay import addrs as circuit_addrs
from p2pnode.relay.messages import HOP_PROTOCOL, MAX_MESSAGE, Connect, HopStatus, Limit, Status, decode_hop, encode_hop
from p2pnode.transports import multistream, noise, yamux
from p2pnode.transports.base import Connection, Stream, Transport, TransportError
from p2pnode.transports.multistream import read_frame

if TYPE_CHECKING:
    from p2pnode.runtime.swarm import Swarm

log = logging.getLogger("p2pnode.transports.circuit")

HANDSHAKE_TIMEOUT = 10.0
WRITE_QUEUE_HIGH = 1 << 20  # bytes queued for the relay stream before writers wait


class CircuitRefused(TransportError):
    """The relay answered CONNECT with a status other than OK."""

    def __init__(self, status: Status):
        super().__init__(f"relay refused the circuit: {status.name}")
        self.status = status


def frame(data: bytes) -> bytes:
    return encode_uvarint(len(data)) + data


class _StreamLink:
    """The Yamux session's byte pipe: Noise transport messages on a relay's stream."""

    def __init__(self, stream: Stream, cipher: noise.NoiseCipher):
        self.stream = stream
        self.cipher = cipher
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self.throttled = False  # the reader waits for the queue to drain before its next read
        self._writer = asyncio.ensure_future(self._write_loop())

    def write(self, data: bytes) -> None:
        message = bytes(self.cipher.encrypt(data))
        self._queued += len(message)
        if self._queued > WRITE_QUEUE_HIGH:
            self._drained.clear()
        self._queue.put_nowait(message)

    async def drain(self) -> None:
        await self._drained.wait()

    @property
    def write_blocked(self) -> bool:
        return not self._drained.is_set()

    def throttle(self) -> None:
        self.throttled = True

    async def _write_loop(self) -> None:
        try:
            while (message := await self._queue.get()) is not None:
                await self.stream.write(message)
                self._queued -= len(message)
                if self._queued <= WRITE_QUEUE_HIGH // 2:
                    self._drained.set()
            await self.stream.close()
        except (TransportError, OSError) as exc:
            log.debug("relayed stream write ended: %s", exc)
            self.stream.reset()
        finally:
            self._drained.set()

    def close(self) -> None:
        self._queue.put_nowait(None)

    def abort(self) -> None:
        self._writer.cancel()
        self.stream.reset()


class CircuitConnection(yamux.YamuxConnection):
    transport = "circuit"

    def __init__(self, session: yamux.YamuxSession, link: _StreamLink, *, local_peer: PeerId, remote_peer: PeerId,
                 relay: PeerId, remote_addr: Multiaddr, outbound: bool, limit: Limit | None):
        super().__init__(session, link)
        self.local_peer = local_peer
        self.remote_peer = remote_peer
        self.relay = relay
        self.local_addr = Multiaddr(f"/p2p/{relay}/p2p-circuit")
        self.remote_addr = remote_addr
        self.outbound = outbound
        self.limit = limit  # what the relay allows it (its data limit each way, its duration)
        self._reader = asyncio.ensure_future(self._read_loop(link))

    async def _read_loop(self, link: _StreamLink) -> None:
        reason = "relayed stream closed"
        try:
            while data := await link.stream.read():
                if link.throttled:
                    link.throttled = False
                    await link.drain()
                plaintext = link.cipher.decrypt(data)
                if plaintext:
                    self._receive(plaintext)
        except noise.NoiseError as exc:
            reason = str(exc)
            link.abort()
        except (TransportError, OSError) as exc:
            reason = f"relayed stream reset: {exc}"
        self._link_lost(reason)

    async def close(self) -> None:
        await super().close()
        self._reader.cancel()


async def upgrade(stream: Stream, credentials: noise.NoiseCredentials, *, outbound: bool, expected: PeerId | None,
                  relay: PeerId, limit: Limit | None) -> CircuitConnection:
    """Secure and multiplex a relay's stream: Noise (the dialler initiates), then Yamux."""
    async with asyncio.timeout(HANDSHAKE_TIMEOUT):
        if outbound:
            await multistream.select(stream, [noise.PROTOCOL_ID])
        else:
            await multistream.handle(stream, [noise.PROTOCOL_ID])
        remote, cipher = await noise.handshake(stream, credentials, initiator=outbound, expected_peer=expected)
        channel = noise.SecureChannel(stream, cipher)
        if outbound:
            await multistream.select(channel, [yamux.PROTOCOL_ID])
        else:
            await multistream.handle(channel, [yamux.PROTOCOL_ID])
    session = yamux.YamuxSession(is_client=outbound)
    conn = CircuitConnection(session, _StreamLink(stream, cipher), local_peer=credentials.keypair.peer_id,
                             remote_peer=remote, relay=relay, outbound=outbound, limit=limit,
                             remote_addr=circuit_addrs.dial_addr(Multiaddr(f"/p2p/{relay}"), remote))
    leftover = channel.leftover()
    if leftover:
        conn._receive(leftover)
    return conn


class CircuitTransport(Transport):
    """Dials ``/p2p-circuit`` addresses through the swarm's connections to relays; inbound circuits arrive
    through the stop handler (``accept``)."""

    name = "circuit"

    def __init__(self, keypair: Keypair, swarm: Swarm):
        self.keypair = keypair
        self.swarm = swarm
        self.credentials = noise.NoiseCredentials(keypair)
        self._connections: set[CircuitConnection] = set()
        self._on_connection: Callable[[Connection], None] | None = None

    def can_dial(self, addr: Multiaddr) -> bool:
        """A circuit address, with the target peer at its end or not (the dialler then names it)."""
        return circuit_addrs.parse(addr) is not None

    async def dial(self, addr: Multiaddr, peer_id: PeerId | None = None) -> Connection:
        parsed = circuit_addrs.parse(addr)
        if parsed is None or (parsed.target or peer_id) is None:
            raise TransportError(f"not a circuit address with a target peer: {addr}")
        target = parsed.target or peer_id
        if peer_id is not None and peer_id != target:
            raise TransportError(f"{addr} names a peer other than {peer_id}")
        relay_addrs = [parsed.relay_addr] if parsed.relay_addr.protocols()[0].name != "p2p" else []
        stream = await self.swarm.new_stream(parsed.relay, [HOP_PROTOCOL], relay_addrs)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await stream.write(frame(encode_hop(Connect(target))))
                answer = decode_hop(await read_frame(stream, MAX_MESSAGE))
            if not isinstance(answer, HopStatus):
                raise TransportError(f"relay answered CONNECT with {type(answer).__name__}")
            if answer.status is not Status.OK:
                raise CircuitRefused(answer.status)
            conn = await upgrade(stream, self.credentials, outbound=True, expected=target, relay=parsed.relay,
                                 limit=answer.limit)
        except BaseException:
            stream.reset()
            raise
        self._track(conn)
        return conn

    async def accept(self, stream: Stream, relay: PeerId, limit: Limit | None) -> CircuitConnection:
        """An inbound circuit, once the stop handler said OK: upgrade it and hand it to the swarm."""
        conn = await upgrade(stream, self.credentials, outbound=False, expected=None, relay=relay, limit=limit)
        self._track(conn)
        if self._on_connection is not None:
            self._on_connection(conn)
        return conn

    def _track(self, conn: CircuitConnection) -> None:
        self._connections.add(conn)
        conn.on_close(self._connections.discard)

    async def listen(self, addr: Multiaddr, on_connection: Callable[[Connection], None]) -> Multiaddr:
        """Circuits need no socket: remember where inbound ones go (``addr`` is a ``/p2p-circuit``)."""
        self._on_connection = on_connection
        return addr

    async def close(self) -> None:
        for conn in list(self._connections):
            await conn.close()
