"""What a Kademlia node reports back when an operation ends (past tense, frozen)."""

from __future__ import annotations

from dataclasses import dataclass

from p2pnode.identity import PeerId
from p2pnode.kad.messages import DHTRecord, PeerInfo


@dataclass(frozen=True, slots=True)
class LookupFinished:
    key: bytes
    peers: tuple[PeerInfo, ...]   # the k closest peers that answered, closest first
    hops: int                     # referral rounds that led to the closest of them
    requests: int                 # requests sent
    started: float
    finished: float


@dataclass(frozen=True, slots=True)
class PutFinished:
    key: bytes
    version: int                  # the record version stored (0 for provider announcements)
    replicas: int                 # peers that acknowledged storing the record (or were told, for providers)
    requests: int
    started: float
    finished: float


@dataclass(frozen=True, slots=True)
class GetFinished:
    key: bytes
    record: DHTRecord | None      # the newest valid record found, or None
    hops: int
    requests: int
    started: float
    finished: float


@dataclass(frozen=True, slots=True)
class ProvidersFound:
    key: bytes
    providers: tuple[PeerInfo, ...]
    requests: int
    started: float
    finished: float
    hops: int = 0


@dataclass(frozen=True, slots=True)
class PeerFound:
    peer_id: PeerId
    peer: PeerInfo | None         # the peer with the addresses a referral gave (or its own answer), or None
    hops: int
    requests: int
    started: float
    finished: float
