"""The scenario schema: every section and field of a scenario file (docs/scenarios.md), as pydantic models.

`build` validates plain data (a converted YAML document, or a dumped scenario with a value changed) into a
`Scenario`, turning pydantic's errors into `ScenarioError` problems with lines (experiment.scenario.errors).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from experiment.criteria import DEFAULT_TARGETS, MCP_CRITERIA, PUBSUB_CRITERIA, SHARE_CRITERIA
from experiment.scenario.errors import (
    Loc,
    ScenarioError,
    got,
    problem,
    raise_if,
    validation_problems,
)
from experiment.scenario.fields import (
    ARRIVALS,
    BEHAVIOURS,
    DISCOVERY,
    GOSSIP_ATTACKS,
    KAD_PRESET_NAMES,
    LATENCY_MODELS,
    MAX_NODES,
    MAX_TIME,
    MAX_TIMEOUT,
    WIRE_MODES,
    AddressFamily,
    Count,
    CriterionName,
    Flag,
    NatType,
    NodeCount,
    NonNegSpan,
    NonNegTimeout,
    PosCount,
    Rate,
    RegionName,
    Share,
    Span,
    Threshold,
    Timeout,
    Transition,
    _between,
    _check_name,
    _choice,
    _Model,
    _sum_to_one,
)
from experiment.scenario.grid import MAX_SEEDS, apply_overrides, expand, grid_problems
from experiment.scenario.nat import Nat
from experiment.scenario.yaml_lines import Lines, Problem, source_label
from p2pnode.userinput import quote

# --------------------------------------------------------------------------------------------
# Sections


class Nodes(_Model):
    count: NodeCount = 1000
    bootstrap: Annotated[int, Strict(), _between(1, MAX_NODES)] = 4
    join_over: NonNegSpan = 30.0
    regions: Annotated[dict[RegionName, Share], AfterValidator(_sum_to_one)] | None = None
    nat: Annotated[dict[NatType, Share], AfterValidator(_sum_to_one)] = Field(
        default_factory=lambda: {"none": 1.0}
    )
    address_families: Annotated[dict[AddressFamily, Share], AfterValidator(_sum_to_one)] = Field(
        default_factory=lambda: {"dual": 1.0}
    )
    transition: Annotated[dict[Transition, Share], AfterValidator(_sum_to_one)] = Field(
        default_factory=lambda: {"native": 1.0}
    )
    # the share of tunnelled nodes whose operator element drops selection probes (sim/access.py)
    transition_blackhole: Annotated[float, Strict(), Field(ge=0, le=1)] = 0.0

    @model_validator(mode="after")
    def _check(self) -> Nodes:
        if self.bootstrap > self.count:
            raise_if([(("bootstrap",), f"{self.bootstrap} bootstrap nodes but only {self.count} nodes")])
        return self

    def region_shares(self, known: Iterable[str]) -> dict[str, float]:
        """Share per region: `regions` as given, or spread evenly over the latency model's regions."""
        if self.regions is not None:
            return dict(self.regions)
        names = list(known)
        return {name: 1.0 / len(names) for name in names}


AccessLatency = Annotated[float, Strict(), _between(0, 10)]  # seconds, one way


class Latency(_Model):
    model: Annotated[Literal[LATENCY_MODELS], _choice(LATENCY_MODELS)] = "regions"
    matrix: Path | None = None
    graph: Path | None = None  # a GML/GraphML network graph (experiment.graph)
    jitter: Share = 0.1  # relative standard deviation
    access: tuple[AccessLatency, AccessLatency] = (0.002, 0.02)

    @model_validator(mode="after")
    def _check(self) -> Latency:
        items: list[tuple[Loc, str]] = []
        if self.model == "matrix" and self.matrix is None:
            items.append((("matrix",), "required when model is 'matrix' (a CSV file of RTTs in ms)"))
        if self.model == "graph" and self.graph is None:
            items.append((("graph",), "required when model is 'graph' (a GML or GraphML network graph)"))
        for key in ("matrix", "graph"):
            if self.model != key and getattr(self, key) is not None:
                items.append(((key,), f"only used with model: {key} (model is {self.model!r})"))
        lo, hi = self.access
        if lo > hi:
            items.append((("access",), f"range [{lo}, {hi}] has its lower bound above its upper bound"))
        raise_if(items)
        return self


