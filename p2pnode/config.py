"""Protocol parameters with the spec's defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KadConfig:
    k: int = 20                      # bucket size and replication factor
    alpha: int = 5                   # requests in flight per lookup
    disjoint_paths: int = 1          # S/Kademlia d: lookups run over d paths that share no peer
    # A FIND_NODE lookup (each path) ends once its k closest known peers have all been asked and the beta
    # closest of them answered (beta above k counts as k: waiting for all); later answers refresh the
    # routing table. Lookups that gather values or providers wait for all k unless they have enough.
    beta: int = 3
    followup: bool = False           # go-libp2p-kad-dht's follow-up of the k closest (p2pnode/kad/query.py)
    request_timeout: float = 2.0     # seconds before an unanswered request counts as failed
    # A lookup stops waiting for a request unanswered this long (Kademlia, section 2.3: "nodes that fail
    # to respond quickly are removed from consideration until and unless they do respond"); a crashed
    # peer then costs a lookup this, not the whole timeout. Longer than any RTT the models produce.
    slow_after: float = 1.0
    # Adaptive waits (p2pnode/kad/rtt.py): a lookup stops waiting for a request after the peer's RTO
    # (SRTT + 4 RTTVAR, RFC 6298), at least ``min_wait`` and at most ``slow_after``; a request to a measured
    # peer fails after ``timeout_rtos`` RTOs (at least slow_after, at most request_timeout). Off: the fixed
    # slow_after and request_timeout, as go-libp2p-kad-dht waits.
    adaptive: bool = True
    min_wait: float = 0.1
    timeout_rtos: float = 3.0
    rtt_peers: int = 256             # peers whose RTT estimate a node keeps (the most recently measured)
    proximity: bool = True           # candidates of equal rank are asked lowest estimated RTT first
    skip_failed_for: float = 60.0    # lookups drop referrals to a peer this long after a request to it failed
    record_ttl: float = 3600.0       # default lifetime of a stored record
    provider_ttl: float = 86400.0
    republish_interval: float = 1800.0   # originators re-put their records this often
    refresh_interval: float = 600.0      # buckets with no lookup for this long are refreshed
    expiry_sweep_interval: float = 60.0  # how often expired records are dropped
    # A full bucket's oldest peer is pinged before a newcomer may replace it only if it has been silent
    # this long (BEP 5's "questionable" node: 15 minutes). Checking fresher peers would double a busy
    # node's traffic; peers that fail a request are dropped at once anyway.
    questionable_after: float = 900.0
    max_record_size: int = 64 * 1024
    # S/Kademlia (p2pnode.security.puzzles): the static and dynamic node-ID puzzles' difficulties in bits
    # (0: off, for peers that solve none); a peer whose ID fails them is kept out of the routing table and
    # out of lookups.
    puzzle_static: int = 0
    puzzle_dynamic: int = 0
    # S/Kademlia's sibling list: the s >= k peers closest to our own ID are kept even when their bucket is
    # full, and a new sibling is handed the records it is now among the k closest to (replica placement).
    # 0: no sibling list.
    siblings: int = 0
    # Proof of work for DHT writes (p2pnode.security.pow): a record's stamp must meet this many bits before
    # it is stored; our own puts mint one. pow_hash_seconds is the time one minting hash is charged in
    # modelled time (the simulator sets it; on a real node minting takes its real time, so 0).
    pow_difficulty: int = 0
    pow_hash_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.k < 1 or self.alpha < 1 or self.beta < 1:
            raise ValueError("k, alpha and beta must be at least 1")
        if self.siblings and self.siblings < self.k:
            raise ValueError("siblings must be 0 (none) or at least k")
        if not (0 <= self.puzzle_static <= 64 and 0 <= self.puzzle_dynamic <= 64):
            raise ValueError("puzzle difficulties must be between 0 and 64 bits")
        if not 0 <= self.pow_difficulty <= 64 or self.pow_hash_seconds < 0:
            raise ValueError("pow_difficulty must be between 0 and 64 bits and pow_hash_seconds not negative")
        if not 1 <= self.disjoint_paths <= self.alpha:
            raise ValueError("disjoint_paths must be between 1 and alpha")
        if not 0 < self.slow_after <= self.request_timeout:
            raise ValueError("slow_after must be positive and no longer than request_timeout")
        if not 0 < self.min_wait <= self.slow_after:
            raise ValueError("min_wait must be positive and no longer than slow_after")
        if self.timeout_rtos < 1 or self.rtt_peers < 1 or self.skip_failed_for < 0:
            raise ValueError("timeout_rtos and rtt_peers must be at least 1, skip_failed_for not negative")
        if self.republish_interval >= self.record_ttl:
            raise ValueError("republish_interval must be shorter than record_ttl")


# Presets: settings that make the node behave like another implementation, for comparisons on the same network.
# go-libp2p-kad-dht (internal/config: Concurrency 10, Resiliency 3, BucketSize 20; runLookupWithFollowup; a
# request waits internal/net's dhtReadMessageTimeout of 10 s, no RTT estimates, no proximity, no memory of
# failed peers beyond removing them from the routing table). Its one retry after a read timeout (another 10 s)
# is left out: the preset is the fastest go's timers allow.
KAD_PRESETS: dict[str, dict[str, object]] = {
    "p2pnode": {},
    "go-libp2p-kad-dht": {"alpha": 10, "beta": 3, "followup": True, "adaptive": False, "proximity": False,
                          "skip_failed_for": 0.0, "slow_after": 10.0, "request_timeout": 10.0},
}


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """GossipSub v1.0/v1.1 router parameters; defaults are the specs' (gossipsub-v1.0.md, -v1.1.md)."""

    d: int = 6                        # desired mesh degree
    d_lo: int = 4                     # graft below this
    d_hi: int = 12                    # prune above this
    d_lazy: int = 6                   # peers to gossip to per heartbeat (at least)
    d_score: int = 4                  # peers kept by score when the mesh is pruned
    d_out: int = 2                    # outbound connections kept in the mesh
    heartbeat_interval: float = 1.0
    fanout_ttl: float = 60.0          # fanout state of a topic we publish to but do not join
    history_length: int = 5           # heartbeats a message stays in the cache (for IWANT)
    history_gossip: int = 3           # heartbeats of the cache announced in IHAVE
    seen_ttl: float = 120.0           # how long a message ID is remembered as seen
    flood_publish: bool = True        # own messages go to every peer above the publish threshold
    prune_peers: int = 16             # peers offered in a PRUNE (peer exchange)
    prune_backoff: float = 60.0       # no re-GRAFT to/from a pruned peer for this long
    unsubscribe_backoff: float = 10.0
    gossip_factor: float = 0.25       # gossip to max(d_lazy, gossip_factor * eligible peers)
    opportunistic_graft_ticks: int = 60
    opportunistic_graft_peers: int = 2
    gossip_retransmission: int = 3    # IWANTs for one message from one peer served at most this often
    max_ihave_length: int = 5000      # message IDs in the IHAVEs to one peer per heartbeat
    max_ihave_messages: int = 10      # IHAVEs accepted from one peer per heartbeat
    iwant_followup_time: float = 3.0  # an IHAVE'd message we asked for must arrive within this
    graft_flood_threshold: float = 10.0   # a GRAFT this soon after our PRUNE costs an extra penalty
    max_message_size: int = 1 << 20   # largest message data published or accepted (the spec's 1 MiB)

    def __post_init__(self) -> None:
        if not 1 <= self.d_lo <= self.d <= self.d_hi:
            raise ValueError("GossipSub degrees must satisfy 1 <= d_lo <= d <= d_hi")
        if not 0 <= self.d_out < self.d_lo or self.d_out > self.d // 2:
            raise ValueError("d_out must be below d_lo and at most d/2")
        if not 0 <= self.d_score <= self.d:
            raise ValueError("d_score must be between 0 and d")
        if not 1 <= self.history_gossip <= self.history_length:
            raise ValueError("history_gossip must be between 1 and history_length")
        if self.heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive")
        if self.max_message_size < 1:
            raise ValueError("max_message_size must be positive")


