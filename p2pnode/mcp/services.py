"""MCP service registration and discovery through the DHT (sans-IO).

Registration: a node stores its **descriptor** (JSON: the tools it offers, its capabilities, models,
addresses, TTL) as a signed DHT record under ``mcp:service:{service_name}:{peer_id}``, and announces
itself as a **provider** of the index key ``mcp:service:{service_name}``. The record is the DHT's signed
record (Ed25519 over key, value, publisher, TTL and version), and a descriptor counts only if its
publisher is the peer its key names, so no node can describe another. Both are refreshed at half the
descriptor's TTL while the node runs.

Why two records: a Kademlia record lives at one key, so "all descriptors of a service" cannot be one key's
value without one writer per key; a provider record is the DHT's own "who has this" list, and every
provider adds itself. Discovery asks the index key for its providers, fetches each provider's descriptor
(its existence is the liveness check: a descriptor expires one TTL after its node stopped refreshing,
while provider entries live for ``provider_ttl``), filters by capability and sorts by XOR distance from
the asking node, closest first, as the spec says. Results are cached for half the TTL, at most a
minute (``cache_ttl``), and refreshed in the background when a caller uses a list older than half
that; a provider that fails a request leaves the cache at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from p2pnode.identity import IdentityError, PeerId, kad_key
from p2pnode.interface import Runtime, Timer
from p2pnode.kad.events import GetFinished, ProvidersFound
from p2pnode.kad.messages import PeerInfo
from p2pnode.kad.node import KademliaNode

DESCRIPTOR_VERSION = 1


def index_key(service: str) -> bytes:
    return f"mcp:service:{service}".encode()


def descriptor_key(service: str, peer: PeerId) -> bytes:
    return f"mcp:service:{service}:{peer.to_base58()}".encode()


@dataclass(frozen=True, slots=True)
class Provider:
    peer: PeerInfo
    descriptor: dict[str, Any]
    distance: int  # XOR distance between the asking node's and the provider's Kademlia keys

    def to_json(self) -> dict[str, Any]:
        return {"peer_id": self.peer.peer_id.to_base58(), "distance_bits": self.distance.bit_length(),
                "tools": self.descriptor.get("tools", []), "capabilities": self.descriptor.get("capabilities", []),
                "models": self.descriptor.get("models", []), "ttl": self.descriptor.get("ttl", 0)}


@dataclass(frozen=True, slots=True)
class Discovery:
    service: str
    capability: str | None
    providers: tuple[Provider, ...]
    candidates: int  # provider entries the index key had
    started: float
    finished: float
    cached: bool = False


def parse_descriptor(service: str, publisher: PeerId, value: bytes) -> dict[str, Any] | None:
    """The descriptor in a record's value if it is one for ``service`` by the peer its key names."""
    try:
        descriptor = json.loads(value)
    except ValueError:
        return None
    if not isinstance(descriptor, dict) or descriptor.get("service") != service \
            or descriptor.get("peer_id") != publisher.to_base58() \
            or not isinstance(descriptor.get("capabilities"), list):
        return None
    return descriptor