class Network(_Model):
    latency: Latency = Field(default_factory=Latency)
    loss: Annotated[float, Strict(), Field(ge=0, lt=1)] = 0.0
    idle_timeout: Timeout = 30.0  # seconds until a crashed peer's connections are noticed as dead


class Dht(_Model):
    k: Annotated[int, Strict(), _between(1, 256)] = 20
    alpha: Annotated[int, Strict(), _between(1, 64)] = 5
    disjoint_paths: Annotated[int, Strict(), _between(1, 64)] = 1
    request_timeout: Timeout = 2.0
    slow_after: Timeout = 1.0
    record_ttl: Span = 3600.0
    republish_interval: Span = 1800.0
    # every bucket of every node is looked up once per interval: below a second that is a flood, not a refresh
    refresh_interval: Annotated[float, Strict(), _between(1, MAX_TIME)] = 600.0
    wire: Annotated[Literal[WIRE_MODES], _choice(WIRE_MODES)] = "objects"
    # p2pnode/config.py KAD_PRESETS: "go-libp2p-kad-dht" replaces alpha, the timeouts and the lookup rules
    # with go-libp2p-kad-dht's (k and everything else stay), for a comparison on the same network
    preset: Annotated[Literal[KAD_PRESET_NAMES], _choice(KAD_PRESET_NAMES)] = "p2pnode"

    @model_validator(mode="after")
    def _check(self) -> Dht:
        items: list[tuple[Loc, str]] = []
        if self.disjoint_paths > self.alpha:
            items.append((("disjoint_paths",), f"{self.disjoint_paths} exceeds alpha ({self.alpha})"))
        if self.slow_after > self.request_timeout:
            items.append((("slow_after",), f"{self.slow_after:g} exceeds request_timeout ({self.request_timeout:g})"))
        if self.republish_interval >= self.record_ttl:
            items.append(
                (
                    ("republish_interval",),
                    f"{self.republish_interval:g} must be shorter than record_ttl ({self.record_ttl:g})",
                )
            )
        raise_if(items)
        return self


# Churn times: at least a second (the event estimate judges how many departures a run can hold), at most a
# year; the shapes' ranges keep every draw and every mean a finite float.
ChurnTime = Annotated[float, Strict(), _between(1, MAX_TIME)]


class Exponential(_Model):
    distribution: Literal["exponential"]
    mean: ChurnTime

    @property
    def expected(self) -> float:
        return self.mean

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean)


class Weibull(_Model):
    distribution: Literal["weibull"]
    shape: Annotated[float, Strict(), _between(0.1, 10)]  # measured churn: 0.3 - 0.6
    scale: ChurnTime

    @property
    def expected(self) -> float:
        return self.scale * math.gamma(1.0 + 1.0 / self.shape)

    def sample(self, rng: random.Random) -> float:
        return rng.weibullvariate(self.scale, self.shape)


class Lognormal(_Model):
    distribution: Literal["lognormal"]
    mu: Annotated[float, Strict(), _between(0, 17)]  # the median session is e^mu seconds: 1 s .. ~8 months
    sigma: Annotated[float, Strict(), _between(0, 4, open_lo=True)]

    @property
    def expected(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma)


Distribution = Annotated[Exponential | Weibull | Lognormal, Field(discriminator="distribution")]


class Churn(_Model):
    session: Distribution = Field(
        default_factory=lambda: Weibull(distribution="weibull", shape=0.6, scale=1800)
    )
    offline: Distribution = Field(default_factory=lambda: Exponential(distribution="exponential", mean=600))
    graceful: Share = 0.0


class Workload(_Model):
    """Operations per live node per minute (experiment/workload.py): ``lookup`` FIND_NODE convergence to
    the k closest; ``get``, ``find_peer`` and ``find_providers`` the user-facing lookups; ``put`` and
    ``provide`` the stores the gets and provider lookups ask for."""

    lookup: Rate = 1.0
    put: Rate = 0.1
    get: Rate = 0.5
    find_peer: Rate = 0.0
    provide: Rate = 0.0
    find_providers: Rate = 0.0

    def user_lookups(self) -> bool:
        """Whether the workload has a user-facing lookup (``lookup_p99`` is judged on those then)."""
        return self.get > 0 or self.find_peer > 0 or self.find_providers > 0

    @model_validator(mode="after")
    def _check(self) -> Workload:
        if self.find_providers > 0 and self.provide <= 0:
            raise_if([(("find_providers",), "needs providers to find (workload.provide > 0)")])
        return self
    value_size: Annotated[int, Strict(), Field(ge=0, le=64 * 1024)] = 256
    updates: Share = 0.0  # the share of puts that write a new version of an earlier key (by its publisher)


