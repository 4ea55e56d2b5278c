"""``p2pnode run --config node.toml``: one real node, until SIGINT or SIGTERM.

On start it prints one JSON line on stdout (``{"event": "ready", "peer_id": ..., "listen_addrs": [...],
"http": ...}``) so scripts and the emulator can read where the node listens; logs go to stderr, as JSON
lines (or text with ``[log] format = "text"``) carrying the node's short peer ID and the correlation ID
of the request a line belongs to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time

from p2pnode.identity import IdentityError, Keypair, PeerId
from p2pnode.nodeconfig import NodeConfig, NodeConfigError, load_config
from p2pnode.security.access import AccessPolicy
from p2pnode.security.puzzles import solve_static, static_bits
from p2pnode.userinput import InputFileError, read_bytes


class UsageError(Exception):
    """A mistake in the command line or configuration: printed as one line, exit status 2."""


def check_config(config: NodeConfig) -> None:
    """What the config file's schema cannot see: the relations between keys and the files it names (checked
    the way the node will use them). Raises UsageError, one line per problem."""
    from p2pnode.runtime.paths import path_problems

    problems = []
    dht = config.dht
    if dht.disjoint_paths > dht.alpha:
        problems.append("dht.disjoint_paths must not exceed dht.alpha")
    if dht.slow_after > dht.request_timeout:
        problems.append("dht.slow_after must not exceed dht.request_timeout")
    if republish_interval(config) >= dht.record_ttl:
        problems.append("dht.republish_interval must be shorter than dht.record_ttl")
    if config.pubsub.peers > config.pubsub.max_peers:
        problems.append("pubsub.peers must not exceed pubsub.max_peers")
    problems += path_problems(config)
    if problems:
        raise UsageError("\n".join(problems))


def republish_interval(config: NodeConfig) -> float:
    dht = config.dht
    return dht.republish_interval if dht.republish_interval is not None else min(1800.0, dht.record_ttl / 2)


def load_or_create_key(config: NodeConfig) -> Keypair:
    """The node's identity: read from ``network.key_file``; with ``peer_id = "auto"`` created there if
    absent (mode 0600). A configured peer ID must match the key."""
    from p2pnode.runtime.paths import MAX_KEY_FILE_BYTES

    path = config.path(config.network.key_file)
    if path.exists():
        try:
            keypair = Keypair.from_protobuf(read_bytes(path, MAX_KEY_FILE_BYTES))
        except IdentityError as exc:
            raise UsageError(f"network.key_file: {path}: not a key file: {exc}") from None
        except InputFileError as exc:
            raise UsageError(f"network.key_file: {path}: {exc.reason}") from None
    elif config.network.peer_id == "auto":
        # a key whose ID meets the static puzzle (S/Kademlia): about 2**puzzle_static key generations
        keypair = solve_static(os.urandom(32), config.security.puzzle_static)[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(keypair.to_protobuf())
    else:
        raise UsageError(f"network.peer_id is {config.network.peer_id} but the key file {path} does not exist")
    wanted = config.network.peer_id
    if wanted != "auto" and PeerId.from_base58(wanted) != keypair.peer_id:
        raise UsageError(f"network.peer_id {wanted} is not the peer ID of the key in {path} ({keypair.peer_id})")
    if static_bits(keypair.peer_id.kad_id) < config.security.puzzle_static:
        raise UsageError(f"security.puzzle_static: the key in {path} ({keypair.peer_id}) does not meet the "
                         f"{config.security.puzzle_static}-bit static ID puzzle; peers would refuse it (lower the "
                         "difficulty, or remove the key file so that one that meets it is made)")
    return keypair


def lock_key_file(config: NodeConfig):
    """Take the key file's lock before the key is read or created (two processes starting at once with one
    key file must not both make a key, nor both run with it)."""
    from p2pnode.runtime.keylock import KeyInUseError, lock_key

    try:
        return lock_key(config.path(config.network.key_file))
    except KeyInUseError as exc:
        raise UsageError(f"network.key_file: {exc}") from None
    except OSError as exc:
        raise UsageError(f"network.key_file: cannot lock {config.network.key_file}: {exc.strerror}") from None


def refuse_own_bootstrap(config: NodeConfig, keypair: Keypair) -> None:
    from multiaddr import Multiaddr

    from p2pnode.transports.addresses import peer_id_of

    for i, addr in enumerate(config.bootstrap.nodes):
        if peer_id_of(Multiaddr(addr)) == keypair.peer_id:
            raise UsageError(f"bootstrap.nodes[{i}]: {addr} is this node's own peer ID (the key in "
                             f"{config.path(config.network.key_file)}); a node cannot bootstrap from itself "
                             "(does that node share this key file?)")


class JsonFormatter(logging.Formatter):
    def __init__(self, node: str):
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        from p2pnode.runtime.swarm import correlation_id

        entry = {"ts": round(record.created, 6), "level": record.levelname.lower(), "logger": record.name,
                 "node": self.node, "cid": correlation_id.get(), "msg": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, node: str):
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(node)s %(cid)s] %(message)s")
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        from p2pnode.runtime.swarm import correlation_id

        record.node, record.cid = self.node, correlation_id.get()
        return super().format(record)


def setup_logging(config: NodeConfig, node: str, level: str | None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter((JsonFormatter if config.log.format == "json" else TextFormatter)(node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or config.log.level).upper())
    # Libraries' own chatter (a line per multiaddr codec call, per QUIC stream) drowns ours: they get
    # at most these levels of detail; [log] modules can still ask for more.
    # aioquic's "quic" logger says INFO lines for every connection and a WARNING for every protocol error a
    # peer makes, all at the peer's will; our QUIC transport says failed handshakes itself, rate-limited.
    for library, noisiest in (("multiaddr", logging.WARNING), ("quic", logging.ERROR)):
        logging.getLogger(library).setLevel(max(root.level, noisiest))
    for module, module_level in config.log.modules.items():
        logging.getLogger(module).setLevel(module_level.upper())


def node_from_config(config: NodeConfig, keypair: Keypair):
    from p2pnode.config import KadConfig, ScoreConfig, TopicScoreParams
    from p2pnode.eventlog import EventWriter
    from p2pnode.resources import ResourceLimits
    from p2pnode.runtime.node import Node

    dht = config.dht
    republish = republish_interval(config)
    kad = KadConfig(k=dht.replication_factor, alpha=dht.alpha, disjoint_paths=dht.disjoint_paths,
                    record_ttl=dht.record_ttl, provider_ttl=dht.provider_ttl, republish_interval=republish,
                    request_timeout=dht.request_timeout, slow_after=dht.slow_after,
                    refresh_interval=dht.refresh_interval, puzzle_static=config.security.puzzle_static,
                    puzzle_dynamic=config.security.puzzle_dynamic, siblings=config.security.siblings,
                    pow_difficulty=config.security.pow_difficulty)
    rate = config.pubsub.expected_rate
    score = ScoreConfig(enabled=config.pubsub.scoring,
                        default_topic=TopicScoreParams.for_rate(rate) if rate else None)
    return Node(
        keypair,
        listen=config.network.listen_addresses,
        bootstrap=config.bootstrap.nodes,
        transports=config.network.transports,
        kad=kad,
        pubsub=config.pubsub.enabled,
        score=score,
        peers=config.pubsub.peers,
        max_peers=config.pubsub.max_peers,
        max_connections=config.resources.max_connections,
        resources=ResourceLimits.from_config(config.resources),
        dial_timeout=config.resources.connection_timeout,
        storage_path=config.path(dht.storage_path) if dht.storage_path else None,
        events=EventWriter(config.path(config.log.events_file)) if config.log.events_file else None,
        node_index=config.log.node_index,
        nat=config.nat.protocol_config() if config.nat.enabled else None,
        public_ranges=config.nat.public_ranges,
        mdns=config.nat.mdns,
        port_mapping=tuple(dict.fromkeys(config.nat.port_mapping_protocols)) if config.nat.port_mapping else (),
        rate_limits=(config.security.rate_limit_per_peer, config.security.total_rate_limit),
        bandwidth_limit=config.resources.bandwidth_limit_mbps * 125_000,  # Mbit/s -> bytes/s
        access=AccessPolicy(config.mcp.peer_tools, {keypair.peer_id.to_base58(), *config.security.trusted_issuers},
                            clock=time.time),
        protected_namespaces=[ns.encode() for ns in config.security.protected_namespaces],
    )


def start_mcp(node, config: NodeConfig, http=None):
    """The node's MCP service: on ``/p2pnode/mcp/1.0.0`` for peers, on ``/mcp`` of ``http`` if given,
    registered in the DHT once the node has joined."""
    from p2pnode.mcp.http import McpEndpoint
    from p2pnode.mcp.runtime import attach
    from p2pnode.mcp.streamable import LOOPBACK_HOSTS, StreamableHttp

    service = attach(node, config)
    if http is not None:
        host = config.mcp.server_address.rpartition(":")[0].strip("[]")
        transport = StreamableHttp(service.server, allowed_origins=config.mcp.allowed_origins,
                                   check_host=host in LOOPBACK_HOSTS, max_body=config.mcp.max_body_bytes)
        http.attach_mcp(service, McpEndpoint(transport))

    async def register_when_joined() -> None:
        while not node.host.running:
            await asyncio.sleep(0.2)
        service.start()

    node.swarm.spawn(register_when_joined())
    return service


def return_freed_memory() -> None:
    """Let the process give freed stream buffers back to the system (glibc only). glibc raises its mmap
    threshold each time a large block is freed, after which large buffers come from the heap and their
    pages stay with the process: after a peer's 1,000 half-full 1 MiB frames were refused and freed, the
    node kept 124 MiB instead of the 62 it had. A fixed threshold (glibc's initial 128 KiB) keeps them mmap'd."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to set
        return
    if mallopt is not None:
        mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD


async def run(config: NodeConfig, keypair: Keypair, control: str | None = None, defer_join: bool = False,
              mcp_stdio: bool = False) -> None:
    from p2pnode.runtime.http import HttpServer

    log = logging.getLogger("p2pnode.cli")
    if config.mcp.enabled or mcp_stdio:
        # imported before the node starts: the MCP schemas take a second or more to load, and the event
        # loop must not stall in the middle of the node's first handshakes
        import p2pnode.mcp.http  # noqa: F401
        import p2pnode.mcp.runtime  # noqa: F401
    return_freed_memory()
    node = node_from_config(config, keypair)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start(join=not defer_join)
    except OSError as exc:
        raise UsageError(f"network.listen_addresses: cannot listen: {exc.strerror or exc}") from None
    http = service = None
    try:
        if config.mcp.enabled and not mcp_stdio:
            host, _, port = config.mcp.server_address.rpartition(":")
            http = HttpServer(node, host.strip("[]"), int(port),
                              local_mcp_only=config.security.require_authentication)
            try:
                await http.start()
            except OSError as exc:
                raise UsageError(f"mcp.server_address {config.mcp.server_address}: {exc.strerror or exc}") from None
        if config.mcp.enabled or mcp_stdio:
            service = start_mcp(node, config, http)
        for topic in config.pubsub.topics:
            node.pubsub.subscribe(topic, lambda m: log.info("message on %s: %d bytes", m.topic, len(m.data)))
        ready = {"event": "ready", "peer_id": str(node.peer_id), "listen_addrs": [str(a) for a in node.listen_addrs],
                 "http": f"http://{config.mcp.server_address.rpartition(':')[0]}:{http.port}" if http else None,
                 "time": time.time()}
        if mcp_stdio:  # stdout carries MCP messages only; the ready line goes to the log
            from p2pnode.mcp.runtime import serve_stdio

            log.info("ready: %s", json.dumps(ready))
            await asyncio.wait([asyncio.ensure_future(serve_stdio(service, stop)),
                                asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        else:
            print(json.dumps(ready), flush=True)
        if control == "stdio":
            from p2pnode.runtime.control import serve_stdio

            await asyncio.wait([asyncio.ensure_future(serve_stdio(node, stop, service)),
                                asyncio.ensure_future(stop.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
        await stop.wait()
        log.info("shutting down")
    finally:
        if service is not None:
            service.stop()
            service.backend.close()
        if http is not None:
            await http.stop()
        await node.stop()
        if node.events is not None:
            node.events.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="p2pnode", description="Run a p2pnode peer.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run one node until SIGINT/SIGTERM")
    run_parser.add_argument("--config", required=True, help="the node's TOML configuration file")
    run_parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                            help="overrides [log] level")
    run_parser.add_argument("--control", choices=["stdio"],
                            help="take JSON-line commands on stdin (see p2pnode.runtime.control); EOF stops")
    run_parser.add_argument("--defer-join", action="store_true",
                            help="listen, but join the network only on the control command 'join'")
    mcp_parser = sub.add_parser("mcp", help="run one node as an MCP server for an agent host that launches it")
    mcp_parser.add_argument("--stdio", action="store_true", required=True,
                            help="MCP over stdin/stdout (one JSON-RPC message per line); EOF stops the node")
    mcp_parser.add_argument("--config", required=True, help="the node's TOML configuration file")
    mcp_parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                            help="overrides [log] level (logs go to stderr)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        check_config(config)
        _key_lock = lock_key_file(config)  # held until the process exits: one running node per key
        keypair = load_or_create_key(config)
        refuse_own_bootstrap(config, keypair)
        setup_logging(config, keypair.peer_id.short(), args.log_level)
        if args.command == "mcp":
            asyncio.run(run(config, keypair, mcp_stdio=True))
            return 0
        if args.defer_join and args.control is None:
            raise UsageError("--defer-join needs --control stdio (the join command arrives there)")
        asyncio.run(run(config, keypair, args.control, args.defer_join))
    except (NodeConfigError, UsageError) as exc:
        print(f"p2pnode: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