class ServiceDirectory:
    def __init__(self, dht: KademliaNode, runtime: Runtime, service: str, ttl: float,
                 describe: Callable[[], dict[str, Any]], cache_ttl: float | None = None):
        self.dht = dht
        self.runtime = runtime
        self.service = service
        self.ttl = ttl
        self.describe = describe
        # providers found stay usable for half a descriptor's life (at most a minute); one that fails a
        # request is dropped from the cache at once (forget)
        self.cache_ttl = cache_ttl if cache_ttl is not None else min(60.0, ttl / 2)
        self.registrations = 0
        self._waited = 0
        self._timer: Timer | None = None
        self._cache: dict[tuple[str, str | None], Discovery] = {}
        self._refreshing: set[tuple[str, str | None]] = set()

    # ---- registration ----------------------------------------------------------------------------

    def start(self) -> None:
        """Register once the DHT has bootstrapped (a record put before has no peers to go to)."""
        if self.dht.bootstrapped or self._waited >= 30:
            self.register()
        else:
            self._waited += 1
            self._timer = self.runtime.call_later(1.0, self.start)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def descriptor(self) -> dict[str, Any]:
        return {"v": DESCRIPTOR_VERSION, "service": self.service, "peer_id": self.dht.keypair.peer_id.to_base58(),
                "ttl": self.ttl, **self.describe()}

    def register(self) -> None:
        """Store the descriptor and the provider entry now, and again at half the TTL."""
        self._timer = self.runtime.call_later(self.ttl / 2, self.register)
        value = json.dumps(self.descriptor(), separators=(",", ":"), sort_keys=True).encode()
        self.dht.put_value(descriptor_key(self.service, self.dht.keypair.peer_id), value, None, self.ttl)
        self.dht.provide(index_key(self.service))
        self.registrations += 1

    # ---- discovery -------------------------------------------------------------------------------

    def discover(self, on_done: Callable[[Discovery], None], capability: str | None = None,
                 service: str | None = None, limit: int = 20, fresh: bool = False) -> None:
        """Other nodes offering ``service`` (with ``capability``), closest first."""
        service = service or self.service
        now = self.runtime.now()
        key = (service, capability)
        cached = self._cache.get(key)
        if cached is not None and not fresh and now - cached.finished < self.cache_ttl:
            on_done(Discovery(service, capability, cached.providers[:limit], cached.candidates, now, now,
                              cached=True))
            if now - cached.finished > self.cache_ttl / 2 and key not in self._refreshing:
                # stale-while-revalidate: the next caller finds a fresh list without waiting for it
                self._refreshing.add(key)
                self.discover(lambda _: self._refreshing.discard(key), capability, service, limit, fresh=True)
            return
        own = self.dht.keypair.peer_id
        own_key = kad_key(own.raw)

        def providers_found(found: ProvidersFound) -> None:
            candidates = [p for p in found.providers if p.peer_id != own]
            if not candidates:
                finish([], found.providers)
                return
            pending = len(candidates)
            providers: list[Provider] = []

            def fetched(peer: PeerInfo, result: GetFinished) -> None:
                nonlocal pending
                record = result.record
                if record is not None and record.publisher == peer.peer_id:
                    descriptor = parse_descriptor(service, peer.peer_id, record.value)
                    if descriptor is not None and (capability is None or capability in descriptor["capabilities"]):
                        providers.append(Provider(_with_addrs(peer, descriptor), descriptor,
                                                  own_key ^ kad_key(peer.peer_id.raw)))
                pending -= 1
                if pending == 0:
                    finish(providers, found.providers)

            for peer in candidates:
                self.dht.get_value(descriptor_key(service, peer.peer_id), lambda r, p=peer: fetched(p, r))

        def finish(providers: list[Provider], entries: tuple[PeerInfo, ...]) -> None:
            providers.sort(key=lambda p: p.distance)
            result = Discovery(service, capability, tuple(providers), len(entries), now, self.runtime.now())
            self._cache[(service, capability)] = result
            on_done(Discovery(service, capability, result.providers[:limit], result.candidates, result.started,
                              result.finished))

        self.dht.find_providers(index_key(service), providers_found, count=max(limit * 2, 20))

    def forget(self, peer: PeerId) -> None:
        """Drop ``peer`` from cached discoveries (it failed a request)."""
        for key, found in list(self._cache.items()):
            self._cache[key] = Discovery(found.service, found.capability,
                                         tuple(p for p in found.providers if p.peer.peer_id != peer),
                                         found.candidates, found.started, found.finished)


def _with_addrs(peer: PeerInfo, descriptor: dict[str, Any]) -> PeerInfo:
    """The provider with the addresses its descriptor lists, when the provider entry carried none."""
    if peer.addrs:
        return peer
    from multiaddr import Multiaddr

    addrs = []
    for text in descriptor.get("addrs", [])[:8]:
        try:
            addrs.append(Multiaddr(text).to_bytes())
        except Exception:
            continue
    return PeerInfo(peer.peer_id, tuple(addrs))


def peer_from_text(text: str) -> PeerId:
    try:
        return PeerId.from_base58(text)
    except IdentityError as exc:
        raise ValueError(f"{text!r} is not a peer ID: {exc}") from None