class Router(_Model):
    """GossipSub router parameters: the fields (names and defaults) of p2pnode.config.GossipConfig."""

    d: PosCount = 6
    d_lo: PosCount = 4
    d_hi: PosCount = 12
    d_lazy: Count = 6
    d_score: Count = 4
    d_out: Count = 2
    heartbeat_interval: Annotated[float, Strict(), _between(0.01, MAX_TIMEOUT)] = 1.0
    fanout_ttl: Span = 60.0
    history_length: PosCount = 5
    history_gossip: PosCount = 3
    seen_ttl: Span = 120.0
    flood_publish: Flag = True
    prune_peers: Count = 16
    prune_backoff: NonNegSpan = 60.0
    unsubscribe_backoff: NonNegSpan = 10.0
    gossip_factor: Share = 0.25
    opportunistic_graft_ticks: Annotated[int, Strict(), _between(1, 1_000_000)] = 60
    opportunistic_graft_peers: Count = 2
    gossip_retransmission: PosCount = 3
    max_ihave_length: Annotated[int, Strict(), _between(1, 1_000_000)] = 5000
    max_ihave_messages: PosCount = 10
    iwant_followup_time: Timeout = 3.0
    graft_flood_threshold: NonNegTimeout = 10.0
    max_message_size: Annotated[int, Strict(), _between(1, 64 << 20)] = 1 << 20

    @model_validator(mode="after")
    def _check(self) -> Router:
        items: list[tuple[Loc, str]] = []
        if self.d_lo > self.d:
            items.append((("d_lo",), f"{self.d_lo} exceeds d ({self.d})"))
        if self.d > self.d_hi:
            items.append((("d_hi",), f"{self.d_hi} is below d ({self.d})"))
        if self.d_out >= self.d_lo:
            items.append((("d_out",), f"{self.d_out} must be below d_lo ({self.d_lo})"))
        elif self.d_out > self.d // 2:
            items.append((("d_out",), f"{self.d_out} exceeds half of d ({self.d} // 2 = {self.d // 2})"))
        if self.d_score > self.d:
            items.append((("d_score",), f"{self.d_score} exceeds d ({self.d})"))
        if self.history_gossip > self.history_length:
            items.append(
                (("history_gossip",), f"{self.history_gossip} exceeds history_length ({self.history_length})")
            )
        raise_if(items)
        return self


class Score(_Model):
    """Peer-score thresholds: the same-named fields (and defaults) of p2pnode.config.ScoreConfig."""

    gossip_threshold: Annotated[float, Strict(), _between(-1e6, 0)] = -10.0
    publish_threshold: Threshold = -50.0
    graylist_threshold: Threshold = -80.0
    accept_px_threshold: Annotated[float, Strict(), _between(0, 1e6)] = 1.0
    opportunistic_graft_threshold: Annotated[float, Strict(), _between(0, 1e6)] = 1.0

    @model_validator(mode="after")
    def _check(self) -> Score:
        items: list[tuple[Loc, str]] = []
        if self.publish_threshold > self.gossip_threshold:
            items.append(
                (
                    ("publish_threshold",),
                    f"{self.publish_threshold:g} exceeds gossip_threshold ({self.gossip_threshold:g})",
                )
            )
        if self.graylist_threshold >= self.publish_threshold:
            items.append(
                (
                    ("graylist_threshold",),
                    f"{self.graylist_threshold:g} must be below publish_threshold ({self.publish_threshold:g})",
                )
            )
        raise_if(items)
        return self


class GossipAttack(_Model):
    kind: Annotated[Literal[GOSSIP_ATTACKS], _choice(GOSSIP_ATTACKS)] = "drop"
    at: NonNegSpan = 0.0  # flash: when the attackers turn from forwarding to dropping (simulated seconds)
    spam: Annotated[float, Strict(), _between(0, 1000)] = 10.0  # flood: invalid messages a second per attacker