_MESH_DELIVERIES_DECAY = 0.9
_MESH_DELIVERIES_ACTIVATION = 10.0


@dataclass(frozen=True, slots=True)
class TopicScoreParams:
    """Per-topic peer-score parameters (P1-P4 of gossipsub v1.1). The spec gives no defaults: these are
    ours, sized by ``for_rate`` from the topic's expected message rate as deployments (e.g. Ethereum's
    consensus clients) do, so that an honest mesh peer scores a little above zero and a mesh peer that
    forwards nothing falls to -40."""

    topic_weight: float = 1.0
    time_in_mesh_weight: float = 5.0 / 3600  # P1: +5 after an hour in the mesh
    time_in_mesh_quantum: float = 1.0
    time_in_mesh_cap: float = 3600.0
    first_message_deliveries_weight: float = 0.5  # P2
    first_message_deliveries_decay: float = 0.9
    first_message_deliveries_cap: float = 10.0
    mesh_message_deliveries_weight: float = -40.0 / 0.5**2  # P3 (negative), full deficit -> -40
    mesh_message_deliveries_decay: float = _MESH_DELIVERIES_DECAY
    mesh_message_deliveries_threshold: float = 0.5
    mesh_message_deliveries_cap: float = 40.0
    mesh_message_deliveries_activation: float = _MESH_DELIVERIES_ACTIVATION  # seconds in the mesh before P3
    mesh_message_deliveries_window: float = 2.0       # a copy this soon after the first still counts
    mesh_failure_penalty_weight: float = -40.0 / 0.5**2  # P3b
    mesh_failure_penalty_decay: float = 0.9
    invalid_message_deliveries_weight: float = -20.0  # P4: two invalid messages -> -80 (graylisted)
    invalid_message_deliveries_decay: float = 0.99

    def __post_init__(self) -> None:
        # The signs the spec prescribes; the router's shortcut for peers with no penalties relies on them.
        if min(self.time_in_mesh_weight, self.first_message_deliveries_weight, self.topic_weight) < 0:
            raise ValueError("topic_weight and the P1 and P2 weights must not be negative")
        if max(self.mesh_message_deliveries_weight, self.mesh_failure_penalty_weight,
               self.invalid_message_deliveries_weight) > 0:
            raise ValueError("the P3, P3b and P4 weights must not be positive")

    @classmethod
    def for_rate(cls, messages_per_second: float) -> TopicScoreParams:
        """P3 sized for a topic carrying ``messages_per_second``: the decayed count of a mesh peer that
        delivers every message settles near rate / (1 - decay). A mesh link carries each message one way
        only, so an honest peer downstream of us delivers far fewer; the threshold is a twentieth of
        that steady count (a peer must bring about one message in twenty), the cap four times it."""
        steady = max(messages_per_second, 1e-3) / (1.0 - _MESH_DELIVERIES_DECAY)
        threshold = 0.05 * steady
        # Below a few messages per activation window a quiet stretch looks like a peer that drops
        # everything: P3 would prune honest peers, so it is switched off (weight 0), as deployments do.
        if messages_per_second * _MESH_DELIVERIES_ACTIVATION < 5:
            weight = 0.0
        else:
            weight = -40.0 / threshold**2
        return cls(mesh_message_deliveries_threshold=threshold, mesh_message_deliveries_cap=4 * steady,
                   mesh_message_deliveries_weight=weight, mesh_failure_penalty_weight=weight)


