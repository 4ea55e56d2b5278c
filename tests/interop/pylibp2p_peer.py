#!/usr/bin/env python3
"""A scripted py-libp2p 0.8.1 peer for interop tests, driven by JSON lines on stdin/stdout.

Run it with the interop venv's python (scripts/setup-interop.sh makes .venv-interop); it must not import p2pnode.

    .venv-interop/bin/python tests/interop/pylibp2p_peer.py --transport tcp --listen /ip4/127.0.0.1/tcp/0 \
        [--seed N] [--topic NAME] [--heartbeat SECONDS] [--unsigned] [--log-level LEVEL]

Host: Ed25519 identity (random, or from --seed N: the 32-byte RFC 8032 seed is sha256(str(N).encode())).
TCP offers exactly /noise + /yamux/1.0.0; QUIC is /quic-v1 (TLS 1.3 with the libp2p certificate extension,
ALPN "libp2p"). One transport per process: --transport picks it and --listen must match it; /ip4 and /ip6 both
work (QUIC over IPv6 only thanks to patch_quic_ipv6(), a work-around for a py-libp2p 0.8.1 bug; --no-quic-ipv6-fix
turns it off).
Services: Identify (+push), Ping, Kademlia /ipfs/kad/1.0.0 in server mode, GossipSub /meshsub/1.1.0 only
(StrictSign: every published message carries from, seqno, signature and key; unsigned inbound messages are
dropped; --unsigned turns signing and the check off), heartbeat 1 s (the library default is 120 s).

Protocol, one JSON object per line (stdout carries only these lines; logs go to stderr):
  start:    {"event": "ready", "peer_id": ..., "addrs": [".../p2p/<id>"], "transport": ..., "agent_version": ...}
  command:  {"id": 1, "cmd": "...", ..., "timeout": 10}
  answer:   {"id": 1, "ok": true, ...} or {"id": 1, "ok": false, "error": "..."}
  events:   {"event": "message", "topic", "data_hex", "from", "seqno_hex", "msg_id_hex", "signed", "has_key"}
            (messages published by this peer itself are not reported)
Commands run concurrently, each under its own timeout (default 10 s, "timeout" field overrides):
  info, connect{addr}, disconnect{peer}, peers, ping{peer}, identify{peer}, find_node{peer, target | target_hex},
  find_peer{target}, put_value{key_hex, value_hex}, get_value{key_hex}, put_value_to{peer, key_hex, value_hex,
  sign?}, get_value_from{peer, key_hex}, subscribe{topic}, unsubscribe{topic}, publish{topic, data_hex},
  topic_peers{topic}, quit. EOF on stdin also ends the process (exit 0).
Circuit Relay v2 and DCUtR (libp2p.relay.circuit_v2): --relay client|hop runs its CircuitV2Protocol (STOP
always, HOP with "hop", limits --relay-duration/--relay-data) and its CircuitV2Transport; --dcutr runs its
DCUtRProtocol (which also drives upgrades of relayed connections by itself). Commands: relay_reserve{relay},
relay_dial{addr}, connections{peer}, dcutr_initiate{peer}.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import secrets
import sys
import threading
import time
from typing import Any

# stdout belongs to the JSON protocol: keep a private handle on it and point fd 1 (and sys.stdout) at stderr so
# that nothing else (library prints, C extensions) can corrupt the stream.
_PROTO_OUT = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr

import multiaddr  # noqa: E402
import trio  # noqa: E402
from libp2p import new_host  # noqa: E402
from libp2p.crypto.ed25519 import create_new_key_pair  # noqa: E402
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair  # noqa: E402
from libp2p.custom_types import TProtocol  # noqa: E402
from libp2p.identity.identify.identify import ID as IDENTIFY_PROTOCOL_ID  # noqa: E402
from libp2p.identity.identify.identify import parse_identify_response  # noqa: E402
from libp2p.io.utils import read_exactly  # noqa: E402
from libp2p.kad_dht.common import MAX_DHT_MESSAGE_SIZE  # noqa: E402
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID  # noqa: E402
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT  # noqa: E402
from libp2p.kad_dht.pb.kademlia_pb2 import Message as KadMessage  # noqa: E402
from libp2p.peer.envelope import consume_envelope  # noqa: E402
from libp2p.peer.id import ID  # noqa: E402
from libp2p.peer.peerinfo import info_from_p2p_addr  # noqa: E402
from libp2p.peer.peerstore import env_to_send_in_RPC  # noqa: E402
from libp2p.pubsub.gossipsub import GossipSub  # noqa: E402
from libp2p.pubsub.pubsub import Pubsub  # noqa: E402
from libp2p.records.record import make_signed_put_record  # noqa: E402
from libp2p.relay.circuit_v2 import PROTOCOL_ID as HOP_PROTOCOL_ID  # noqa: E402
from libp2p.relay.circuit_v2 import CircuitV2Protocol, CircuitV2Transport, DCUtRProtocol, RelayLimits  # noqa: E402
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole  # noqa: E402
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID  # noqa: E402
from libp2p.security.noise.transport import Transport as NoiseTransport  # noqa: E402
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID  # noqa: E402
from libp2p.stream_muxer.yamux.yamux import Yamux  # noqa: E402
from libp2p.tools.anyio_service import background_trio_service  # noqa: E402
from libp2p.utils import get_agent_version  # noqa: E402
from libp2p.utils.varint import encode_uvarint, read_varint_prefixed_bytes_limited  # noqa: E402

log = logging.getLogger("pylibp2p_peer")

PING_PROTOCOL_ID = TProtocol("/ipfs/ping/1.0.0")
MESHSUB_V11 = TProtocol("/meshsub/1.1.0")
DEFAULT_TIMEOUT = 10.0


def patch_quic_ipv6() -> None:
    """Work around a py-libp2p 0.8.1 bug: QUIC over IPv6 does not work, neither dialing nor accepting.

    Both the dialer's and the listener's packet loops hand recvfrom()'s 4-tuple (host, port, flowinfo,
    scope_id) on to code that expects (host, port): the dialer's aioquic connection (opened with the
    2-tuple) treats the server's packets as another network path and the handshake stalls until the dial
    times out; the listener fails every new connection with "Error promoting connection ...: too many values
    to unpack (expected 2)". Normalising the address to (host, port) fixes both; nothing on the wire changes.
    """
    import libp2p.transport.quic.transport as quic_transport
    from libp2p.transport.quic.listener import QUICListener

    base = quic_transport.NativeQUICConnection
    if getattr(base, "_interop_ipv6_fix", False):
        return

    class ClientQuicConnection(base):  # type: ignore[misc, valid-type]
        _interop_ipv6_fix = True

        def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
            if isinstance(addr, tuple) and len(addr) > 2:
                addr = addr[:2]
            super().receive_datagram(data, addr, now)

    quic_transport.NativeQUICConnection = ClientQuicConnection

    process_packet = QUICListener._process_packet

    async def _process_packet(self: Any, data: bytes, addr: Any) -> None:
        if isinstance(addr, tuple) and len(addr) > 2:
            addr = addr[:2]
        await process_packet(self, data, addr)

    QUICListener._process_packet = _process_packet  # type: ignore[method-assign]


def seed_bytes(n: int) -> bytes:
    """The 32-byte Ed25519 seed used for --seed N."""
    return hashlib.sha256(str(n).encode()).digest()


def emit(obj: dict[str, Any]) -> None:
    """Write one protocol line. No await inside, so lines never interleave under trio."""
    try:
        _PROTO_OUT.write(json.dumps(obj, separators=(",", ":")) + "\n")
        _PROTO_OUT.flush()
    except (BrokenPipeError, ValueError):  # the driver went away; nothing left to tell
        pass


def maddr_str(raw: bytes) -> str:
    try:
        return str(multiaddr.Multiaddr(raw))
    except Exception:
        return "0x" + raw.hex()


def peer_id_arg(value: Any) -> ID:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a peer ID string")
    return ID.from_base58(value)


class StartupError(Exception):
    pass


class CommandError(Exception):
    """An expected failure, reported as {"ok": false, "error": str(e), **extra}."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.transport = args.transport
        self.listen = multiaddr.Multiaddr(args.listen)
        protos = [p.name for p in self.listen.protocols()]
        if self.transport == "tcp" and "tcp" not in protos:
            raise SystemExit(f"--transport tcp needs a /tcp listen address, got {args.listen}")
        if self.transport == "quic" and "quic-v1" not in protos:
            raise SystemExit(f"--transport quic needs a /udp/<port>/quic-v1 listen address, got {args.listen}")

        self.key_pair = create_new_key_pair(seed_bytes(args.seed) if args.seed is not None else None)
        # Explicit security/muxer options: only /noise and /yamux/1.0.0 over TCP (the defaults would also offer
        # /tls/1.0.0, /secio/1.0.0, /plaintext/2.0.0 and /mplex/6.7.0). QUIC brings its own TLS and streams.
        noise = NoiseTransport(self.key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
        self.host = new_host(
            key_pair=self.key_pair,
            sec_opt={NOISE_PROTOCOL_ID: noise},
            muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
            listen_addrs=[self.listen],
            enable_quic=self.transport == "quic",
        )
        self.dht = KadDHT(self.host, DHTMode.SERVER)
        self.gossipsub = GossipSub(
            protocols=[MESHSUB_V11],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_initial_delay=0.1,
            heartbeat_interval=args.heartbeat,
        )
        # StrictSign by default; --unsigned publishes without signature/key (from and seqno stay) and accepts
        # unsigned messages, to see how the other side treats them.
        self.pubsub = Pubsub(self.host, self.gossipsub, strict_signing=not args.unsigned)
        self.subscribed: set[str] = set()
        self.relay: CircuitV2Protocol | None = None
        self.relay_transport: CircuitV2Transport | None = None
        self.dcutr: DCUtRProtocol | None = None
        if args.relay != "off":
            limits = RelayLimits(duration=args.relay_duration, data=args.relay_data, max_circuit_conns=16,
                                 max_reservations=16)
            hop = args.relay == "hop"
            roles = RelayRole.STOP | RelayRole.CLIENT | (RelayRole.HOP if hop else RelayRole(0))
            self.relay = CircuitV2Protocol(self.host, limits=limits, allow_hop=hop)
            self.relay_transport = CircuitV2Transport(self.host, self.relay, RelayConfig(roles=roles, limits=limits))
        if args.dcutr:
            self.dcutr = DCUtRProtocol(self.host)
        self.nursery: trio.Nursery | None = None
        self.quit = trio.Event()
        # key bytes -> peers that acknowledged our PUT_VALUE during a put_value command
        self.stored_at: dict[bytes, list[str]] = {}
        self._wrap_store_at_peer()

    def _wrap_store_at_peer(self) -> None:
        store = self.dht.value_store
        orig = store._store_at_peer

        async def counting_store_at_peer(peer_id: ID, key: bytes, value: bytes, record: Any = None) -> bool:
            ok = await orig(peer_id, key, value, record=record)
            if ok and key in self.stored_at:
                self.stored_at[key].append(peer_id.to_base58())
            return ok

        store._store_at_peer = counting_store_at_peer  # type: ignore[method-assign]

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def full_addrs(self) -> list[str]:
        pid = self.host.get_id().to_base58()
        out = []
        for a in self.host.get_addrs():
            s = str(a)
            out.append(s if "/p2p/" in s else f"{s}/p2p/{pid}")
        return out

    async def run(self) -> None:
        async with self.host.run(listen_addrs=[self.listen]):
            if not self.host.get_addrs():
                # py-libp2p logs a failed listen (e.g. port in use) and carries on without addresses.
                raise StartupError(f"could not listen on {self.listen} (see the log above)")
            async with background_trio_service(self.pubsub), background_trio_service(self.gossipsub):
                await self.pubsub.wait_until_ready()
                async with background_trio_service(self.dht), contextlib.AsyncExitStack() as services:
                    for service in (self.relay, self.dcutr):
                        if service is not None:
                            await services.enter_async_context(background_trio_service(service))
                    if self.relay is not None:
                        await self.relay.event_started.wait()
                    if self.dcutr is not None:
                        await self.dcutr.event_started.wait()
                    async with trio.open_nursery() as nursery:
                        self.nursery = nursery
                        if self.args.topic:
                            await self.subscribe(self.args.topic)
                        nursery.start_soon(self._routing_table_sync_loop)
                        emit(
                            {
                                "event": "ready",
                                "peer_id": self.host.get_id().to_base58(),
                                "addrs": self.full_addrs(),
                                "transport": self.transport,
                                "agent_version": get_agent_version(),
                            }
                        )
                        nursery.start_soon(self._stdin_loop)
                        await self.quit.wait()
                        # If the library's teardown ever hangs, still exit (0: we were asked to stop).
                        watchdog = threading.Timer(5.0, os._exit, args=(0,))
                        watchdog.daemon = True
                        watchdog.start()
                        nursery.cancel_scope.cancel()
                    # Closing connections first keeps the service teardown short.
                    with trio.move_on_after(3):
                        for pid in list(self.host.get_connected_peers()):
                            try:
                                await self.host.disconnect(pid)
                            except Exception:
                                pass

    async def _stdin_loop(self) -> None:
        assert self.nursery is not None
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.buffer.readline, abandon_on_cancel=True)
            if not line:
                log.info("stdin closed, shutting down")
                self.quit.set()
                return
            line = line.strip()
            if not line:
                continue
            try:
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("a command must be a JSON object")
            except ValueError as e:
                emit({"id": None, "ok": False, "error": f"bad command line: {e}"})
                continue
            self.nursery.start_soon(self._run_command, req)

    async def _run_command(self, req: dict[str, Any]) -> None:
        rid = req.get("id")
        cmd = req.get("cmd")
        handler = getattr(self, f"cmd_{cmd}", None) if isinstance(cmd, str) else None
        if handler is None:
            emit({"id": rid, "ok": False, "error": f"unknown command {cmd!r}"})
            return
        try:
            timeout = float(req.get("timeout", DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            emit({"id": rid, "ok": False, "error": "bad timeout"})
            return
        started = time.monotonic()
        resp: dict[str, Any]
        try:
            with trio.fail_after(timeout):
                result = await handler(req)
            resp = {"id": rid, "ok": True, **(result or {})}
        except trio.TooSlowError:
            resp = {"id": rid, "ok": False, "error": f"timeout after {timeout:g}s"}
        except CommandError as e:
            resp = {"id": rid, "ok": False, "error": str(e), **e.extra}
        except Exception as e:  # report, keep serving
            log.debug("command %s failed", cmd, exc_info=True)
            resp = {"id": rid, "ok": False, "error": f"{type(e).__name__}: {e}"}
        resp["elapsed_ms"] = round((time.monotonic() - started) * 1000, 3)
        emit(resp)

    async def _routing_table_sync_loop(self) -> None:
        while True:
            await self._sync_routing_table()
            await trio.sleep(1.0)

    async def _sync_routing_table(self) -> None:
        """Offer every connected peer to the Kademlia routing table.

        py-libp2p 0.8.1 does not do this itself on connect: a peer enters the table only when it opens a KAD
        stream to us, answers one of our lookups, or is added explicitly. add_peer() rejects peers whose
        identify protocol list lacks /ipfs/kad/1.0.0 (client mode) and accepts not-yet-identified ones.
        """
        for pid in list(self.host.get_connected_peers()):
            if self.dht.routing_table.peer_in_table(pid):
                continue
            try:
                await self.dht.add_peer(pid)
            except Exception:
                log.debug("add_peer(%s) failed", pid, exc_info=True)

    # ---- commands --------------------------------------------------------------------------------------------

    # ---- Circuit Relay v2 and DCUtR ----------------------------------------------------------------------------

    def _relay_transport(self) -> CircuitV2Transport:
        if self.relay_transport is None:
            raise CommandError("started without --relay")
        return self.relay_transport

    async def cmd_relay_reserve(self, req: dict[str, Any]) -> dict[str, Any]:
        """RESERVE at a relay we are connected to, as the library's client does it."""
        transport = self._relay_transport()
        relay = peer_id_arg(req["relay"])
        stream = await self.host.new_stream(relay, [HOP_PROTOCOL_ID])
        try:
            ok = await transport.reserve(stream, relay, self.nursery)
        finally:
            await _close_quietly(stream)
        proof = transport._reservation_proofs.get(relay)
        return {"reserved": ok, "expire": int(proof.expire) if proof else None,
                "voucher_hex": bytes(proof.voucher).hex() if proof else None}

    async def cmd_relay_dial(self, req: dict[str, Any]) -> dict[str, Any]:
        """Dial a /p2p-circuit address (CONNECT at the relay, then Noise and Yamux over the relayed stream)."""
        conn = await self._relay_transport().dial(multiaddr.Multiaddr(req["addr"]))
        return {"peer_id": conn.muxed_conn.peer_id.to_base58()}

    async def cmd_connections(self, req: dict[str, Any]) -> dict[str, Any]:
        """Our open connections to a peer, each "relayed" or "direct" (by its addresses)."""
        conns = self.host.get_network().get_connections(peer_id_arg(req["peer"]))
        out = []
        for conn in conns:
            try:
                addrs = [str(a) for a in conn.get_transport_addresses()]
            except Exception:
                addrs = []
            kind = getattr(conn, "get_connection_type", lambda: None)()
            relayed = "RELAYED" in str(kind) or any("/p2p-circuit" in a for a in addrs)
            out.append({"kind": "relayed" if relayed else "direct", "addrs": addrs})
        return {"connections": out}

    async def cmd_dcutr_initiate(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.dcutr is None:
            raise CommandError("started without --dcutr")
        return {"direct": await self.dcutr.initiate_hole_punch(peer_id_arg(req["peer"]))}

    async def cmd_info(self, req: dict[str, Any]) -> dict[str, Any]:
        return {
            "peer_id": self.host.get_id().to_base58(),
            "addrs": self.full_addrs(),
            "protocols": sorted(str(p) for p in self.host.get_mux().get_protocols() if p is not None),
            "public_key_hex": self.host.get_public_key().serialize().hex(),
            "routing_table": [p.to_base58() for p in self.dht.routing_table.get_peer_ids()],
            "topics": sorted(self.subscribed),
        }

    async def cmd_quit(self, req: dict[str, Any]) -> dict[str, Any]:
        # Answer first (the answer is emitted by _run_command right after this returns), then stop.
        async def later() -> None:
            await trio.sleep(0)
            self.quit.set()

        assert self.nursery is not None
        self.nursery.start_soon(later)
        return {}

    async def cmd_connect(self, req: dict[str, Any]) -> dict[str, Any]:
        maddr = multiaddr.Multiaddr(req["addr"])
        info = info_from_p2p_addr(maddr)
        if info.peer_id not in self.host.get_connected_peers():
            # An explicit connect must dial exactly this address, now. Left alone, the swarm dials whatever the
            # peerstore holds for the peer (addresses stay 120 s, one per transport class is tried, so a stale
            # wrong address wins over the new one), and after a failed dial it refuses to dial that peer again
            # for 60 s ("negative cache").
            self.host.get_peerstore().clear_addrs(info.peer_id)
            unblock = getattr(self.host.get_network(), "unblock_peer", None)
            if unblock is not None:
                unblock(info.peer_id)
        await self.host.connect(info)
        if self.nursery is not None:
            self.nursery.start_soon(self._sync_routing_table)
        return {"peer_id": info.peer_id.to_base58()}

    async def cmd_disconnect(self, req: dict[str, Any]) -> dict[str, Any]:
        await self.host.disconnect(peer_id_arg(req["peer"]))
        return {}

    async def cmd_peers(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"peers": [p.to_base58() for p in self.host.get_connected_peers()]}

    async def cmd_ping(self, req: dict[str, Any]) -> dict[str, Any]:
        stream = await self.host.new_stream(peer_id_arg(req["peer"]), [PING_PROTOCOL_ID])
        try:
            payload = secrets.token_bytes(32)
            start = time.perf_counter()
            await stream.write(payload)
            echo = await read_exactly(stream, 32)
            rtt = time.perf_counter() - start
            if echo != payload:
                raise CommandError("ping payload mismatch")
        finally:
            await _close_quietly(stream)
        return {"rtt_ms": round(rtt * 1000, 3)}

    async def cmd_identify(self, req: dict[str, Any]) -> dict[str, Any]:
        """Open /ipfs/id/1.0.0, read until the remote closes, decode (varint-prefixed or bare protobuf)."""
        stream = await self.host.new_stream(peer_id_arg(req["peer"]), [IDENTIFY_PROTOCOL_ID])
        buf = bytearray()
        try:
            while True:
                try:
                    chunk = await stream.read(65536)
                except Exception as e:  # StreamEOF / reset / closed all end the message
                    if not buf:
                        raise CommandError(f"identify stream ended without data: {type(e).__name__}: {e}") from None
                    break
                if not chunk:
                    break
                buf.extend(chunk)
                if _is_one_delimited_message(buf):  # complete; don't depend on the remote closing its side
                    break
        finally:
            await _close_quietly(stream)
        msg = parse_identify_response(bytes(buf))
        record: dict[str, Any] | None = None
        if msg.signedPeerRecord:  # checked by py-libp2p's own envelope code
            try:
                _, peer_record = consume_envelope(msg.signedPeerRecord, "libp2p-peer-record")
                record = {"peer_id": peer_record.peer_id.to_base58(), "seq": peer_record.seq,
                          "addrs": [str(a) for a in peer_record.addrs]}
            except Exception as e:
                record = {"error": f"{type(e).__name__}: {e}"}
        return {
            "protocols": list(msg.protocols),
            "listen_addrs": [maddr_str(a) for a in msg.listen_addrs],
            "agent_version": msg.agent_version,
            "protocol_version": msg.protocol_version,
            "observed_addr": maddr_str(msg.observed_addr) if msg.observed_addr else None,
            "public_key_hex": msg.public_key.hex(),
            "signed_peer_record": record,
            "raw_len": len(buf),
        }

    async def _kad_rpc(self, peer: ID, msg: KadMessage) -> KadMessage:
        """One Kademlia request/response on a fresh /ipfs/kad/1.0.0 stream, framed like the library does."""
        # The library attaches its signed peer record (field 11, a py-libp2p extension) to every request.
        envelope, _ = env_to_send_in_RPC(self.host)
        msg.senderRecord = envelope
        stream = await self.host.new_stream(peer, [KAD_PROTOCOL_ID])
        try:
            body = msg.SerializeToString()
            await stream.write(encode_uvarint(len(body)) + body)
            try:
                raw = await read_varint_prefixed_bytes_limited(stream, MAX_DHT_MESSAGE_SIZE)
            except Exception as e:
                raise CommandError(f"no response ({type(e).__name__}: {e})") from None
        finally:
            await _close_quietly(stream)
        resp = KadMessage()
        resp.ParseFromString(raw)
        return resp

    @staticmethod
    def _closer(resp: KadMessage) -> list[dict[str, Any]]:
        out = []
        for p in resp.closerPeers:
            try:
                pid = ID(p.id).to_base58()
            except Exception:
                pid = "0x" + p.id.hex()
            out.append({"peer_id": pid, "addrs": [maddr_str(a) for a in p.addrs], "connection": int(p.connection)})
        return out

    @staticmethod
    def _record(rec: Any) -> dict[str, Any]:
        return {
            "key_hex": rec.key.hex(),
            "value_hex": rec.value.hex(),
            "time_received": rec.timeReceived,
            "author_hex": rec.author.hex() if rec.author else None,
            "signature_hex": rec.signature.hex() if rec.signature else None,
        }

    async def cmd_find_node(self, req: dict[str, Any]) -> dict[str, Any]:
        if "target_hex" in req:
            key = bytes.fromhex(req["target_hex"])
        else:
            key = peer_id_arg(req["target"]).to_bytes()
        msg = KadMessage()
        msg.type = KadMessage.MessageType.FIND_NODE
        msg.key = key
        resp = await self._kad_rpc(peer_id_arg(req["peer"]), msg)
        if resp.type != KadMessage.MessageType.FIND_NODE:
            raise CommandError(f"unexpected response type {resp.type}")
        return {"closer": self._closer(resp), "sender_record": bool(resp.senderRecord)}

    async def cmd_find_peer(self, req: dict[str, Any]) -> dict[str, Any]:
        await self._sync_routing_table()
        info = await self.dht.find_peer(peer_id_arg(req["target"]))
        if info is None:
            raise CommandError("peer not found")
        return {"peer_id": info.peer_id.to_base58(), "addrs": [str(a) for a in info.addrs]}

    @staticmethod
    def _key_str(req: dict[str, Any]) -> tuple[bytes, str]:
        key = bytes.fromhex(req["key_hex"])
        try:
            return key, key.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError(
                "py-libp2p's DHT API takes str keys (UTF-8); this key is not valid UTF-8 "
                "(use put_value_to/get_value_from for raw keys)"
            ) from None

    async def cmd_put_value(self, req: dict[str, Any]) -> dict[str, Any]:
        key, key_str = self._key_str(req)
        value = bytes.fromhex(req["value_hex"])
        await self._sync_routing_table()
        self.stored_at[key] = []
        try:
            await self.dht.put_value(key_str, value)
            stored = list(self.stored_at[key])
        finally:
            self.stored_at.pop(key, None)
        return {"stored_at": stored}

    async def cmd_get_value(self, req: dict[str, Any]) -> dict[str, Any]:
        key, key_str = self._key_str(req)
        await self._sync_routing_table()
        local = self.dht.value_store.get(key) is not None
        value = await self.dht.get_value(key_str)
        if value is None:
            raise CommandError("not found")
        rec = self.dht.value_store.get(key)
        return {"value_hex": value.hex(), "local": local, "record": self._record(rec) if rec else None}

    async def cmd_put_value_to(self, req: dict[str, Any]) -> dict[str, Any]:
        """One PUT_VALUE to one peer, with the record the library's put path would send.

        sign (default true): like py-libp2p, fill Record.author (field 3, protobuf PublicKey) and
        Record.signature (field 4, over b"libp2p-record:" + key + value); false sends only key and value.
        """
        key = bytes.fromhex(req["key_hex"])
        value = bytes.fromhex(req["value_hex"])
        msg = KadMessage()
        msg.type = KadMessage.MessageType.PUT_VALUE
        msg.key = key
        if req.get("sign", True):
            msg.record.CopyFrom(make_signed_put_record(key, value, self.host.get_private_key()))
        else:
            msg.record.key = key
            msg.record.value = value
        msg.record.ClearField("timeReceived")
        resp = await self._kad_rpc(peer_id_arg(req["peer"]), msg)
        if resp.type != KadMessage.MessageType.PUT_VALUE:
            raise CommandError(f"unexpected response type {resp.type}")
        return {
            "echo_key_hex": resp.key.hex(),
            "echo_record": self._record(resp.record) if resp.HasField("record") else None,
        }

    async def cmd_get_value_from(self, req: dict[str, Any]) -> dict[str, Any]:
        key = bytes.fromhex(req["key_hex"])
        msg = KadMessage()
        msg.type = KadMessage.MessageType.GET_VALUE
        msg.key = key
        resp = await self._kad_rpc(peer_id_arg(req["peer"]), msg)
        if resp.type != KadMessage.MessageType.GET_VALUE:
            raise CommandError(f"unexpected response type {resp.type}")
        closer = self._closer(resp)
        if not resp.HasField("record") or not resp.record.value:
            raise CommandError("not found", closer=closer)
        return {"value_hex": resp.record.value.hex(), "record": self._record(resp.record), "closer": closer}

    async def subscribe(self, topic: str) -> None:
        if topic in self.subscribed:
            return
        sub = await self.pubsub.subscribe(topic)
        self.subscribed.add(topic)
        assert self.nursery is not None
        self.nursery.start_soon(self._deliver, topic, sub)

    async def _deliver(self, topic: str, sub: Any) -> None:
        me = self.host.get_id().to_bytes()
        try:
            while True:
                msg = await sub.get()
                if msg.from_id == me:
                    continue
                try:
                    sender = ID(msg.from_id).to_base58()
                except Exception:
                    sender = "0x" + msg.from_id.hex()
                emit(
                    {
                        "event": "message",
                        "topic": topic,
                        "data_hex": msg.data.hex(),
                        "from": sender,
                        "seqno_hex": msg.seqno.hex(),
                        "msg_id_hex": self.pubsub.get_message_id(msg).hex(),
                        "signed": bool(msg.signature),
                        "has_key": bool(msg.key),
                    }
                )
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return

    async def cmd_subscribe(self, req: dict[str, Any]) -> dict[str, Any]:
        await self.subscribe(str(req["topic"]))
        return {}

    async def cmd_unsubscribe(self, req: dict[str, Any]) -> dict[str, Any]:
        topic = str(req["topic"])
        await self.pubsub.unsubscribe(topic)
        self.subscribed.discard(topic)
        return {}

    async def cmd_publish(self, req: dict[str, Any]) -> dict[str, Any]:
        topic = str(req["topic"])
        await self.pubsub.publish(topic, bytes.fromhex(req["data_hex"]))
        return self._topic_state(topic)

    def _topic_state(self, topic: str) -> dict[str, Any]:
        return {
            "topic_peers": sorted(p.to_base58() for p in self.pubsub.peer_topics.get(topic, ())),
            "mesh_peers": sorted(p.to_base58() for p in self.gossipsub.mesh.get(topic, ())),
            "pubsub_peers": sorted(p.to_base58() for p in self.pubsub.peers),
        }

    async def cmd_topic_peers(self, req: dict[str, Any]) -> dict[str, Any]:
        """Who is known to be subscribed to topic, who is in our mesh for it, who has a pubsub stream with us."""
        return self._topic_state(str(req["topic"]))


def _is_one_delimited_message(buf: bytes | bytearray) -> bool:
    """True when buf is exactly one uvarint-length-prefixed message."""
    length = shift = 0
    for i, byte in enumerate(buf[:10]):
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return length > 0 and i + 1 + length == len(buf)
    return False


async def _close_quietly(stream: Any) -> None:
    try:
        await stream.close()
    except Exception:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--transport", choices=("tcp", "quic"), required=True)
    ap.add_argument("--listen", help="multiaddr to listen on (default: loopback, port 0, for the transport)")
    ap.add_argument("--seed", type=int, help="deterministic Ed25519 identity: seed = sha256(str(N).encode())")
    ap.add_argument("--topic", help="GossipSub topic to subscribe to at start")
    ap.add_argument("--heartbeat", type=float, default=1.0, help="GossipSub heartbeat interval, s (default 1)")
    ap.add_argument("--unsigned", action="store_true", help="GossipSub without StrictSign (default: StrictSign)")
    ap.add_argument("--relay", choices=("off", "client", "hop"), default="off",
                    help="Circuit Relay v2: client (reserve, dial circuits, accept them) or also serve as a relay")
    ap.add_argument("--relay-duration", type=int, default=120, help="the relay's circuit duration limit, s")
    ap.add_argument("--relay-data", type=int, default=1 << 17, help="the relay's circuit data limit, bytes")
    ap.add_argument("--dcutr", action="store_true", help="run DCUtR (hole punching over relayed connections)")
    ap.add_argument("--log-level", default=os.environ.get("PYLIBP2P_PEER_LOG", "WARNING"))
    ap.add_argument("--no-quic-ipv6-fix", action="store_true",
                    help="run py-libp2p's QUIC unpatched (then QUIC over /ip6 fails both ways; see patch_quic_ipv6)")
    args = ap.parse_args(argv)
    if not args.no_quic_ipv6_fix:
        patch_quic_ipv6()
    if args.listen is None:
        args.listen = "/ip4/127.0.0.1/tcp/0" if args.transport == "tcp" else "/ip4/127.0.0.1/udp/0/quic-v1"

    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        peer = Peer(args)
    except SystemExit as e:
        print(f"pylibp2p_peer: {e}", file=sys.stderr)
        emit({"event": "error", "error": str(e)})
        return 2
    try:
        trio.run(peer.run)
    except KeyboardInterrupt:
        pass
    except BaseException as e:  # startup failures (port in use, bad address, ...) end up here
        leaf = e
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, StartupError):
            log.error("%s", leaf)
        else:
            log.error("peer failed", exc_info=True)
        emit({"event": "error", "error": f"{type(leaf).__name__}: {leaf}"})
        _PROTO_OUT.flush()
        os._exit(1)
    _PROTO_OUT.flush()
    # Worker threads (stdin reader) and library daemon threads must not keep the process alive.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