class Pubsub(_Model):
    topics: PosCount = 1
    subscribers: Annotated[float, Strict(), _between(0, 1, open_lo=True)] = 1.0
    publishers: Annotated[float, Strict(), _between(0, 1, open_lo=True)] = 0.05
    rate: Annotated[float, Strict(), _between(0, 100_000, open_lo=True)] = 1.0  # network-wide, per second
    arrivals: Annotated[Literal[ARRIVALS], _choice(ARRIVALS)] = "poisson"
    message_size: Annotated[int, Strict(), Field(ge=1, le=1024 * 1024)] = 1024
    discovery: Annotated[Literal[DISCOVERY], _choice(DISCOVERY)] = "dht"
    peers: PosCount = 20
    max_peers: PosCount = 40
    scoring: Flag = True
    attackers: Annotated[float, Strict(), Field(ge=0, lt=1)] = 0.0
    attack: GossipAttack = Field(default_factory=GossipAttack)
    router: Router = Field(default_factory=Router)
    score: Score = Field(default_factory=Score)

    @model_validator(mode="after")
    def _check(self) -> Pubsub:
        items: list[tuple[Loc, str]] = []
        if self.peers < self.router.d:
            items.append((("peers",), f"{self.peers} is below router.d ({self.router.d})"))
        if self.max_peers < self.peers:
            items.append((("max_peers",), f"{self.max_peers} is below peers ({self.peers})"))
        if self.attack.kind == "eclipse" and self.discovery != "random":
            # the eclipsed publisher's discovery answers with attackers only (a poisoned discovery service)
            items.append((("attack", "kind"), "eclipse needs discovery: random"))
        if self.attack.kind != "drop" and self.attackers == 0:
            items.append((("attack", "kind"), f"{self.attack.kind} needs attackers (pubsub.attackers > 0)"))
        raise_if(items)
        return self

    def topic_names(self) -> list[str]:
        return [f"topic-{i}" for i in range(self.topics)]


Behaviour = Annotated[Literal[BEHAVIOURS], _choice(BEHAVIOURS)]


class Eclipse(_Model):
    """The adversary places its node IDs around victim keys (possible when node IDs cost nothing: of a budget of
    2^prefix_bits keys each node keeps the valid one closest to its victim key, experiment.plan); `lookups` is
    the share of the workload's lookups that go to a victim key."""

    keys: Annotated[int, Strict(), _between(1, 64)] = 1
    prefix_bits: Annotated[int, Strict(), _between(1, 16)] = 10
    lookups: Share = 0.5


class Adversary(_Model):
    """A share of the nodes (never a bootstrap node) misbehave as `behaviours` say (sim/adversary.py); which
    ones follows from the seed, and a smaller share's nodes are among a larger share's."""

    share: Annotated[float, Strict(), _between(0, 0.9)] = 0.0
    behaviours: Annotated[list[Behaviour], Field(min_length=1, max_length=len(BEHAVIOURS))] = Field(
        default_factory=lambda: ["collude"])
    eclipse: Eclipse | None = None
    # a write flood: PUT_VALUEs of fresh signed records a second that each malicious node sprays at the peers
    # of its routing table (from the end of the warm-up)
    writes: Annotated[float, Strict(), _between(0, 1000)] = 0.0

    @model_validator(mode="after")
    def _check(self) -> Adversary:
        items: list[tuple[Loc, str]] = []
        for i, behaviour in enumerate(self.behaviours):
            if behaviour in self.behaviours[:i]:
                items.append((("behaviours", i), f"{behaviour!r} is given twice"))
        if "drop" in self.behaviours and len(self.behaviours) > 1:
            items.append((("behaviours",), "'drop' answers nothing, so it combines with no other behaviour"))
        raise_if(items)
        return self


