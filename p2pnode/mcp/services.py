"""MCP service registration and discovery through the DHT (sans-IO).

Registration: a node stores its **descriptor** (JSON: the tools it offers, its capabilities, models,
addresses, TTL) as a signed DHT record under ``mcp:service:{service_name}:{peer_id}``, and announces
itself as a **provider** of the index key ``mcp:service:{service_name}``. The record is the DHT's signed
record (Ed25519 over key, value, publisher, TTL and version), and a descriptor counts only if its
publisher is the peer its key names, so no node can describe another. Both are refreshed at half the
descriptor's TTL while the node runs.

Why two records: a Kademlia record lives at one key, so "all descriptors of a service" cannot be one key's
value without one writer per key; a provider record is the DHT's own "who has this" list, and every
provider adds itself. Discovery asks the index key for its providers, sorts them by XOR distance from the
asking node (closest first, as the spec says) and fetches each one's descriptor from the provider itself:
a provider stores its own signed record, so this is one round trip instead of a DHT lookup per provider,
and an answer is the liveness check (one that refuses or cannot be dialled is looked up in the DHT, where
its descriptor expires one TTL after its node stopped refreshing, while provider entries live for
``provider_ttl``). Capabilities are filtered here, from the descriptors, so one list per service serves
every capability. A caller waits only until the closest candidates are settled (``limit`` of them with its
capability and none closer unknown), not for the slowest.

Lists are kept per service for ``cache_ttl`` (half the descriptor TTL, at most a minute) and, while callers
use them, refreshed every half ``cache_ttl`` in the background, so a caller waits for a discovery only when
the node has none yet; a node's own service is discovered as soon as it has registered. Concurrent callers
share one discovery. A provider that fails a request leaves the list at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from p2pnode.identity import IdentityError, PeerId, kad_key
from p2pnode.interface import Runtime, Timer
from p2pnode.kad.events import ProvidersFound
from p2pnode.kad.messages import DHTRecord, GetValue, GetValueResponse, PeerInfo
from p2pnode.kad.namespaces import parse_mcp_descriptor
from p2pnode.kad.node import KademliaNode
from p2pnode.kad.records import record_is_valid

DESCRIPTOR_VERSION = 1
INDEX_COUNT = 40     # provider entries a discovery asks the index key for
WATCH_IDLE = 600.0   # a service's list is kept fresh until nobody has asked for it for this long


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
    """The descriptor in a record's value if it is one for ``service`` by the peer its key names (the rule
    the DHT's validator for this namespace applies, ``p2pnode.kad.namespaces``)."""
    return parse_mcp_descriptor(service, publisher, value)


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
        self._lists: dict[str, Discovery] = {}      # per service: every provider found, closest first
        self._fetching: dict[str, _Fetch] = {}      # per service: the discovery under way
        self._used: dict[str, float] = {}           # per service: when a caller last asked
        self._watching: dict[str, Timer] = {}       # per service: its next refresh

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
        for timer in self._watching.values():
            timer.cancel()
        self._watching.clear()

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
        if self.registrations == 1:
            # the node's own service: its list is ready before a local agent's first call needs it
            self.discover(lambda found: None)

    # ---- discovery -------------------------------------------------------------------------------

    def discover(self, on_done: Callable[[Discovery], None], capability: str | None = None,
                 service: str | None = None, limit: int = 20, fresh: bool = False) -> None:
        """Other nodes offering ``service`` (with ``capability``), closest first."""
        service = service or self.service
        now = self.runtime.now()
        self._used[service] = now
        self._watch(service)
        listing = self._lists.get(service)
        if listing is not None and not fresh and now - listing.finished < self.cache_ttl:
            on_done(_view(listing, capability, limit, now, now, cached=True))
            if now - listing.finished > self.cache_ttl / 2:
                self._fetch(service)  # stale-while-revalidate: the next caller finds a fresh list
            return
        self._fetch(service).wait(capability, limit, on_done)

    def forget(self, peer: PeerId) -> None:
        """Drop ``peer`` from the cached lists (it failed a request)."""
        for service, found in list(self._lists.items()):
            self._lists[service] = replace(found, providers=tuple(p for p in found.providers
                                                                  if p.peer.peer_id != peer))

    def _watch(self, service: str) -> None:
        """Keep ``service``'s list fresh while it is in use: refreshed every half cache TTL until nobody has
        asked for it for ``WATCH_IDLE`` seconds, so callers do not wait for discoveries."""
        if service in self._watching:
            return

        def tick() -> None:
            if self.runtime.now() - self._used.get(service, float("-inf")) >= WATCH_IDLE:
                del self._watching[service]
                return
            self._fetch(service)
            self._watching[service] = self.runtime.call_later(self.cache_ttl / 2, tick)

        self._watching[service] = self.runtime.call_later(self.cache_ttl / 2, tick)

    def _fetch(self, service: str) -> _Fetch:
        """The discovery of ``service``'s providers under way, or a new one."""
        fetch = self._fetching.get(service)
        if fetch is None:
            fetch = self._fetching[service] = _Fetch(self, service)
            fetch.start()
        return fetch

    def _fetched(self, fetch: _Fetch, listing: Discovery) -> None:
        self._lists[fetch.service] = listing
        if self._fetching.get(fetch.service) is fetch:
            del self._fetching[fetch.service]


