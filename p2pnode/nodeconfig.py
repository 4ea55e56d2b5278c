"""The node's configuration file: the spec's TOML format (``[network]``, ``[bootstrap]``, ``[dht]``,
``[tunneling]``, ``[mcp]``, ``[security]``, ``[resources]``) plus our ``[pubsub]``, ``[nat]`` and ``[log]``.

Every section and key is optional and has the spec's default; an unknown key, a wrong type or an
impossible value is an error that names the key (``NodeConfigError``, one line per problem). Keys that
only later parts of the product act on (tunneling, MCP tools, rate limits, memory and bandwidth
limits) are read and checked now, so a file written for the whole spec loads today.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from multiaddr import Multiaddr
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from p2pnode.identity import IdentityError, PeerId

TRANSITION_MECHANISMS = ("native", "dslite", "teredo", "6to4", "isatap", "6over4", "map-e", "map-t", "464xlat",
                         "6rd")
# The spec's; also what ``Node(listen=...)`` defaults to.
DEFAULT_LISTEN = ("/ip6/::/tcp/9000", "/ip4/0.0.0.0/tcp/9000", "/ip6/::/udp/9001/quic-v1",
                  "/ip4/0.0.0.0/udp/9001/quic-v1")


class NodeConfigError(ValueError):
    """A configuration file that cannot be used; one line per problem."""


def _multiaddr(text: str) -> str:
    try:
        addr = Multiaddr(text)
    except Exception as exc:
        raise ValueError(f"{text!r} is not a multiaddr ({exc})") from None
    names = [p.name for p in addr.protocols()]
    if names[-1] == "p2p":
        names.pop()
    if names[:1] not in (["ip4"], ["ip6"]) or names[1:] not in (["tcp"], ["udp", "quic-v1"]):
        raise ValueError(f"{text!r}: only /ip4|ip6/<ip>/tcp/<port> and /ip4|ip6/<ip>/udp/<port>/quic-v1 are "
                         "supported (no DNS resolution: this node never looks names up)")
    return text


def _bootstrap_addr(text: str) -> str:
    _multiaddr(text)
    try:
        peer = Multiaddr(text).get_peer_id()
    except Exception:
        peer = None
    if not peer:
        raise ValueError(f"{text!r} does not end in /p2p/<peer id>")
    try:
        PeerId.from_base58(peer)
    except IdentityError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    return text


def _peer_id_or(word: str) -> Callable[[str], str]:
    """A check for a base58 peer ID or ``word`` ("auto", "*")."""
    def check(text: str) -> str:
        if text != word:
            try:
                PeerId.from_base58(text)
            except IdentityError as exc:
                raise ValueError(f'"{word}" or a base58 peer ID, not {text!r}: {exc}') from None
        return text
    return check


_peer_id = _peer_id_or("auto")


def _host_port(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{text!r} is not host:port (e.g. 127.0.0.1:8545 or [::1]:8545)")
    return text


ListenAddr = Annotated[str, AfterValidator(_multiaddr)]
BootstrapAddr = Annotated[str, AfterValidator(_bootstrap_addr)]
Positive = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Network(_Section):
    peer_id: Annotated[str, AfterValidator(_peer_id)] = "auto"
    listen_addresses: list[ListenAddr] = Field(default_factory=lambda: list(DEFAULT_LISTEN), min_length=1)
    # ours: where the identity key lives ("auto" creates it there on first start); relative to the file
    key_file: str = "node.key"
    # ours: transports in dialling preference order
    transports: list[Literal["quic", "tcp"]] = Field(default_factory=lambda: ["quic", "tcp"], min_length=1)


class Bootstrap(_Section):
    nodes: list[BootstrapAddr] = Field(default_factory=list)


class Dht(_Section):
    protocol: str = "/ipfs/kad/1.0.0"
    replication_factor: PositiveInt = 20
    record_ttl: Positive = 3600
    provider_ttl: Positive = 86400
    alpha: PositiveInt = 5
    disjoint_paths: PositiveInt = 1
    # ours: where stored records are kept across restarts (relative to the file); empty: not kept
    storage_path: str = ""
    # ours, the simulator's parameters (seconds): a request unanswered this long failed; a lookup stops
    # waiting for it after slow_after; buckets unlooked-up this long are refreshed; records re-put this
    # often (default: half the TTL, at most 1800)
    request_timeout: Positive = 2.0
    slow_after: Positive = 1.0
    refresh_interval: Positive = 600
    republish_interval: Positive | None = None


class Tunneling(_Section):
    enabled: bool = True
    preferred_protocols: list[Literal[TRANSITION_MECHANISMS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["native", "dslite", "teredo"])
    fallback_cascade: bool = True
    probe_interval: Positive = 300


MCP_TOOLS = ("query_network", "find_peers", "relay_message", "run_inference", "forward_to_peer",
             "aggregate_results", "get_status", "list_connections", "configure")
McpTool = Literal[MCP_TOOLS]  # type: ignore[valid-type]


def _origin(text: str) -> str:
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
        raise ValueError(f"{text!r} is not an origin (scheme://host[:port], e.g. https://app.example)")
    return text


class McpInference(_Section):
    # "embedded": the model shipped in the magika package; "openai": an OpenAI-compatible HTTP endpoint
    backend: Literal["embedded", "openai"] = "embedded"
    endpoint: str = "http://127.0.0.1:8080/v1"
    model: str = ""
    api_key_env: str = ""  # the environment variable holding the endpoint's API key, if it wants one
    timeout: Positive = 60


class Mcp(_Section):
    enabled: bool = True
    # the node's local HTTP listener: /mcp (Streamable HTTP), /health, /ready, /metrics, /debug/peers
    server_address: Annotated[str, AfterValidator(_host_port)] = "127.0.0.1:8545"
    max_concurrent_requests: PositiveInt = 100
    request_timeout: Positive = 30
    available_tools: list[McpTool] = Field(default_factory=lambda: list(MCP_TOOLS))
    # ours: Origins a browser may call /mcp from besides loopback ones (DNS-rebinding protection)
    allowed_origins: list[Annotated[str, AfterValidator(_origin)]] = Field(default_factory=list)
    max_body_bytes: PositiveInt = 1 << 20
    page_size: PositiveInt = 50  # tools/list and resources/list page size
    # ours: the service this node registers in the DHT (mcp:service:{service_name}:{peer_id}) unless
    # advertise is false, and how long its descriptor lives there (refreshed at half that)
    advertise: bool = True
    service_name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] = "p2pnode"
    service_ttl: Annotated[float, Field(ge=10)] = 300
    # ours: which peers may call which tools over /p2pnode/mcp/1.0.0 ("*": any other peer; "relay" lets
    # a peer route requests through this node); agents on this machine may call every available tool
    peer_tools: dict[Annotated[str, AfterValidator(_peer_id_or("*"))], list[McpTool | Literal["relay", "*"]]] = Field(
        default_factory=lambda: {"*": [t for t in MCP_TOOLS if t != "configure"] + ["relay"]})
    inference: McpInference = Field(default_factory=McpInference)


class Security(_Section):
    enable_encryption: Literal[True] = True  # every transport here is encrypted; false is refused
    require_authentication: bool = True
    rate_limit_per_peer: PositiveInt = 100
    total_rate_limit: PositiveInt = 10000


class Resources(_Section):
    max_connections: PositiveInt = 1000
    max_memory_mb: PositiveInt = 500
    bandwidth_limit_mbps: Positive = 100
    connection_timeout: Positive = 30


class Pubsub(_Section):
    enabled: bool = True
    topics: list[str] = Field(default_factory=list)  # subscribed at start
    peers: PositiveInt = 8  # connections the node keeps open for pub-sub
    max_peers: PositiveInt = 64
    # ours: gossipsub v1.1 peer scoring, and the message rate per topic its parameters are sized for
    # (as the simulator sizes them; empty: the default parameters)
    scoring: bool = True
    expected_rate: Positive | None = None


class Log(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"
    modules: dict[str, Literal["debug", "info", "warning", "error"]] = Field(default_factory=dict)
    # ours: measured events (the simulator's events.csv columns) go to this file (relative to the config
    # file; empty: none), with this node number in the ``node`` column
    events_file: str = ""
    node_index: Annotated[int, Field(ge=0)] | None = None


def _network(text: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_network(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a network (e.g. 10.99.0.0/16): {exc}") from None
    return text


class Nat(_Section):
    """NAT traversal (docs/nat.md); off unless ``enabled``. Defaults as ``p2pnode.config.NatConfig``."""

    enabled: bool = False
    reachability: Literal["auto", "public", "private"] = "auto"  # auto: AutoNAT decides
    autonat_server: bool = True
    relay_service: bool = False  # serve Circuit Relay v2 once public
    relays: Annotated[int, Field(ge=0)] = 2  # relays a private node keeps a reservation at
    hole_punching: bool = True  # DCUtR
    max_reservations: PositiveInt = 128
    max_circuits: PositiveInt = 16
    circuit_duration: Annotated[int, Field(ge=0)] = 120  # seconds; 0: no limit
    circuit_data: Annotated[int, Field(ge=0)] = 1 << 17  # bytes each way; 0: no limit
    # networks whose addresses count as public (a lab's "internet"; AutoNAT never dials private addresses)
    public_ranges: list[Annotated[str, AfterValidator(_network)]] = Field(default_factory=list)
    mdns: bool = False  # discover peers on the local link (_p2p._udp.local)
    port_mapping: bool = False  # ask the router for a port mapping (UPnP IGD, NAT-PMP, PCP)

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
    base_dir: Path = Field(default=Path("."), exclude=True)  # the file's directory: relative paths start here

    def path(self, relative: str) -> Path:
        return self.base_dir / relative


def _message(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(file)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown key"
    if kind == "missing":
        return f"{where}: required"
    text = error["msg"].removeprefix("Value error, ")
    if kind == "literal_error" and "enable_encryption" in where:
        text = "must be true: this node has no unencrypted transport"
    return f"{where}: {text} (got {error.get('input')!r})" if kind.endswith("_type") else f"{where}: {text}"


def parse_config(text: str, base_dir: Path = Path("."), source: str = "<config>") -> NodeConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NodeConfigError(f"{source}: not valid TOML: {exc}") from None
    return validate_config(data, base_dir, source)


def validate_config(data: dict, base_dir: Path = Path("."), source: str = "<config>") -> NodeConfig:
    """A configuration from its sections as a dict (what the TOML file holds), by the file's rules; the
    ``configure`` MCP tool checks runtime changes with this too."""
    data = {k: v for k, v in data.items() if k != "base_dir"}
    try:
        config = NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise NodeConfigError("\n".join(f"{source}: {_message(e)}" for e in exc.errors())) from None
    config.base_dir = base_dir
    return config


def load_config(path: str | Path) -> NodeConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise NodeConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config(text, path.resolve().parent, str(path))