class Mcp(_Model):
    """MCP calls between nodes (docs/mcp.md): a share of the nodes offer run_inference and register in the
    DHT; every live node calls forward_to_peer at `rate` per minute, or, for the share `aggregate` of its
    calls, aggregate_results over `fanout` providers; inference takes `service_time` on average."""

    providers: Annotated[float, Strict(), _between(0, 1, open_lo=True)] = 0.3
    rate: Rate = 1.0
    aggregate: Share = 0.1
    fanout: Annotated[int, Strict(), _between(1, 100)] = 3
    service_time: NonNegTimeout = 0.05
    attempt_timeout: Timeout = 2.0  # forward_to_peer: one provider's time before failing over
    timeout: Timeout = 5.0  # aggregate_results: the answers so far after this long
    request_timeout: Timeout = 30.0
    service_ttl: Annotated[float, Strict(), _between(10, MAX_TIME)] = 300.0


class Measure(_Model):
    # each sample walks the live nodes: more than a hundred a second is not a measurement
    sample_interval: Annotated[float, Strict(), _between(0.01, MAX_TIMEOUT)] = 1.0
    formation_sample: Annotated[int, Strict(), _between(1, MAX_NODES)] = 200
    # A subscriber counts for a message if it was up from delivery_settle s before the publish until
    # delivery_deadline s after it; it is delivered if it received the message within the deadline.
    delivery_settle: NonNegTimeout = 10.0
    delivery_deadline: Timeout = 30.0


class Criterion(_Model):
    """A criterion to judge; `target` is filled in from DEFAULT_TARGETS when not given."""

    target: Annotated[float, Strict(), _between(-1e6, 1e6)] | None = None


def _criteria_before(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: ({} if v is None else v) for k, v in data.items()}
    return data


def _criteria_after(criteria: dict[str, Criterion]) -> dict[str, Criterion]:
    out: dict[str, Criterion] = {}
    items: list[tuple[Loc, str]] = []
    for name, crit in criteria.items():
        target = DEFAULT_TARGETS[name] if crit.target is None else crit.target
        if name in SHARE_CRITERIA and not 0 < target <= 1:
            items.append(((name, "target"), f"{target:g} is a share and must be in (0, 1]"))
        elif target <= 0:
            items.append(((name, "target"), f"{target:g} must be > 0"))
        out[name] = Criterion(target=target)
    raise_if(items)
    return out


class Sweep(_Model):
    """The points are every node count (or the scenario's) with every scoring setting (or the scenario's),
    NAT setting, and value of every other field named by its dotted path (the grid, experiment.scenario.grid),
    each run with ``seeds`` seeds (the scenario's seed, +1, ...) or once with the scenario's."""

    # any other key is a scenario field's dotted path (dht.alpha: [3, 5, 8]), kept as given: the grid
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False, validate_default=False)

    nodes: Annotated[list[NodeCount], Field(min_length=1, max_length=100)] | None = None
    scoring: Annotated[list[Flag], Field(min_length=1, max_length=2)] | None = None
    nat: Annotated[list[Flag], Field(min_length=1, max_length=2)] | None = None  # with NATs, and without
    # adversary.share and dht.disjoint_paths (attack scenarios: lookup success per share, one curve per d)
    malicious: Annotated[list[Annotated[float, Strict(), _between(0, 0.9)]],
                         Field(min_length=1, max_length=100)] | None = None
    disjoint_paths: Annotated[list[Annotated[int, Strict(), _between(1, 64)]],
                              Field(min_length=1, max_length=64)] | None = None
    puzzles: Annotated[list[Annotated[int, Strict(), _between(0, 32)]],  # security.puzzle_static (0: off)
                       Field(min_length=1, max_length=33)] | None = None
    seeds: Annotated[int, Strict(), _between(1, MAX_SEEDS)] | None = None

    @property
    def grid(self) -> dict[str, list[Any]]:
        """The swept fields by dotted path, in the file's order, with their values."""
        return dict(self.__pydantic_extra__ or {})

    @model_validator(mode="after")
    def _check(self) -> Sweep:
        grid = self.grid
        axes = ("nodes", "scoring", "nat", "malicious", "disjoint_paths", "puzzles", "seeds")
        if all(getattr(self, name) is None for name in axes) and not grid:
            raise_if([((), "needs nodes, scoring, nat, malicious, disjoint_paths, puzzles, seeds or a field's "
                            "dotted path with values (what to run the scenario with)")])
        raise_if(grid_problems(grid, Scenario))
        if self.seeds is not None and "seed" in grid:
            raise_if([(("seeds",), "give seeds (a count) or seed (a list of seeds), not both")])
        for name in ("nodes", "malicious", "disjoint_paths", "puzzles"):
            values = getattr(self, name) or []
            for i in range(1, len(values)):
                if values[i] <= values[i - 1]:
                    raise_if([((name, i), f"{values[i]:g} after {values[i - 1]:g}: must be ascending")])
        for name in ("scoring", "nat"):
            flags = getattr(self, name) or []
            for i in range(1, len(flags)):
                if flags[i] in flags[:i]:
                    raise_if([((name, i), f"{got(flags[i])} is given twice")])
        return self