@dataclass(frozen=True, slots=True)
class ScoreConfig:
    """Peer scoring (gossipsub v1.1): global parameters (P5-P7), thresholds, and per-topic parameters
    (``topics``; a topic not listed uses ``default_topic``). A topic without parameters (not listed, and no
    ``default_topic``) does not count towards a peer's score, as gossipsub v1.1 says: only P5-P7 apply there,
    so a quiet topic nobody sized parameters for cannot get honest mesh peers pruned."""

    enabled: bool = True
    topics: tuple[tuple[str, TopicScoreParams], ...] = ()
    default_topic: TopicScoreParams | None = None
    topic_score_cap: float = 0.0          # 0: no cap on the positive topic contribution
    app_specific_weight: float = 1.0       # P5
    ip_colocation_factor_weight: float = -10.0   # P6
    ip_colocation_factor_threshold: float = 3.0
    behaviour_penalty_weight: float = -10.0      # P7
    behaviour_penalty_threshold: float = 0.0
    behaviour_penalty_decay: float = 0.99
    decay_interval: float = 1.0
    decay_to_zero: float = 0.01
    retain_score: float = 600.0            # a disconnected peer's score is kept this long
    gossip_threshold: float = -10.0        # below: no gossip to or from the peer
    publish_threshold: float = -50.0       # below: not flood-published to
    graylist_threshold: float = -80.0      # below: every RPC from the peer is ignored
    accept_px_threshold: float = 1.0       # PX only from peers scoring above this
    opportunistic_graft_threshold: float = 1.0  # graft better peers when the mesh median is below this

    def __post_init__(self) -> None:
        if not self.graylist_threshold < self.publish_threshold <= self.gossip_threshold <= 0:
            raise ValueError("score thresholds must satisfy graylist < publish <= gossip <= 0")
        if self.accept_px_threshold < 0 or self.opportunistic_graft_threshold < 0:
            raise ValueError("accept_px and opportunistic_graft thresholds must not be negative")
        if self.ip_colocation_factor_weight > 0 or self.behaviour_penalty_weight > 0:
            raise ValueError("the P6 and P7 weights must not be positive")

    def topic(self, name: str) -> TopicScoreParams | None:
        for topic, params in self.topics:
            if topic == name:
                return params
        return self.default_topic


