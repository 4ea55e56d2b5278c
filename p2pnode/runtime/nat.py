"""NAT traversal on real connections: the streams of the sans-IO ``p2pnode.traversal.NatTraversal``.

``NatRuntime`` (made by ``Node.start`` when the node has a ``[nat]`` section) serves and speaks:

- hop (``/libp2p/circuit/relay/0.2.0/hop``): a relay answers RESERVE with its ``RelayService`` and bridges a
  CONNECT's stream with a stop stream to the target, counting every byte against the circuit's limits and
  resetting both when one is reached; malformed or unexpected messages get ``MALFORMED_MESSAGE`` /
  ``UNEXPECTED_MESSAGE`` and a log line, and the relay goes on serving others;
- stop: the target accepts a circuit from a relay it holds a reservation at and hands the stream to the
  circuit transport (``p2pnode.transports.circuit``), which upgrades it with Noise and Yamux;
- DCUtR (``/libp2p/dcutr``): on a new inbound relayed connection, a direct dial to the peer's public
  addresses, else the hole punch driven by ``Initiator`` (QUIC: the peer dials, we spray UDP packets from our
  listening socket; TCP needs port reuse, which the TCP transport does not do, so only QUIC addresses are
  punched); the responder side dials at once on SYNC;
- AutoNAT v2 (dial-request, dial-back) and v1, both as server (dial-backs from transports of their own, so
  from other ports than the listening ones) and as client (``probe``);

and feeds Identify's observed addresses (from connections whose port is our listening one: QUIC dials and
inbound TCP) to the traversal, keeps relay connections alive, advertises circuit addresses and hides the
DHT protocol while the node is private, and writes the events the simulator writes (docs/nat.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from multiaddr import Multiaddr

from p2pnode import wire
from p2pnode.autonat import messages as an
from p2pnode.autonat.addresses import IpNetwork, ip_of, public_addr
from p2pnode.autonat.client import PRIVATE, PUBLIC, ProbeResult, ReachabilityChanged
from p2pnode.autonat.server import AutoNatServer, DialChoice
from p2pnode.config import NatConfig
from p2pnode.dcutr import messages as dcutr
from p2pnode.dcutr.holepunch import Dial, Finished, Send
from p2pnode.framing import CodecError
from p2pnode.identity import PeerId
from p2pnode.kad.messages import PeerInfo
from p2pnode.relay.client import ReservationFailed, ReservationLost, ReservationMade
from p2pnode.relay.messages import (
    HOP_PROTOCOL,
    MAX_MESSAGE,
    STOP_PROTOCOL,
    Connect,
    HopStatus,
    Reserve,
    Status,
    StopConnect,
    StopStatus,
    decode_hop,
    decode_stop,
    encode_hop,
    encode_stop,
)
from p2pnode.relay.service import Circuit
from p2pnode.runtime.swarm import PEER_ERRORS
from p2pnode.transports import multistream
from p2pnode.transports.base import Connection, Stream, TransportError
from p2pnode.transports.circuit import CircuitConnection, CircuitTransport, frame
from p2pnode.transports.multistream import read_frame
from p2pnode.traversal import REVERSE, NatTraversal

if TYPE_CHECKING:
    from p2pnode.runtime.node import Node

log = logging.getLogger("p2pnode.nat")

KEEPALIVE = 15.0  # seconds between pings on relay connections, and between relay-load samples
SPRAY_GAP = (0.010, 0.200)  # DCUtR: random UDP packets towards the peer, this far apart
SPRAY_SIZE = (64, 128)
RELAYED_GRACE = 5.0  # a relayed connection replaced by a direct one is closed after this


class NatRuntime:
    def __init__(self, node: Node, config: NatConfig, public_ranges: tuple[IpNetwork, ...] = (),
                 peer_index: Callable[[PeerId], int | None] = lambda peer: None):
        self.node = node
        self.swarm = swarm = node.swarm
        self.runtime = runtime = node.runtime
        self.config = config
        self.public_ranges = public_ranges
        self.peer_index = peer_index
        loop = asyncio.get_running_loop()
        self.circuit = CircuitTransport(node.keypair, swarm)
        swarm.transports = [*swarm.transports, self.circuit]
        self.traversal = NatTraversal(
            node.keypair, runtime, config, epoch=time.time() - loop.time(),
            autonat_servers=lambda: self._speakers(an.DIAL_REQUEST_PROTOCOL, an.V1_PROTOCOL),
            relays=lambda: self._speakers(HOP_PROTOCOL), candidates=self._candidates, probe=self._probe,
            public_addrs=self._relay_addrs, can_dial=self._can_dial, public_ranges=public_ranges,
            on_event=self._event)
        node.host.attach_nat(self.traversal)
        self.punches: Counter[str] = Counter()
        self._dialback_transports: list | None = None
        self._nonces: dict[int, asyncio.Event] = {}
        self._punching: set[PeerId] = set()
        swarm.address_filter = self._advertise
        swarm.set_handler(HOP_PROTOCOL, self._serve_hop)
        swarm.set_handler(STOP_PROTOCOL, self._serve_stop)
        swarm.set_handler(dcutr.PROTOCOL, self._serve_dcutr)
        swarm.set_handler(an.DIAL_BACK_PROTOCOL, self._serve_dial_back)
        if self.traversal.autonat_server is not None:
            swarm.set_handler(an.DIAL_REQUEST_PROTOCOL, self._serve_dial_request)
            swarm.set_handler(an.V1_PROTOCOL, self._serve_v1)
        if self.traversal.service is None:
            swarm.hidden_protocols.add(HOP_PROTOCOL)
        runtime.identify_hooks.append(self._identified)

    async def start(self) -> None:
        await self.circuit.listen(Multiaddr("/p2p-circuit"), self.swarm._inbound)
        self.swarm.spawn(self._keepalive())

    # ---- what the traversal asks of the runtime --------------------------------------------------

    def _speakers(self, *protocols: str) -> list[PeerInfo]:
        """Connected peers whose Identify lists one of ``protocols``."""
        return [self.node.info_of(peer) for peer, info in self.runtime.identified.items()
                if any(p in info.protocols for p in protocols) and self.swarm.connection(peer) is not None
                and self.swarm.connection(peer).transport != "circuit"]

    def _listen_addrs(self) -> list[Multiaddr]:
        address_filter, self.swarm.address_filter = self.swarm.address_filter, None
        try:
            return self.swarm.advertised_addrs()
        finally:
            self.swarm.address_filter = address_filter

    def _candidates(self) -> list[bytes]:
        now = self.runtime.now()
        own = [a.to_bytes() for a in self._listen_addrs() if public_addr(a, self.public_ranges)]
        return list(dict.fromkeys(own + self.traversal.observed.all(now)))[:4]

    def _relay_addrs(self) -> tuple[bytes, ...]:
        suffix = Multiaddr(f"/p2p/{self.node.peer_id}")
        return tuple(a.encapsulate(suffix).to_bytes() for a in self._listen_addrs()
                     if public_addr(a, self.public_ranges))

    def _can_dial(self, addr: bytes) -> bool:
        return any(t.can_dial(Multiaddr(addr)) for t in self.swarm.transports if t.name != "circuit")

    def _advertise(self, addrs: list[Multiaddr]) -> list[Multiaddr]:
        if not self.traversal.private:
            return addrs
        return [Multiaddr(a) for a in self.traversal.advertised(a.to_bytes() for a in addrs)]

    # ---- events ----------------------------------------------------------------------------------

    def _event(self, event: Any) -> None:
        record = self.node.record_event
        if isinstance(event, ReachabilityChanged):
            log.info("reachability: %s (reachable: %s)", event.status,
                     ", ".join(str(Multiaddr(a)) for a in event.addrs) or "none")
            hidden = self.swarm.hidden_protocols
            # a private node runs the DHT in client mode: it stops announcing the protocol
            (hidden.add if event.status != PUBLIC else hidden.discard)(wire.KAD.ids[0])
            record("reachability", value=1 if event.status == PUBLIC else 0 if event.status == PRIVATE else None)
        elif isinstance(event, ReservationMade):
            log.info("reservation at relay %s until %.0f", event.relay.short(), event.expires)
            record("reservation", ok=True, value=self.peer_index(event.relay), count=int(event.renewal))
        elif isinstance(event, ReservationFailed | ReservationLost):
            log.info("reservation at relay %s: %s", event.relay.short(), event.reason)
            record("reservation", ok=False, value=self.peer_index(event.relay), count=0)

    # ---- Identify ---------------------------------------------------------------------------------

    def _identified(self, conn: Connection, info: Any) -> None:
        if info.observed_addr and conn.transport != "circuit" and (conn.transport == "quic" or not conn.outbound):
            # our port as the peer sees it, when the connection runs from our listening port: QUIC dials
            # and inbound TCP (outbound TCP comes from an ephemeral port, which says nothing)
            self.traversal.observed.record(info.observed_addr, ip_of(conn.remote_addr), self.runtime.now())
            self.traversal.autonat.recheck()
        if HOP_PROTOCOL in info.protocols:
            self.traversal.client.recheck()
        if isinstance(conn, CircuitConnection) and not conn.outbound and conn.remote_peer not in self._punching:
            plan = self.traversal.upgrade(True, info.listen_addrs)
            if plan is not None:
                self._punching.add(conn.remote_peer)
                self.swarm.spawn(self._upgrade(conn, plan, info.listen_addrs))

    # ---- relay service (hop) ---------------------------------------------------------------------

    async def _write(self, stream: Stream, data: bytes) -> None:
        await stream.write(frame(data))

    async def _serve_hop(self, stream: Stream) -> None:
        conn = stream.connection
        peer = conn.remote_peer
        try:
            message = decode_hop(await read_frame(stream, MAX_MESSAGE))
        except CodecError as exc:
            log.info("hop message from %s refused: %s", peer.short(), exc)
            await self._write(stream, encode_hop(HopStatus(Status.MALFORMED_MESSAGE)))
            return
        service = self.traversal.service
        if service is None or not self.traversal.relaying:
            await self._write(stream, encode_hop(HopStatus(Status.PERMISSION_DENIED)))
            return
        now = self.runtime.now()
        if isinstance(message, Reserve):
            answer = service.reserve(peer, now, ip=ip_of(conn.remote_addr) or "", relayed=conn.transport == "circuit")
            if answer.status is not Status.OK:
                log.info("reservation of %s refused: %s", peer.short(), answer.status.name)
            await self._write(stream, encode_hop(answer))
        elif isinstance(message, Connect):
            await self._relay(stream, peer, message)
        else:
            log.info("hop message from %s refused: unexpected %s", peer.short(), type(message).__name__)
            await self._write(stream, encode_hop(HopStatus(Status.UNEXPECTED_MESSAGE)))

    async def _relay(self, stream: Stream, source: PeerId, message: Connect) -> None:
        service = self.traversal.service
        circuit = service.open_circuit(source, message.peer, self.runtime.now())
        if isinstance(circuit, Status):
            log.info("circuit %s -> %s refused: %s", source.short(), message.peer.short(), circuit.name)
            await self._write(stream, encode_hop(HopStatus(circuit)))
            return
        try:
            target = self.swarm.connection(message.peer)
            stop = None
            status = Status.CONNECTION_FAILED
            if target is not None:
                try:
                    stop = await target.open_stream()
                    async with asyncio.timeout(10.0):
                        stop.protocol = await multistream.select(stop, [STOP_PROTOCOL])
                        await self._write(stop, encode_stop(StopConnect(source, circuit.limit)))
                        answer = decode_stop(await read_frame(stop, MAX_MESSAGE))
                    if isinstance(answer, StopStatus):
                        status = answer.status
                except (*PEER_ERRORS, CodecError) as exc:
                    log.info("stop to %s failed: %s", message.peer.short(), exc)
            if status is not Status.OK:
                if stop is not None:
                    stop.reset()
                await self._write(stream, encode_hop(HopStatus(status if status is not Status.OK
                                                               else Status.CONNECTION_FAILED)))
                return
            await self._write(stream, encode_hop(HopStatus(Status.OK, limit=circuit.limit)))
            await self._bridge(stream, stop, circuit)
        finally:
            service.circuit_closed(circuit)

    async def _bridge(self, source: Stream, target: Stream, circuit: Circuit) -> None:
        async def pump(src: Stream, dst: Stream, to_target: bool) -> None:
            while data := await src.read():
                if not circuit.carry(to_target, len(data)):
                    raise TransportError(f"circuit past its data limit ({circuit.limit.data} bytes each way)")
                await dst.write(data)
            await dst.close()

        try:
            async with asyncio.timeout(circuit.limit.duration or None):
                await asyncio.gather(pump(source, target, True), pump(target, source, False))
        except (TimeoutError, *PEER_ERRORS) as exc:
            log.info("circuit %s -> %s reset: %s", circuit.source.short(), circuit.target.short(),
                     "past its duration limit" if isinstance(exc, TimeoutError) else exc)
            source.reset()
            target.reset()

    # ---- the circuit's target (stop) -------------------------------------------------------------

    async def _serve_stop(self, stream: Stream) -> None:
        relay = stream.connection.remote_peer
        try:
            message = decode_stop(await read_frame(stream, MAX_MESSAGE))
        except CodecError as exc:
            log.info("stop message from %s refused: %s", relay.short(), exc)
            await self._write(stream, encode_stop(StopStatus(Status.MALFORMED_MESSAGE)))
            return
        if not isinstance(message, StopConnect):
            await self._write(stream, encode_stop(StopStatus(Status.UNEXPECTED_MESSAGE)))
            return
        answer = self.traversal.client.accept_stop(relay, message)
        await self._write(stream, encode_stop(answer))
        if answer.status is not Status.OK:
            log.info("circuit from %s through %s refused: %s", message.peer.short(), relay.short(),
                     answer.status.name)
            return
        conn = await self.circuit.accept(stream, relay, message.limit)
        closed = asyncio.Event()
        conn.on_close(lambda c: closed.set())
        await closed.wait()  # the stream is the connection: keep the handler (and the stream) until it ends

    # ---- DCUtR -----------------------------------------------------------------------------------

    async def _upgrade(self, conn: CircuitConnection, plan: str, remote_addrs: tuple[bytes, ...]) -> None:
        peer = conn.remote_peer
        started = self.runtime.now()
        try:
            if plan == REVERSE:
                direct = [Multiaddr(a) for a in remote_addrs if public_addr(a, self.public_ranges)]
                try:
                    await self.swarm.dial_direct(peer, direct, self.config.hole_punch_timeout)
                    ok = True
                except TransportError:
                    ok = False
                self.punches["reversal_ok" if ok else "reversal_failed"] += 1
                if ok:
                    self._replaced(conn)
                    return
            await self._punch(conn, started)
        finally:
            self._punching.discard(peer)

    async def _punch(self, conn: CircuitConnection, started: float) -> None:
        peer = conn.remote_peer
        initiator = self.traversal.initiator()
        actions = initiator.start(self.runtime.now())
        stream = None
        transports: dict[str, bool] = {}
        while actions:
            action, actions = actions[0], actions[1:]
            try:
                if isinstance(action, Send):
                    if stream is None or action.new_stream:
                        stream = await conn.open_stream()
                        stream.protocol = await multistream.select(stream, [dcutr.PROTOCOL])
                    await self._write(stream, dcutr.encode(action.message))
                    if isinstance(action.message, dcutr.HolePunchConnect):
                        async with asyncio.timeout(self.config.hole_punch_timeout):
                            reply = dcutr.decode(await read_frame(stream, dcutr.MAX_MESSAGE))
                        actions = initiator.receive(reply, self.runtime.now()) + actions
                elif isinstance(action, Dial):
                    await asyncio.sleep(max(0.0, action.at - self.runtime.now()))
                    ok = await self._spray_until_connected(peer, action.addrs)
                    transports["udp"] = transports.get("udp", False) or ok
                    actions = initiator.dial_done(ok, self.runtime.now()) + actions
                elif isinstance(action, Finished):
                    self._finished(conn, action, started, transports)
            except (*PEER_ERRORS, CodecError) as exc:
                actions = initiator.abort(str(exc) or type(exc).__name__)
        if stream is not None:
            stream.reset()

    def _finished(self, conn: CircuitConnection, finished: Finished, started: float,
                  transports: dict[str, bool]) -> None:
        self.traversal.punched(finished)
        self.punches["ok" if finished.ok else "failed"] += 1
        latency = self.runtime.now() - started
        index = self.peer_index(conn.remote_peer)
        for proto, ok in sorted(transports.items()):
            self.node.record_event("hole_punch", latency=latency, hops=0 if proto == "udp" else 1, ok=ok,
                                   value=index, count=finished.attempts)
        if not transports:
            self.node.record_event("hole_punch", latency=latency, ok=False, value=index, count=finished.attempts)
        log.info("hole punch with %s %s after %d attempt(s)%s", conn.remote_peer.short(),
                 "succeeded" if finished.ok else "failed", finished.attempts,
                 f": {finished.reason}" if finished.reason else "")
        if finished.ok:
            self._replaced(conn)

    def _replaced(self, relayed: CircuitConnection) -> None:
        """A direct connection now carries new streams; the relayed one closes after a grace period."""
        self.node.record_event("connection", ok=True, value=self.peer_index(relayed.remote_peer))
        self.swarm.spawn(self._close_later(relayed))

    async def _close_later(self, conn: Connection) -> None:
        await asyncio.sleep(RELAYED_GRACE)
        await conn.close()

    def _quic_targets(self, addrs: tuple[bytes, ...]) -> list[tuple[str, int]]:
        from p2pnode.transports.quic.transport import parse_multiaddr

        out = []
        for raw in addrs:
            try:
                host, port, _ = parse_multiaddr(Multiaddr(raw))
            except Exception:  # the peer's address list is not ours to trust
                continue
            out.append((host, port))
        return out

    async def _spray_until_connected(self, peer: PeerId, addrs: tuple[bytes, ...]) -> bool:
        """The inbound side's part of a QUIC hole punch: random UDP packets at the peer's addresses, from our
        listening socket, until the peer's QUIC dial reached us (a direct connection appears)."""
        quic = next((t for t in self.swarm.transports if t.name == "quic"), None)
        targets = self._quic_targets(addrs)
        if quic is None or not targets:
            return False
        rng = self.runtime.rng
        deadline = self.runtime.now() + self.config.hole_punch_timeout
        while self.runtime.now() < deadline:
            if self._direct(peer):
                return True
            for host, port in targets:
                try:
                    quic.send_datagram(host, port, os.urandom(rng.randint(*SPRAY_SIZE)))
                except OSError:
                    pass
            await asyncio.sleep(rng.uniform(*SPRAY_GAP))
        return self._direct(peer)

    def _direct(self, peer: PeerId) -> bool:
        conn = self.swarm.connection(peer)
        return conn is not None and conn.transport != "circuit"

    async def _serve_dcutr(self, stream: Stream) -> None:
        peer = stream.connection.remote_peer
        responder = self.traversal.responder()
        while True:
            try:
                message = dcutr.decode(await read_frame(stream, dcutr.MAX_MESSAGE))
            except asyncio.IncompleteReadError:
                return
            for action in responder.receive(message, self.runtime.now()):
                if isinstance(action, Send):
                    await self._write(stream, dcutr.encode(action.message))
                elif isinstance(action, Dial):
                    targets = [Multiaddr(a) for a in action.addrs if self._quic_targets((a,))]
                    self.swarm.spawn(self._dial_quietly(peer, targets))

    async def _dial_quietly(self, peer: PeerId, addrs: list[Multiaddr]) -> None:
        try:
            await self.swarm.dial_direct(peer, addrs, self.config.hole_punch_timeout)
        except TransportError as exc:
            log.debug("hole-punch dial to %s failed: %s", peer.short(), exc)

    # ---- AutoNAT: client --------------------------------------------------------------------------

    def _probe(self, server: PeerInfo, addrs: tuple[bytes, ...], done: Callable[[ProbeResult], None]) -> None:
        self.swarm.spawn(self._probe_async(server.peer_id, addrs, done))

    async def _probe_async(self, server: PeerId, addrs: tuple[bytes, ...], done) -> None:
        info = self.runtime.identified.get(server)
        v2 = info is not None and an.DIAL_REQUEST_PROTOCOL in info.protocols
        nonce = self.runtime.rng.getrandbits(64)
        arrived = self._nonces[nonce] = asyncio.Event()
        result = ProbeResult(server, None, None, "timeout")
        try:
            async with asyncio.timeout(self.config.autonat_timeout):
                stream = await self.swarm.new_stream(server, [an.DIAL_REQUEST_PROTOCOL if v2 else an.V1_PROTOCOL])
                try:
                    result = await (self._ask_v2(stream, server, addrs, nonce, arrived) if v2
                                    else self._ask_v1(stream, server, addrs))
                finally:
                    stream.reset()
        except (*PEER_ERRORS, CodecError) as exc:
            result = ProbeResult(server, None, None, str(exc) or type(exc).__name__)
        finally:
            self._nonces.pop(nonce, None)
        if self.node.running:
            done(result)

    async def _ask_v2(self, stream: Stream, server: PeerId, addrs: tuple[bytes, ...], nonce: int,
                      arrived: asyncio.Event) -> ProbeResult:
        await self._write(stream, an.encode_v2(an.DialRequest(addrs, nonce)))
        message = an.decode_v2(await read_frame(stream, an.MAX_MESSAGE))
        if isinstance(message, an.DialDataRequest):
            chunk = an.encode_v2(an.DialDataResponse(bytes(an.MAX_DIAL_DATA_CHUNK)))
            for _ in range(-(-message.num_bytes // an.MAX_DIAL_DATA_CHUNK)):
                await self._write(stream, chunk)
            message = an.decode_v2(await read_frame(stream, an.MAX_MESSAGE))
        if not isinstance(message, an.DialResponse):
            return ProbeResult(server, None, None, f"unexpected {type(message).__name__}")
        if message.status is not an.ResponseStatus.OK or not 0 <= message.index < len(addrs):
            return ProbeResult(server, None, None, message.status.name)
        addr = addrs[message.index]
        if message.dial_status is an.DialStatus.OK:
            # the dial-back carries the nonce ahead of the response; without it the claim is not proven
            return ProbeResult(server, addr, True if arrived.is_set() else None, "" if arrived.is_set()
                               else "no dial-back with our nonce")
        if message.dial_status is an.DialStatus.E_DIAL_ERROR:
            return ProbeResult(server, addr, False)
        return ProbeResult(server, addr, None, message.dial_status.name)

    async def _ask_v1(self, stream: Stream, server: PeerId, addrs: tuple[bytes, ...]) -> ProbeResult:
        await self._write(stream, an.encode_v1(an.V1Dial(self.node.peer_id, addrs)))
        message = an.decode_v1(await read_frame(stream, an.MAX_MESSAGE))
        if not isinstance(message, an.V1DialResponse):
            return ProbeResult(server, None, None, "unexpected DIAL")
        if message.status is an.V1Status.OK:
            return ProbeResult(server, message.addr if message.addr in addrs else addrs[0], True)
        if message.status is an.V1Status.E_DIAL_ERROR:
            return ProbeResult(server, addrs[0], False)
        return ProbeResult(server, None, None, message.status.name)

    async def _serve_dial_back(self, stream: Stream) -> None:
        message = an.decode_dial_back(await read_frame(stream, an.MAX_MESSAGE))
        arrived = self._nonces.get(message.nonce)
        if arrived is not None:
            arrived.set()
        await self._write(stream, an.encode_dial_back(an.DialBackResponse()))

    # ---- AutoNAT: server --------------------------------------------------------------------------

    def _dialback(self):
        """Transports of their own for dial-backs: they dial from ephemeral ports, never our listening ones,
        so no NAT lets a dial-back in merely because the client talked to our listening port."""
        if self._dialback_transports is None:
            from p2pnode.runtime.node import make_transports

            self._dialback_transports = make_transports(
                self.node.keypair, [t.name for t in self.swarm.transports if t.name != "circuit"])
        return self._dialback_transports

    async def _dial_back(self, addr: bytes, peer: PeerId, nonce: int | None) -> tuple[bool, bool]:
        target = Multiaddr(addr)
        transport = next((t for t in self._dialback() if t.can_dial(target)), None)
        if transport is None:
            return False, False
        try:
            async with asyncio.timeout(self.config.autonat_timeout / 2):
                conn = await transport.dial(target, peer)
        except (TimeoutError, *PEER_ERRORS, ValueError):
            return False, False
        try:
            if nonce is None:
                return True, True
            async with asyncio.timeout(5.0):
                stream = await conn.open_stream()
                stream.protocol = await multistream.select(stream, [an.DIAL_BACK_PROTOCOL])
                await self._write(stream, an.encode_dial_back(an.DialBack(nonce)))
                an.decode_dial_back_response(await read_frame(stream, an.MAX_MESSAGE))
            return True, True
        except (TimeoutError, *PEER_ERRORS, CodecError):
            return True, False
        finally:
            await conn.close()

    async def _serve_dial_request(self, stream: Stream) -> None:
        conn = stream.connection
        peer = conn.remote_peer
        server: AutoNatServer = self.traversal.autonat_server
        message = an.decode_v2(await read_frame(stream, an.MAX_MESSAGE))
        if not isinstance(message, an.DialRequest):
            raise CodecError(f"expected a DialRequest, got {type(message).__name__}")
        choice = server.choose(peer, message, ip_of(conn.remote_addr), self.runtime.now(),
                               relayed=conn.transport == "circuit")
        if isinstance(choice, an.DialResponse):
            await self._write(stream, an.encode_v2(choice))
            return
        if choice.dial_data:
            await self._receive_dial_data(stream, choice)
        connected, delivered = await self._dial_back(choice.addr, peer, message.nonce)
        await self._write(stream, an.encode_v2(server.outcome(choice, connected, delivered)))

    async def _receive_dial_data(self, stream: Stream, choice: DialChoice) -> None:
        await self._write(stream, an.encode_v2(an.DialDataRequest(choice.index, choice.dial_data)))
        received = 0
        while received < choice.dial_data:
            chunk = an.decode_v2(await read_frame(stream, an.MAX_MESSAGE))
            if not isinstance(chunk, an.DialDataResponse):
                raise CodecError(f"expected DialDataResponse, got {type(chunk).__name__}")
            received += len(chunk.data)

    async def _serve_v1(self, stream: Stream) -> None:
        conn = stream.connection
        message = an.decode_v1(await read_frame(stream, an.MAX_MESSAGE))
        if not isinstance(message, an.V1Dial):
            raise CodecError("expected a DIAL")
        choice = self.traversal.autonat_server.choose_v1(conn.remote_peer, message, ip_of(conn.remote_addr),
                                                          self.runtime.now(), relayed=conn.transport == "circuit")
        if isinstance(choice, an.V1DialResponse):
            await self._write(stream, an.encode_v1(choice))
            return
        for addr in choice:
            connected, _ = await self._dial_back(addr, conn.remote_peer, None)
            if connected:
                await self._write(stream, an.encode_v1(an.V1DialResponse(an.V1Status.OK, addr=addr)))
                return
        await self._write(stream, an.encode_v1(an.V1DialResponse(an.V1Status.E_DIAL_ERROR, "dial failed")))

    # ---- upkeep ----------------------------------------------------------------------------------

    async def _keepalive(self) -> None:
        """Keep relay connections busy (their reservations last only while they are open) and sample the
        relay's load."""
        while True:
            await asyncio.sleep(KEEPALIVE)
            for relay in self.traversal.client.relays():
                self.swarm.spawn(self._ping_quietly(relay))
            service = self.traversal.service
            if service is not None and self.traversal.relaying:
                stats = service.stats()
                self.node.record_event("relay_load", value=stats["circuits"], count=stats["reservations"])
                self.node.record_event("relay_bytes", value=stats["bytes_relayed"], count=stats["reserved"])

    async def _ping_quietly(self, peer: PeerId) -> None:
        try:
            await self.runtime.ping(peer, timeout=10.0)
        except (TimeoutError, *PEER_ERRORS) as exc:
            log.info("relay %s did not answer a keepalive: %s", peer.short(), exc)

    def status(self) -> dict[str, Any]:
        """For ``/debug/peers`` and metrics."""
        traversal = self.traversal
        service = traversal.service
        return {
            "reachability": traversal.status,
            "reachable_addrs": [str(Multiaddr(a)) for a in traversal.autonat.reachable_addrs()],
            "observed_addrs": [str(Multiaddr(a)) for a in traversal.observed.all(self.runtime.now())],
            "relays": [str(p) for p in traversal.client.relays()],
            "circuit_addrs": [str(Multiaddr(a)) for a in traversal.client.circuit_addrs()],
            "relay_service": service.stats() if service is not None and traversal.relaying else None,
            "hole_punches": dict(self.punches),
        }