class _Fetch:
    """One discovery of a service's providers: the index key's provider entries, then each candidate's
    descriptor, asked of the candidate itself (it stores its own signed record: one round trip instead of a
    DHT lookup, and an answer shows it is alive; a candidate that refuses or cannot be reached is looked up in
    the DHT instead, as a provider behind a NAT may still be reached through a relay). A waiter is answered
    as soon as the closest candidates are settled: once ``limit`` of them offer its capability with none
    closer still unknown, it does not wait for the slowest of all."""

    def __init__(self, directory: ServiceDirectory, service: str):
        self.directory = directory
        self.service = service
        self.started = directory.runtime.now()
        self.candidates: list[PeerInfo] | None = None  # closest first, once the index key answered
        self.entries = 0
        self.settled: dict[PeerId, Provider | None] = {}
        self.waiters: list[tuple[str | None, int, Callable[[Discovery], None]]] = []

    def start(self) -> None:
        directory = self.directory
        dht = directory.dht
        own = dht.keypair.peer_id
        own_key = kad_key(own.raw)
        self.own_key = own_key

        def providers_found(found: ProvidersFound) -> None:
            self.entries = len(found.providers)
            self.candidates = sorted((p for p in found.providers if p.peer_id != own),
                                     key=lambda p: own_key ^ kad_key(p.peer_id.raw))
            if not self.candidates:
                self.check()
            for peer in self.candidates:
                self.ask(peer)

        dht.find_providers(index_key(self.service), providers_found, count=INDEX_COUNT)

    def ask(self, peer: PeerInfo) -> None:
        dht = self.directory.dht
        key = descriptor_key(self.service, peer.peer_id)

        def answered(response: Any) -> None:
            record = response.record if isinstance(response, GetValueResponse) else None
            if record is None:
                failed("no record")  # it may have stored it elsewhere only: ask the DHT
            else:
                self.settle(peer, record)

        def failed(reason: str) -> None:
            if reason == "timeout":
                self.settle(peer, None)  # not answering: no use to callers either
            else:
                dht.get_value(key, lambda result: self.settle(peer, result.record))

        dht.runtime.request(peer, GetValue(key), dht.config.slow_after, answered, failed)

    def settle(self, peer: PeerInfo, record: DHTRecord | None) -> None:
        provider = None
        if record is not None and record.key == descriptor_key(self.service, peer.peer_id) \
                and record.publisher == peer.peer_id and record_is_valid(record):
            descriptor = parse_descriptor(self.service, peer.peer_id, record.value)
            if descriptor is not None:
                provider = Provider(_with_addrs(peer, descriptor), descriptor, self.own_key ^ kad_key(peer.peer_id.raw))
        self.settled[peer.peer_id] = provider
        self.check()

    def wait(self, capability: str | None, limit: int, on_done: Callable[[Discovery], None]) -> None:
        self.waiters.append((capability, limit, on_done))
        self.check()

    def check(self) -> None:
        """Answer the waiters whose closest providers are known; finish once every candidate is settled."""
        if self.candidates is None:
            return
        now = self.directory.runtime.now()
        complete = len(self.settled) == len(self.candidates)
        if complete:
            found = sorted((p for p in self.settled.values() if p is not None), key=lambda p: p.distance)
            listing = Discovery(self.service, None, tuple(found), self.entries, self.started, now)
            self.directory._fetched(self, listing)
        waiting, self.waiters = self.waiters, []
        for capability, limit, on_done in waiting:
            found = self._closest(capability, limit)
            if found is None and not complete:
                self.waiters.append((capability, limit, on_done))
            else:
                on_done(Discovery(self.service, capability, tuple(found or []), self.entries, self.started, now))

    def _closest(self, capability: str | None, limit: int) -> list[Provider] | None:
        """The ``limit`` closest providers with ``capability`` if none closer is still unknown, else None."""
        found: list[Provider] = []
        for peer in self.candidates or ():
            if peer.peer_id not in self.settled:
                return None
            provider = self.settled[peer.peer_id]
            if provider is not None and _offers(provider, capability):
                found.append(provider)
                if len(found) == limit:
                    return found
        return found if len(self.settled) == len(self.candidates or ()) else None


def _offers(provider: Provider, capability: str | None) -> bool:
    return capability is None or capability in provider.descriptor["capabilities"]


def _view(listing: Discovery, capability: str | None, limit: int, started: float, finished: float,
          cached: bool) -> Discovery:
    providers = tuple(p for p in listing.providers if _offers(p, capability))[:limit]
    return Discovery(listing.service, capability, providers, listing.candidates, started, finished, cached)


def _with_addrs(peer: PeerInfo, descriptor: dict[str, Any]) -> PeerInfo:
    """The provider with the addresses its descriptor lists, when the provider entry carried none."""
    if peer.addrs:
        return peer
    from p2pnode.transports.addresses import parse

    addrs = []
    for text in descriptor.get("addrs", [])[:8]:
        try:
            addrs.append(parse(text).to_bytes())
        except (TypeError, ValueError):
            continue
    return PeerInfo(peer.peer_id, tuple(addrs))


def peer_from_text(text: str) -> PeerId:
    try:
        return PeerId.from_base58(text)
    except IdentityError as exc:
        raise ValueError(f"{text!r} is not a peer ID: {exc}") from None