PuzzleBits = Annotated[int, Strict(), _between(0, 32)]


class Security(_Model):
    """The security layer (docs/scenarios.md, p2pnode/security): S/Kademlia's node-ID puzzles (bits; 0: off)
    and sibling list (0: none, else at least dht.k); proof of work for DHT writes (bits; 0: off) and the
    modelled time a publisher spends per minting hash (benchmarks/bench_security.py measures this machine's);
    the rate limits on what peers ask of each node (per peer and in total, per second; 0: none)."""

    puzzle_static: PuzzleBits = 0
    puzzle_dynamic: PuzzleBits = 0
    siblings: Annotated[int, Strict(), _between(0, 1024)] = 0
    pow_difficulty: PuzzleBits = 0
    pow_hash_seconds: Annotated[float, Strict(), _between(0, 1e-3)] = 2.5e-6
    # [security] rate limits of every node, requests (and one-way messages) per second; 0: none
    rate_limit_per_peer: Annotated[float, Strict(), _between(0, 1_000_000)] = 0.0
    total_rate_limit: Annotated[float, Strict(), _between(0, 100_000_000)] = 0.0


class Scenario(_Model):
    name: Annotated[str, Strict(), AfterValidator(_check_name)]
    description: Annotated[str, Strict()] = ""
    seed: Annotated[int, Strict(), _between(0, 2**63 - 1)] = 0
    warmup: NonNegSpan = 60.0
    duration: Span = 600.0
    nodes: Nodes = Field(default_factory=Nodes)
    network: Network = Field(default_factory=Network)
    dht: Dht = Field(default_factory=Dht)
    churn: Churn | None = None
    workload: Workload = Field(default_factory=Workload)
    pubsub: Pubsub | None = None  # None (section omitted or null): no pub-sub in the run
    mcp: Mcp | None = None  # None: no MCP calls in the run
    adversary: Adversary | None = None  # None: every node is honest
    nat: Nat = Field(default_factory=Nat)
    security: Security = Field(default_factory=Security)
    measure: Measure = Field(default_factory=Measure)
    # None (section omitted or null): the analysis judges its default set; {}: judge nothing.
    criteria: (
        Annotated[
            dict[CriterionName, Criterion], BeforeValidator(_criteria_before), AfterValidator(_criteria_after)
        ]
        | None
    ) = None
    sweep: Sweep | None = None

    # Not part of the file: where it came from (relative paths resolve against its directory) and
    # the line of every value, for errors found after loading (validate_regions).
    _source: Path | None = PrivateAttr(default=None)
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def matrix_path(self) -> Path | None:
        """The latency matrix file, resolved against the scenario file's directory."""
        return _resolve(self.network.latency.matrix, self._source)

    @property
    def graph_path(self) -> Path | None:
        """The network graph file, resolved against the scenario file's directory."""
        return _resolve(self.network.latency.graph, self._source)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Scenario:
        items: list[tuple[Loc, str]] = []
        if self.nodes.join_over > self.warmup:
            items.append(
                (("nodes", "join_over"), f"{self.nodes.join_over:g} exceeds warmup ({self.warmup:g})")
            )
        wl = self.workload
        for name in self.criteria or {}:
            if name in ("lookup_p99", "lookup_success") and wl.lookup <= 0 and not wl.user_lookups():
                items.append((("criteria", name), "needs lookups (workload.lookup, get, find_peer or "
                              "find_providers > 0)"))
            elif name == "put_get_success" and (wl.put <= 0 or wl.get <= 0):
                items.append(
                    (("criteria", name), "needs puts and gets (workload.put > 0 and workload.get > 0)")
                )
            elif name in PUBSUB_CRITERIA and self.pubsub is None:
                items.append((("criteria", name), "needs a pubsub section"))
            elif name in MCP_CRITERIA and (self.mcp is None or self.mcp.rate <= 0):
                items.append((("criteria", name), "needs MCP calls (an mcp section with rate > 0)"))
            elif name == "scaling" and (self.sweep is None or len(self.sweep.nodes or []) < 2):
                items.append(
                    (("criteria", name), "needs a sweep over at least two node counts (sweep.nodes)")
                )
        if self.sweep is not None and self.sweep.scoring is not None and self.pubsub is None:
            items.append((("sweep", "scoring"), "needs a pubsub section"))
        if 0 < self.security.siblings < self.dht.k:
            items.append((("security", "siblings"), f"{self.security.siblings} is below dht.k ({self.dht.k}): "
                          "a sibling list holds at least k peers (0: none)"))
        items += self._adversary_problems()
        source = (info.context or {}).get("source")
        for key in ("matrix", "graph"):
            file = _resolve(getattr(self.network.latency, key), source)
            if file is not None and not file.is_file():
                items.append((("network", "latency", key), f"file not found: {file}"))
        raise_if(items)
        return self

    def _adversary_problems(self) -> list[tuple[Loc, str]]:
        items: list[tuple[Loc, str]] = []
        sweep = self.sweep
        for i, d in enumerate(sweep.disjoint_paths or [] if sweep is not None else []):
            if d > self.dht.alpha:
                items.append((("sweep", "disjoint_paths", i), f"{d} exceeds dht.alpha ({self.dht.alpha})"))
        shares = [] if self.adversary is None else [(("adversary", "share"), self.adversary.share)]
        if sweep is not None and sweep.malicious is not None:
            if self.adversary is None:
                items.append((("sweep", "malicious"), "needs an adversary section"))
            shares = [(("sweep", "malicious", i), share) for i, share in enumerate(sweep.malicious)]
        honest = self.nodes.count - self.nodes.bootstrap  # bootstrap nodes are never malicious
        for loc, share in shares:
            if round(share * self.nodes.count) > honest:
                items.append((loc, f"{share:g} of {self.nodes.count} nodes is more than the {honest} that are "
                                   "not bootstrap nodes"))
        return items

    def error(self, items: Iterable[tuple[Loc, str]]) -> ScenarioError:
        """A ScenarioError for problems found after loading, each at its field's line in the file."""
        label = source_label(self._source)
        return ScenarioError(problem(label, self._lines, set(), loc, loc, msg) for loc, msg in items)

    def with_nodes(self, n: int) -> Scenario:
        """A copy with nodes.count = n (bootstrap clamped to n), as `simulate --nodes N` asks."""
        data = self.model_dump()
        data["nodes"]["count"] = n
        if isinstance(n, int) and not isinstance(n, bool):
            data["nodes"]["bootstrap"] = min(self.nodes.bootstrap, max(n, 1))
        return build(
            data,
            source=self._source,
            label=source_label(self._source),
            lines=self._lines,
            overridden={("nodes", "count")},
        )

    def _with(self, values: dict[Loc, Any]) -> Scenario:
        """A copy with the fields at ``values``' paths set (each named as overridden in later errors)."""
        data = self.model_dump()
        for loc, value in values.items():
            section = data
            for key in loc[:-1]:
                section = section[key]
            section[loc[-1]] = value
        return build(data, source=self._source, label=source_label(self._source), lines=self._lines,
                     overridden=set(values))

    def with_scoring(self, flag: bool) -> Scenario:
        """A copy with pubsub.scoring = flag (the scenario must have a pubsub section)."""
        if self.pubsub is None:
            raise ValueError("with_scoring needs a scenario with a pubsub section")
        return self._with({("pubsub", "scoring"): flag})

    def with_nat(self, flag: bool) -> Scenario:
        """A copy with NATs as the scenario says (True), or the same network without any (False)."""
        if flag:
            return self
        return self._with({("nodes", "nat"): {"none": 1.0}, ("nat", "cgnat", "share"): 0.0})

    def with_values(self, values: Mapping[str, Any]) -> Scenario:
        """A copy with each dotted path set to its value ({"dht.alpha": 8}), validated as a file is."""
        data = self.model_dump()
        touched = apply_overrides(data, values)
        return build(data, source=self._source, label=source_label(self._source), lines=self._lines,
                     overridden=touched)

    def sweep_points(self) -> list[tuple[str, Scenario]]:
        """(directory name, scenario) per sweep run, in experiment.scenario.grid.expand's order; [] without a
        sweep. The directory is n{N}, with -scoring-on / -scoring-off when scoring is swept, -nat-on / -nat-off
        when NATs are, -m{percent} for the malicious share, -d{paths} for the disjoint paths, -p{bits} for the
        static puzzle, -<path>-<value> per grid field and -seed<S> when seeds are."""
        return [(run.dir, run.scenario) for run in expand(self)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for the run manifest); fields in declaration order, maps sorted."""
        return _sorted_maps(self.model_dump(mode="json"))


def _sorted_maps(data: dict[str, Any]) -> dict[str, Any]:
    """Sort the maps whose keys the user chose (their order carries no meaning)."""
    nodes = data["nodes"]
    for key in ("regions", "nat", "address_families", "transition"):
        if nodes[key] is not None:
            nodes[key] = dict(sorted(nodes[key].items()))
    if data["criteria"] is not None:
        data["criteria"] = dict(sorted(data["criteria"].items()))
    return data


def _resolve(path: Path | None, source: Path | str | None) -> Path | None:
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.is_absolute() or source is None:
        return path
    return Path(source).parent / path


# --------------------------------------------------------------------------------------------
# Validation


def build(
    data: Any,
    *,
    source: Path | None,
    label: str,
    lines: Mapping[Loc, int] | Lines,
    overridden: set[Loc],
    known_regions: Iterable[str] | None = None,
    early: list[Problem] | None = None,
) -> Scenario:
    """Validate `data` into a Scenario; raises ScenarioError with every problem (`early` ones first found
    by the YAML reader), located with `lines` (values in `overridden` were set by an override)."""
    problems = list(early or [])
    try:
        scenario = Scenario.model_validate(data, context={"source": source})
    except ValidationError as exc:
        # a value the YAML reader already refused (an unsupported tag, ...) is not reported twice
        refused = {p.path for p in problems}
        problems += [
            p
            for p in validation_problems(exc, Scenario, data, label, lines, overridden)
            if not any(p.path == r or p.path.startswith((r + ".", r + "[")) for r in refused)
        ]
        scenario = None
    if known_regions is not None and isinstance(data, dict):
        nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
        network = data.get("network") if isinstance(data.get("network"), dict) else {}
        latency = network.get("latency") if isinstance(network.get("latency"), dict) else {}
        for loc, msg in _region_problems(
            nodes.get("regions"), latency.get("model", "regions"), known_regions
        ):
            problems.append(problem(label, lines, overridden, loc, loc, msg))
    if problems or scenario is None:
        raise ScenarioError(problems)
    scenario._source = source
    flat = lines if not isinstance(lines, Lines) else {p: lines.line(p) for p in {*lines.key, *lines.value}}
    scenario._lines = {p: ln for p, ln in flat.items() if ln is not None}
    return scenario


# --------------------------------------------------------------------------------------------
# Regions


def _region_problems(regions: Any, model: Any, known: Iterable[str]) -> list[tuple[Loc, str]]:
    # a matrix's or a graph's names are known once its file is read (validate_regions)
    if model in ("matrix", "graph") or not isinstance(regions, dict):
        return []
    names = list(known)
    return [
        (("nodes", "regions", name), f"{quote(name)} is not one of {_listed(names)}")
        for name in regions
        if name not in names
    ]


def _listed(names: list[str], most: int = 12) -> str:
    shown = ", ".join(quote(n, 30) if not n.replace("-", "").replace("_", "").isalnum() else n for n in names[:most])
    return shown + (f" (and {len(names) - most} more)" if len(names) > most else "")


def validate_regions(scenario: Scenario, known: Iterable[str]) -> None:
    """Check that every region in nodes.regions exists in the latency model (`known` names).

    The simulator calls this with the names of the model it built (the CSV header for a matrix).
    Raises ScenarioError naming the lines of the unknown regions.
    """
    names = list(known)
    items = _region_problems(scenario.nodes.regions, "regions", names)
    if items:
        raise scenario.error(items)