@dataclass(frozen=True, slots=True)
class NatConfig:
    """NAT traversal (docs/nat.md): AutoNAT, relay reservations as a client, the relay service, DCUtR.

    Relay service defaults are go-libp2p's (``relay/resources.go``): a reservation lasts an hour, a relayed
    connection two minutes or 128 KiB each way, 128 reservations, 16 circuits per peer."""

    # client: how many relays a private node keeps reservations at, and when it renews one
    relays: int = 2
    reserve_timeout: float = 10.0
    refresh_before: float = 60.0       # renew a reservation this long before it expires (at most half its life)
    relay_backoff: float = 60.0        # a relay that refused or failed is not asked again for this long
    # the relay service (on only for a public node with ``relay_service``)
    relay_service: bool = False
    reservation_ttl: float = 3600.0
    max_reservations: int = 128
    max_reservations_per_ip: int = 8
    max_circuits: int = 16             # per peer, as initiator or target
    max_circuits_total: int = 1024     # the relay's capacity for circuits at once
    circuit_duration: int = 120        # seconds (Limit.duration; 0: none)
    circuit_data: int = 1 << 17        # bytes each way (Limit.data; 0: none)
    # AutoNAT (v2 client, v1 and v2 server): confidence needed to change the verdict, how often to re-check;
    # ``reachability`` "public" or "private" skips the probing and takes that verdict (go-libp2p's
    # ForceReachability: for a node whose operator knows)
    reachability: str = "auto"
    autonat_server: bool = True
    autonat_confidence: int = 3        # this many agreeing answers (of the last 2n-1) settle an address
    autonat_interval: float = 300.0    # re-check this often once settled
    autonat_retry: float = 15.0        # ... and this often while unsettled
    autonat_timeout: float = 15.0
    autonat_dial_data: int = 30_000    # bytes the server asks for before dialling an address not of the requester's IP
    # DCUtR
    hole_punching: bool = True
    hole_punch_attempts: int = 3       # the spec: the inbound peer tries three times
    hole_punch_timeout: float = 5.0    # per attempt, after the synchronised dial

    def __post_init__(self) -> None:
        if self.relays < 0 or self.max_reservations < 0 or self.max_circuits < 0 or self.max_circuits_total < 0:
            raise ValueError("relay counts must not be negative")
        if self.reservation_ttl <= 0 or self.autonat_interval <= 0 or self.autonat_retry <= 0:
            raise ValueError("reservation_ttl and the AutoNAT intervals must be positive")
        if self.reachability not in ("auto", "public", "private"):
            raise ValueError("reachability must be auto, public or private")
        if self.autonat_confidence < 1 or self.hole_punch_attempts < 1:
            raise ValueError("autonat_confidence and hole_punch_attempts must be at least 1")
