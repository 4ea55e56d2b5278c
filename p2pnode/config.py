"""Protocol parameters with the spec's defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KadConfig:
    k: int = 20                      # bucket size and replication factor
    alpha: int = 5                   # requests in flight per lookup
    disjoint_paths: int = 1          # S/Kademlia d: lookups run over d paths that share no peer
    request_timeout: float = 2.0     # seconds before an unanswered request counts as failed
    # A lookup stops waiting for a request unanswered this long (Kademlia, section 2.3: "nodes that fail
    # to respond quickly are removed from consideration until and unless they do respond"); a crashed
    # peer then costs a lookup this, not the whole timeout. Longer than any RTT the models produce.
    slow_after: float = 1.0
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

    def __post_init__(self) -> None:
        if self.k < 1 or self.alpha < 1:
            raise ValueError("k and alpha must be at least 1")
        if not 1 <= self.disjoint_paths <= self.alpha:
            raise ValueError("disjoint_paths must be between 1 and alpha")
        if not 0 < self.slow_after <= self.request_timeout:
            raise ValueError("slow_after must be positive and no longer than request_timeout")
        if self.republish_interval >= self.record_ttl:
            raise ValueError("republish_interval must be shorter than record_ttl")
