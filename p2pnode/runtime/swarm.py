"""The swarm: a node's transports, its open connections, its address book and its stream protocols.

It dials peers (IPv6 addresses first, then in the order the transports were given), deduplicates
concurrent dials, accepts inbound connections, and runs multistream-select on every inbound stream before
handing it to the handler registered for the protocol agreed on. A failing handler resets its stream and
logs a line; nothing a remote peer sends can stop the node.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar

from multiaddr import Multiaddr

from p2pnode.framing import CodecError
from p2pnode.identity import Keypair, PeerId
from p2pnode.peerlog import PeerLog
from p2pnode.resources import ResourceLimits, ResourceManager
from p2pnode.transports import multistream
from p2pnode.transports.addresses import parse as parse_multiaddr
from p2pnode.transports.addresses import without_peer_id
from p2pnode.transports.base import Connection, Stream, Transport, TransportError

log = logging.getLogger("p2pnode.swarm")

# The request a log line belongs to: set per inbound stream and per outbound request (each runs in its
# own task, so its own context); the CLI's log formatter prints it.
correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")
_next_id = itertools.count(1)


def new_correlation_id(peer: PeerId) -> str:
    """``<short peer>#<n>``: which peer the request is with, and which of this process's requests it is."""
    cid = f"{peer.short()}#{next(_next_id)}"
    correlation_id.set(cid)
    return cid


StreamHandler = Callable[[Stream], Awaitable[None]]
NEGOTIATION_TIMEOUT = 10.0
# Errors a misbehaving or vanished peer causes on a stream: logged, the stream reset, the node carries on.
PEER_ERRORS = (TransportError, CodecError, OSError, asyncio.IncompleteReadError, TimeoutError, EOFError)


def to_multiaddr(addr: bytes | str | Multiaddr) -> Multiaddr | None:
    """A multiaddr from its binary or text form; None for bytes or text that are not one."""
    if isinstance(addr, Multiaddr):
        return addr
    try:
        return parse_multiaddr(addr)
    except ValueError:
        return None


def is_ip6(addr: Multiaddr) -> bool:
    return addr.protocols()[0].name == "ip6"


