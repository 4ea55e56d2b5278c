"""The node's configuration file: the spec's TOML format (``[network]``, ``[bootstrap]``, ``[dht]``,
``[tunneling]``, ``[mcp]``, ``[security]``, ``[resources]``) plus our ``[pubsub]``, ``[nat]`` and ``[log]``.

Every section and key is optional and has the spec's default; an unknown key, a wrong type, a number out of
its range or an impossible value is an error that names the key (``NodeConfigError``, one line per problem,
values quoted briefly). Only a regular UTF-8 file of at most 1 MiB is read; the files the config names are
checked at start by ``p2pnode.nodepaths``. Keys that
only later parts of the product act on (tunneling, MCP tools, rate limits, memory and bandwidth
limits) are read and checked now, so a file written for the whole spec loads today.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from multiaddr import Multiaddr
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from p2pnode.identity import IdentityError, PeerId
from p2pnode.transports.addresses import parse as parse_multiaddr
from p2pnode.userinput import InputFileError, one_line, quote, read_text

TRANSITION_MECHANISMS = ("native", "dslite", "teredo", "6to4", "isatap", "6over4", "map-e", "map-t", "464xlat",
                         "6rd")
# The spec's; also what ``Node(listen=...)`` defaults to.
DEFAULT_LISTEN = ("/ip6/::/tcp/9000", "/ip4/0.0.0.0/tcp/9000", "/ip6/::/udp/9001/quic-v1",
                  "/ip4/0.0.0.0/udp/9001/quic-v1")


MAX_CONFIG_BYTES = 1 << 20
YEAR = 365 * 86400.0
HOUR = 3600.0


class NodeConfigError(ValueError):
    """A configuration file that cannot be used; one line per problem."""


def _multiaddr(text: str) -> str:
    try:
        addr = parse_multiaddr(text)
        names = [p.name for p in addr.protocols()]
    except Exception as exc:
        raise ValueError(f"{quote(text)} is not a multiaddr ({quote(str(exc), 80)})") from None
    if names[-1:] == ["p2p"]:
        names.pop()
    if names[:1] not in (["ip4"], ["ip6"]) or names[1:] not in (["tcp"], ["udp", "quic-v1"]):
        raise ValueError(f"{quote(text)}: only /ip4|ip6/<ip>/tcp/<port> and /ip4|ip6/<ip>/udp/<port>/quic-v1 are "
                         "supported (no DNS resolution: this node never looks names up)")
    return text


def _bootstrap_addr(text: str) -> str:
    _multiaddr(text)
    try:
        peer = Multiaddr(text).get_peer_id()
    except Exception:
        peer = None
    if not peer:
        raise ValueError(f"{quote(text)} does not end in /p2p/<peer id>")
    try:
        PeerId.from_base58(peer)
    except IdentityError as exc:
        raise ValueError(f"{quote(text)}: {exc}") from None
    return text


def _peer_id_or(word: str) -> Callable[[str], str]:
    """A check for a base58 peer ID or ``word`` ("auto", "*")."""
    def check(text: str) -> str:
        if text != word:
            try:
                PeerId.from_base58(text)
            except IdentityError as exc:
                raise ValueError(f'"{word}" or a base58 peer ID, not {quote(text)}: {exc}') from None
        return text
    return check


_peer_id = _peer_id_or("auto")


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _host_port(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{quote(text)} is not host:port (e.g. 127.0.0.1:8545 or [::1]:8545)")
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        # a name: what the resolver takes (labels of letters, digits and '-', at most 253 characters)
        if bracketed or len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
            raise ValueError(f"{quote(text)}: {quote(host, 40)} is neither an IP address nor a host name") from None
    return text


def _path(text: str) -> str:
    if "\0" in text:
        raise ValueError("a path cannot contain a NUL byte")
    if len(text) > 4096:
        raise ValueError(f"a path of {len(text)} characters; at most 4096")
    return text


ListenAddr = Annotated[str, AfterValidator(_multiaddr)]
BootstrapAddr = Annotated[str, AfterValidator(_bootstrap_addr)]
FilePath = Annotated[str, AfterValidator(_path)]


def _range(lo: float, hi: float, *, open_lo: bool = True) -> Any:
    return Field(gt=lo, le=hi) if open_lo else Field(ge=lo, le=hi)


# Every number has a range: beyond it a value is a typo (or an attack) that would overflow or never fire.
Seconds = Annotated[float, _range(0, HOUR)]  # timeouts
Span = Annotated[float, _range(0, YEAR)]  # TTLs and intervals
Limit = Annotated[int, _range(0, 1_000_000)]  # counts and limits (>= 1)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Network(_Section):
    peer_id: Annotated[str, AfterValidator(_peer_id)] = "auto"
    listen_addresses: list[ListenAddr] = Field(default_factory=lambda: list(DEFAULT_LISTEN), min_length=1,
                                               max_length=64)
    # ours: where the identity key lives ("auto" creates it there on first start); relative to the file
    key_file: FilePath = "node.key"
    # ours: transports in dialling preference order
    transports: list[Literal["quic", "tcp"]] = Field(default_factory=lambda: ["quic", "tcp"], min_length=1,
                                                     max_length=2)

    @field_validator("transports")
    @classmethod
    def _transports_for_listening(cls, transports: list[str], info: ValidationInfo) -> list[str]:
        for i, addr in enumerate(info.data.get("listen_addresses") or []):
            transport = "quic" if addr.split("/p2p/")[0].endswith("/quic-v1") else "tcp"
            if transport not in transports:
                raise ValueError(f"lacks {transport!r}, which listen_addresses[{i}] ({quote(addr)}) needs")
        return transports


class Bootstrap(_Section):
    nodes: list[BootstrapAddr] = Field(default_factory=list, max_length=1000)


class Dht(_Section):
    protocol: str = "/ipfs/kad/1.0.0"
    replication_factor: Annotated[int, _range(0, 256)] = 20
    record_ttl: Span = 3600
    provider_ttl: Span = 86400
    alpha: Annotated[int, _range(0, 64)] = 5
    disjoint_paths: Annotated[int, _range(0, 64)] = 1
    # ours: where stored records are kept across restarts (relative to the file); empty: not kept
    storage_path: FilePath = ""
    # ours, the simulator's parameters (seconds): a request unanswered this long failed; a lookup stops
    # waiting for it after slow_after; buckets unlooked-up this long are refreshed; records re-put this
    # often (default: half the TTL, at most 1800)
    request_timeout: Seconds = 2.0
    slow_after: Seconds = 1.0
    refresh_interval: Annotated[float, _range(1, YEAR, open_lo=False)] = 600
    republish_interval: Span | None = None


class Tunneling(_Section):
    enabled: bool = True
    preferred_protocols: list[Literal[TRANSITION_MECHANISMS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["native", "dslite", "teredo"])
    fallback_cascade: bool = True
    probe_interval: Annotated[float, _range(1, 86400, open_lo=False)] = 300


MCP_TOOLS = ("query_network", "find_peers", "relay_message", "run_inference", "forward_to_peer",
             "aggregate_results", "get_status", "list_connections", "configure")
McpTool = Literal[MCP_TOOLS]  # type: ignore[valid-type]


def _origin(text: str) -> str:
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
        raise ValueError(f"{quote(text)} is not an origin (scheme://host[:port], e.g. https://app.example)")
    return text


class McpInference(_Section):
    # "embedded": the model shipped in the magika package; "openai": an OpenAI-compatible HTTP endpoint
    backend: Literal["embedded", "openai"] = "embedded"
    endpoint: str = "http://127.0.0.1:8080/v1"
    model: str = ""
    api_key_env: str = ""  # the environment variable holding the endpoint's API key, if it wants one
    timeout: Seconds = 60


class Mcp(_Section):
    enabled: bool = True
    # the node's local HTTP listener: /mcp (Streamable HTTP), /health, /ready, /metrics, /debug/peers
    server_address: Annotated[str, AfterValidator(_host_port)] = "127.0.0.1:8545"
    max_concurrent_requests: Limit = 100
    request_timeout: Seconds = 30
    available_tools: list[McpTool] = Field(default_factory=lambda: list(MCP_TOOLS))
    # ours: Origins a browser may call /mcp from besides loopback ones (DNS-rebinding protection)
    allowed_origins: list[Annotated[str, AfterValidator(_origin)]] = Field(default_factory=list)
    max_body_bytes: Annotated[int, _range(0, 64 << 20)] = 1 << 20
    page_size: Limit = 50  # tools/list and resources/list page size
    # ours: the service this node registers in the DHT (mcp:service:{service_name}:{peer_id}) unless
    # advertise is false, and how long its descriptor lives there (refreshed at half that)
    advertise: bool = True
    service_name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] = "p2pnode"
    service_ttl: Annotated[float, _range(10, YEAR, open_lo=False)] = 300
    # ours: which peers may call which tools over /p2pnode/mcp/1.0.0 ("*": any other peer; "relay" lets
    # a peer route requests through this node); agents on this machine may call every available tool
    peer_tools: dict[Annotated[str, AfterValidator(_peer_id_or("*"))], list[McpTool | Literal["relay", "*"]]] = Field(
        default_factory=lambda: {"*": [t for t in MCP_TOOLS if t != "configure"] + ["relay"]})
    inference: McpInference = Field(default_factory=McpInference)


class Security(_Section):
    enable_encryption: Literal[True] = True  # every transport here is encrypted; false is refused
    require_authentication: bool = True
    rate_limit_per_peer: Limit = 100
    total_rate_limit: Annotated[int, _range(0, 100_000_000)] = 10000
    # ours: S/Kademlia's node-ID puzzles, in bits (0: off, for peers that solve none: other libp2p nodes).
    # A peer whose ID fails them is kept out of the routing table and out of lookups; this node's own key
    # must meet puzzle_static (an "auto" key is made so), and it solves puzzle_dynamic at start.
    puzzle_static: Annotated[int, _range(0, 32, open_lo=False)] = 0
    puzzle_dynamic: Annotated[int, _range(0, 32, open_lo=False)] = 0
    # ours: the sibling list, the peers closest to this node's ID kept whatever their bucket (0: none;
    # else at least dht.replication_factor); new siblings are handed the records they should hold
    siblings: Annotated[int, _range(0, 1024, open_lo=False)] = 0
    # ours: proof of work for DHT writes, in bits (0: off): a record is stored only with a stamp that meets
    # it, and this node mints one for each new version it puts (about 2**bits hashes)
    pow_difficulty: Annotated[int, _range(0, 32, open_lo=False)] = 0
    # ours: capability tokens (p2pnode.security.capability) this node honours besides its own: their
    # issuers' peer IDs; and DHT key namespaces (prefixes) only peers holding "write:<prefix>" may write
    trusted_issuers: list[Annotated[str, AfterValidator(_peer_id_or("*"))]] = Field(default_factory=list,
                                                                                   max_length=100)
    protected_namespaces: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(default_factory=list,
                                                                                         max_length=100)


class Resources(_Section):
    max_connections: Limit = 1000
    max_memory_mb: Limit = 500
    bandwidth_limit_mbps: Annotated[float, _range(0, 1_000_000)] = 100
    connection_timeout: Seconds = 30


class Pubsub(_Section):
    enabled: bool = True
    topics: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(default_factory=list,
                                                                            max_length=1000)  # subscribed at start
    peers: Annotated[int, _range(0, 1000)] = 8  # connections the node keeps open for pub-sub
    max_peers: Annotated[int, _range(0, 1000)] = 64
    # ours: gossipsub v1.1 peer scoring, and the message rate per topic its parameters are sized for
    # (as the simulator sizes them; empty: the default parameters)
    scoring: bool = True
    expected_rate: Annotated[float, _range(0, 100_000)] | None = None  # messages per second


class Log(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"
    modules: dict[str, Literal["debug", "info", "warning", "error"]] = Field(default_factory=dict)
    # ours: measured events (the simulator's events.csv columns) go to this file (relative to the config
    # file; empty: none), with this node number in the ``node`` column
    events_file: FilePath = ""
    node_index: Annotated[int, _range(0, 1_000_000, open_lo=False)] | None = None


def _network(text: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_network(text)
    except ValueError as exc:
        raise ValueError(f"{quote(text)} is not a network (e.g. 10.99.0.0/16): {quote(str(exc), 80)}") from None
    return text


class Nat(_Section):
    """NAT traversal (docs/nat.md); off unless ``enabled``. Defaults as ``p2pnode.config.NatConfig``."""

    enabled: bool = False
    reachability: Literal["auto", "public", "private"] = "auto"  # auto: AutoNAT decides
    autonat_server: bool = True
    relay_service: bool = False  # serve Circuit Relay v2 once public
    relays: Annotated[int, _range(0, 1000, open_lo=False)] = 2  # relays a private node keeps a reservation at
    hole_punching: bool = True  # DCUtR
    max_reservations: Limit = 128
    max_circuits: Limit = 16
    circuit_duration: Annotated[int, _range(0, YEAR, open_lo=False)] = 120  # seconds; 0: no limit
    circuit_data: Annotated[int, _range(0, 1 << 40, open_lo=False)] = 1 << 17  # bytes each way; 0: no limit
    # networks whose addresses count as public (a lab's "internet"; AutoNAT never dials private addresses)
    public_ranges: list[Annotated[str, AfterValidator(_network)]] = Field(default_factory=list, max_length=1000)
    # these two act whether or not ``enabled`` is: each probes at start and says in /debug/peers what it found
    mdns: bool = False  # discover peers on the local link (_p2p._udp.local)
    port_mapping: bool = False  # ask the router for a port mapping (UPnP IGD, NAT-PMP, PCP)
    # ... trying these, in this order, until one maps the ports
    port_mapping_protocols: list[Literal["pcp", "nat-pmp", "upnp"]] = Field(
        default_factory=lambda: ["pcp", "nat-pmp", "upnp"], min_length=1, max_length=3)

    def protocol_config(self):
        from p2pnode.config import NatConfig

        return NatConfig(reachability=self.reachability, autonat_server=self.autonat_server,
                         relay_service=self.relay_service, relays=self.relays, hole_punching=self.hole_punching,
                         max_reservations=self.max_reservations, max_circuits=self.max_circuits,
                         circuit_duration=self.circuit_duration, circuit_data=self.circuit_data)


class NodeConfig(_Section):
    network: Network = Field(default_factory=Network)
    bootstrap: Bootstrap = Field(default_factory=Bootstrap)
    dht: Dht = Field(default_factory=Dht)
    tunneling: Tunneling = Field(default_factory=Tunneling)
    mcp: Mcp = Field(default_factory=Mcp)
    security: Security = Field(default_factory=Security)
    resources: Resources = Field(default_factory=Resources)
    pubsub: Pubsub = Field(default_factory=Pubsub)
    nat: Nat = Field(default_factory=Nat)
    log: Log = Field(default_factory=Log)
    _base_dir: Path = PrivateAttr(default=Path("."))  # the file's directory: relative paths start here

    @model_validator(mode="after")
    def _siblings_hold_a_replica_set(self) -> NodeConfig:
        if 0 < self.security.siblings < self.dht.replication_factor:
            raise ValueError(f"security.siblings: {self.security.siblings} is below dht.replication_factor "
                             f"({self.dht.replication_factor}); a sibling list holds at least that many (0: none)")
        return self

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def path(self, relative: str) -> Path:
        return self.base_dir / relative


def _message(error: dict) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
                    for i, p in enumerate(error["loc"])) or "(file)"
    where = where if _PLAIN_PATH.fullmatch(where) else quote(where, 60)
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown key"
    if kind == "missing":
        return f"{where}: required"
    text = error["msg"].removeprefix("Value error, ")
    if kind == "literal_error" and "enable_encryption" in where:
        text = "must be true: this node has no unencrypted transport"
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        bound = error["ctx"][key]
        return f"{where}: must be {op} {bound:g} (got {quote(error.get('input'))})"
    if kind.endswith("_type") or kind == "finite_number":
        return f"{where}: {text} (got {quote(error.get('input'))})"
    return f"{where}: {text}"


_BOUNDS = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"), "less_than_equal": ("<=", "le")}
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.\[\]*-]{1,120}")


def parse_config(text: str, base_dir: Path = Path("."), source: str = "<config>") -> NodeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NodeConfigError(one_line(f"{source}: not valid TOML: {exc}")) from None
    except RecursionError:
        raise NodeConfigError(f"{source}: not valid TOML: nested too deeply") from None
    except ValueError:  # tomllib converts integers itself: more digits than Python converts (4,300)
        raise NodeConfigError(f"{source}: not valid TOML: an integer of more than 4300 digits") from None
    return validate_config(data, base_dir, source)


def validate_config(data: dict, base_dir: Path = Path("."), source: str = "<config>") -> NodeConfig:
    """A configuration from its sections as a dict (what the TOML file holds), by the file's rules; the
    ``configure`` MCP tool checks runtime changes with this too."""
    try:
        config = NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise NodeConfigError("\n".join(one_line(f"{source}: {_message(e)}") for e in exc.errors())) from None
    config._base_dir = base_dir
    return config


def load_config(path: str | Path) -> NodeConfig:
    path = Path(path)
    try:
        text = read_text(path, MAX_CONFIG_BYTES)
    except InputFileError as exc:
        raise NodeConfigError(f"{path}: {exc.reason}") from None
    return parse_config(text, path.resolve().parent, str(path))