class Swarm:
    def __init__(
        self,
        keypair: Keypair,
        transports: Sequence[Transport],
        dial_timeout: float = 10.0,
        max_connections: int = 1000,
        resources: ResourceManager | None = None,
    ):
        self.keypair = keypair
        self.resources = resources or ResourceManager(ResourceLimits(connections=max_connections))
        self.peer_id = keypair.peer_id
        self._dialable = functools.lru_cache(maxsize=8192)(self._parse_dialable)
        self._transport_for = functools.lru_cache(maxsize=8192)(self._find_transport)
        self.transports = transports
        self.dial_timeout = dial_timeout
        self.max_connections = max_connections
        self.handlers: dict[str, StreamHandler] = {}
        self.connections: dict[PeerId, list[Connection]] = {}
        self.addrbook: dict[PeerId, list[Multiaddr]] = {}
        self.listen_addrs: list[Multiaddr] = []
        # NAT traversal: what to advertise instead of our interface addresses (a private node's circuit
        # addresses), and protocols served but not announced (the DHT, in client mode)
        self.address_filter: Callable[[list[Multiaddr]], list[Multiaddr]] | None = None
        # addresses a router maps to our listening ports (runtime/portmap.py), advertised beside them
        self.external_addrs: list[Multiaddr] = []
        self.hidden_protocols: set[str] = set()
        self.on_connection: Callable[[Connection], None] = lambda conn: None
        self.on_disconnect: Callable[[PeerId], None] = lambda peer: None
        # whether a new inbound stream from a peer is within the rate limits: checked before it is
        # negotiated, so a refused flood costs the node no more than the stream's opening
        self.admit_stream: Callable[[PeerId], bool] = lambda peer: True
        self._dials: dict[PeerId, asyncio.Task[Connection]] = {}
        self._closed_bytes = [0, 0]  # in, out: of connections that have closed
        self._tasks: set[asyncio.Task] = set()
        self.peer_log = PeerLog(log, time.monotonic)
        self.closing = False

    @property
    def transports(self) -> list[Transport]:
        return self._transports

    @transports.setter
    def transports(self, transports: Sequence[Transport]) -> None:
        # Every DHT answer carries up to 20 peers' addresses, mostly ones seen before: parsing them anew
        # each time was a fifth of a busy node's CPU, hence the caches (which depend on the transports).
        self._transports = list(transports)
        self._dialable.cache_clear()
        self._transport_for.cache_clear()

    # ---- plumbing --------------------------------------------------------------------------------

    def spawn(self, coro: Awaitable) -> asyncio.Task:
        """Run ``coro`` in the background; the swarm cancels it on close and logs what it raises."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def set_handler(self, protocol: str, handler: StreamHandler) -> None:
        self.handlers[protocol] = handler

    @property
    def protocols(self) -> list[str]:
        return [p for p in self.handlers if p not in self.hidden_protocols]

    # ---- listening -------------------------------------------------------------------------------

    async def listen(self, addrs: Iterable[str | Multiaddr]) -> list[Multiaddr]:
        for text in addrs:
            addr = Multiaddr(text) if isinstance(text, str) else text
            # transports dial only real ports; port 0 (any) is for listening
            transport = self._transport_for(Multiaddr(re.sub(r"/(tcp|udp)/0(?=/|$)", r"/\1/1", str(addr))))
            if transport is None:
                raise ValueError(f"no transport can listen on {addr}")
            bound = await transport.listen(addr, self._inbound)
            self.listen_addrs.append(bound)
        return self.listen_addrs

    def advertised_addrs(self) -> list[Multiaddr]:
        """Listen addresses with wildcards expanded to this host's interface addresses; IPv6 first."""
        out: list[Multiaddr] = []
        for addr in self.listen_addrs:
            proto = addr.protocols()[0].name
            host = addr.value_for_protocol(proto)
            if host in ("::", "0.0.0.0"):
                rest = str(addr)[len(f"/{proto}/{host}"):]
                out.extend(Multiaddr(f"/{proto}/{ip}{rest}") for ip in _interface_ips(proto))
            else:
                out.append(addr)
        out = sorted(dict.fromkeys(out + self.external_addrs), key=lambda a: not is_ip6(a))
        return out if self.address_filter is None else self.address_filter(out)

    def _inbound(self, conn: Connection) -> None:
        if conn.remote_peer == self.peer_id:
            log.warning("refusing a connection from %s: it authenticated with our own peer ID, so another "
                        "process is running with our key (each node needs its own key file)", conn.remote_addr)
            self.spawn(conn.close())
            return
        if self.closing or sum(len(c) for c in self.connections.values()) >= self.max_connections:
            log.info("refusing connection from %s: at the connection limit", conn.remote_peer.short())
            if not self.closing:
                self.resources.refuse("connections")
            self.spawn(conn.close())
            return
        self._add(conn)

    # ---- connections -----------------------------------------------------------------------------

    def connection(self, peer: PeerId) -> Connection | None:
        """The connection streams to ``peer`` go on: the newest direct one, else the newest relayed one."""
        relayed = None
        for conn in reversed(self.connections.get(peer, ())):
            if not conn.closed:
                if conn.transport != "circuit":
                    return conn
                relayed = relayed or conn
        return relayed

    def _add(self, conn: Connection) -> None:
        # Every new connection is announced, also to a peer we are still connected to: that peer may have
        # restarted, with the old connection dead but not yet timed out, and its protocols start afresh.
        self.connections.setdefault(conn.remote_peer, []).append(conn)
        conn.on_close(self._removed)
        self.spawn(self._accept_streams(conn))
        self.on_connection(conn)

    def bandwidth(self) -> tuple[int, int]:
        """Application bytes received and sent over all connections so far."""
        live = [c for conns in self.connections.values() for c in conns]
        return (self._closed_bytes[0] + sum(c.bytes_in for c in live),
                self._closed_bytes[1] + sum(c.bytes_out for c in live))

    def _removed(self, conn: Connection) -> None:
        self._closed_bytes[0] += conn.bytes_in
        self._closed_bytes[1] += conn.bytes_out
        peer = conn.remote_peer
        conns = [c for c in self.connections.get(peer, ()) if c is not conn and not c.closed]
        if conns:
            self.connections[peer] = conns
            return
        self.connections.pop(peer, None)
        if not self.closing:
            self.on_disconnect(peer)

    def learn(self, peer: PeerId, addrs: Iterable[bytes | str | Multiaddr]) -> None:
        """Remember dialable addresses of ``peer`` (newest first, no duplicates)."""
        if peer == self.peer_id:
            return
        known = self.addrbook.setdefault(peer, [])
        for raw in addrs:
            addr = self._dialable(raw)
            if addr is None:
                continue
            if addr in known:
                known.remove(addr)
            known.insert(0, addr)
        del known[32:]

    def dial_order(self, addrs: Iterable[Multiaddr]) -> list[Multiaddr]:
        rank = {t.name: i for i, t in enumerate(self.transports)}

        def key(addr: Multiaddr) -> tuple[bool, int]:
            transport = self._transport_for(addr)
            return (not is_ip6(addr), rank[transport.name] if transport else len(rank))

        return sorted(dict.fromkeys(addrs), key=key)

    async def dial(self, peer: PeerId, addrs: Iterable[bytes | str | Multiaddr] = ()) -> Connection:
        """An open connection to ``peer``: an existing one, or a new one dialled over its addresses."""
        if peer == self.peer_id:
            log.warning("refusing to dial %s: that is our own peer ID", peer.short())
            raise TransportError(f"refusing to dial {peer.short()}: that is our own peer ID")
        conn = self.connection(peer)
        if conn is not None:
            return conn
        self.learn(peer, addrs)
        task = self._dials.get(peer)
        if task is None:
            task = asyncio.ensure_future(self._dial(peer))
            self._dials[peer] = task
            task.add_done_callback(lambda t: (self._dials.pop(peer, None), t.cancelled() or t.exception()))
        return await asyncio.shield(task)

    async def _dial(self, peer: PeerId) -> Connection:
        candidates = self.dial_order(self.addrbook.get(peer, ()))
        if not candidates:
            raise TransportError(f"no known address for {peer.short()}")
        errors = []
        for addr in candidates:
            transport = self._transport_for(addr)
            try:
                async with asyncio.timeout(self.dial_timeout):
                    conn = await transport.dial(addr, peer)
            except (TransportError, OSError, TimeoutError) as exc:
                errors.append(f"{addr}: {exc or type(exc).__name__}")
                continue
            self._add(conn)  # if the peer dialled us meanwhile, both stay open and streams use the newest
            return conn
        raise TransportError(f"could not dial {peer.short()}: " + "; ".join(errors))

    async def dial_direct(self, peer: PeerId, addrs: Iterable[Multiaddr], timeout: float) -> Connection:
        """A new direct connection to ``peer`` over one of ``addrs`` (tried at once, the first up wins), even
        though a relayed one is open: how DCUtR and connection reversal replace a relayed connection."""
        async def one(addr: Multiaddr) -> Connection:
            transport = self._transport_for(addr)
            if transport is None or transport.name == "circuit":
                raise TransportError(f"cannot dial {addr} directly")
            return await transport.dial(addr, peer)

        tasks = [asyncio.ensure_future(one(a)) for a in dict.fromkeys(addrs)]
        if not tasks:
            raise TransportError("no direct address to dial")
        try:
            async with asyncio.timeout(timeout):
                for next_done in asyncio.as_completed(tasks):
                    try:
                        conn = await next_done
                    except (TransportError, OSError, TimeoutError, ValueError):
                        continue
                    self._add(conn)
                    return conn
        except TimeoutError:
            pass
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
        raise TransportError(f"no direct connection to {peer.short()}")

    def _parse_dialable(self, raw: bytes | str | Multiaddr) -> Multiaddr | None:
        """``raw`` as a multiaddr without its /p2p part, if one of our transports can dial it."""
        addr = to_multiaddr(raw)
        if addr is None or self._transport_for(addr) is None:
            return None
        return without_peer_id(addr)

    def _find_transport(self, addr: Multiaddr) -> Transport | None:
        for transport in self.transports:
            if transport.can_dial(addr):
                return transport
        return None

    async def disconnect(self, peer: PeerId) -> None:
        for conn in list(self.connections.get(peer, ())):
            await conn.close()

    # ---- streams ---------------------------------------------------------------------------------

    async def new_stream(self, peer: PeerId, protocols: Sequence[str],
                         addrs: Iterable[bytes | str | Multiaddr] = (), lazy: bool = False) -> Stream:
        """A stream to ``peer`` speaking the first of ``protocols`` it supports (dialling if needed).

        ``lazy`` (one protocol only): propose it and return at once, without waiting for the answer, so
        the caller's first message travels with the proposal; the caller then reads the answer with
        ``multistream.confirm`` before the response. Saves a round trip per request, as libp2p's lazy
        negotiation does."""
        conn = await self.dial(peer, addrs)
        stream = await conn.open_stream()
        try:
            async with asyncio.timeout(NEGOTIATION_TIMEOUT):
                if lazy:
                    (protocol,) = protocols
                    await multistream.propose(stream, protocol)
                    stream.protocol = protocol
                else:
                    stream.protocol = await multistream.select(stream, protocols)
        except BaseException:
            stream.reset()
            raise
        return stream

    async def _accept_streams(self, conn: Connection) -> None:
        while True:
            try:
                stream = await conn.accept_stream()
            except TransportError:
                return
            if self.admit_stream(conn.remote_peer):
                self.spawn(self._serve(stream))
            else:
                stream.reset()

    async def _serve(self, stream: Stream) -> None:
        peer = stream.connection.remote_peer
        if not self.resources.open_stream(peer):
            log.debug("refusing a stream from %s: it has %d open", peer.short(), self.resources.peer_streams(peer))
            stream.reset()
            return
        try:
            await self._serve_stream(stream, peer)
        finally:
            self.resources.close_stream(peer)

    async def _serve_stream(self, stream: Stream, peer: PeerId) -> None:
        new_correlation_id(peer)
        try:
            async with asyncio.timeout(NEGOTIATION_TIMEOUT):
                stream.protocol = await multistream.handle(stream, self.handlers)
            await self.handlers[stream.protocol](stream)
        except PEER_ERRORS as exc:
            self.peer_log.report(peer, f"stream {stream.protocol or '(negotiating)'} from {peer.short()} "
                                            f"reset: {str(exc) or type(exc).__name__}")
            stream.reset()
        except Exception:
            log.exception("handler for %s failed on a stream from %s", stream.protocol, peer.short())
            stream.reset()
        else:
            await _close_quietly(stream)

    async def close(self) -> None:
        self.closing = True
        for task in list(self._tasks) + list(self._dials.values()):
            task.cancel()
        for conns in list(self.connections.values()):
            for conn in conns:
                await conn.close()
        for transport in self.transports:
            await transport.close()
        self.connections.clear()


async def _close_quietly(stream: Stream) -> None:
    try:
        await stream.close()
    except PEER_ERRORS:
        stream.reset()


def _interface_ips(proto: str) -> list[str]:
    """This host's addresses of one family (``ip4``/``ip6``), loopback last; link-local ones left out."""
    import psutil

    family = socket.AF_INET6 if proto == "ip6" else socket.AF_INET
    ips = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == family and not a.address.startswith("fe80"):
                ips.append(a.address.split("%")[0])
    return sorted(set(ips), key=lambda ip: ip in ("::1", "127.0.0.1"))
