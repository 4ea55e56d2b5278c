"""The Kademlia node: owns the routing table, the running lookups and the record stores (sans-IO).

Everything it does to the world goes through the ``Runtime`` it is handed; everything the world does to
it arrives as ``handle_request`` or as the callbacks of its own requests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from heapq import heappop, heappush
from typing import Any

from p2pnode.config import KadConfig
from p2pnode.identity import Keypair, PeerId, kad_key
from p2pnode.interface import Runtime, Timer
from p2pnode.kad import keyspace
from p2pnode.kad.events import GetFinished, LookupFinished, PeerFound, ProvidersFound, PutFinished
from p2pnode.kad.messages import (
    AddProvider,
    DHTRecord,
    FindNode,
    FindNodeResponse,
    GetProviders,
    GetProvidersResponse,
    GetValue,
    GetValueResponse,
    PeerInfo,
    Ping,
    Pong,
    PutValue,
    PutValueResponse,
)
from p2pnode.kad.query import WAITING, Lookup
from p2pnode.kad.records import ProviderStore, RecordStore, make_record, record_is_valid, record_replaces, stamped
from p2pnode.kad.routing import RoutingTable
from p2pnode.kad.rtt import RttEstimates
from p2pnode.security.puzzles import PuzzleCheck, solve_dynamic, static_bits

JOIN_RETRY_MAX = 60.0  # seconds: the longest wait between attempts to join when no bootstrap peer answered


class _Query:
    """One running lookup and what to do with its answers."""

    __slots__ = ("key", "lookup", "request", "on_reply", "on_done", "started", "done", "due", "slow_timer")

    def __init__(self, key: bytes, lookup: Lookup, request: Any, on_reply, on_done, started: float):
        self.key = key
        self.lookup = lookup
        self.request = request
        self.on_reply = on_reply   # (query, peer, response) -> True to finish now
        self.on_done = on_done     # (query) -> None
        self.started = started
        self.done = False
        self.due: list[tuple[float, int, PeerInfo]] = []  # heap: when each open request turns slow
        self.slow_timer = False                            # a slow-request check is scheduled


class KademliaNode:
    def __init__(
        self,
        keypair: Keypair,
        runtime: Runtime,
        config: KadConfig | None = None,
        addrs: tuple[bytes, ...] = (),
    ):
        self.keypair = keypair
        self.peer_id = keypair.peer_id
        self.runtime = runtime
        self.config = config = config or KadConfig()
        kad_id = self.peer_id.kad_id
        self.puzzles = PuzzleCheck(config.puzzle_static, config.puzzle_dynamic)
        if static_bits(kad_id) < config.puzzle_static:
            raise ValueError(f"this node's key does not meet the static ID puzzle ({config.puzzle_static} bits): "
                             "peers would refuse it (p2pnode.security.puzzles.solve_static makes one that does)")
        self.puzzle = solve_dynamic(kad_id, config.puzzle_dynamic)[0]
        self.info = PeerInfo(keypair.peer_id, addrs, puzzle=self.puzzle)
        self.table = RoutingTable(kad_id, config.k, config.questionable_after, config.siblings)
        self.records = RecordStore(config.max_record_size, config.pow_difficulty)
        self.refused_answers: Counter[str] = Counter()  # lookup answers left out: "invalid", "other key"
        self.providers = ProviderStore(self.config.k)
        self.rtt = RttEstimates(self.config.rtt_peers)
        # Peers whose request failed lately, by Kademlia ID, oldest first: lookups drop referrals to them
        # for ``skip_failed_for`` seconds (other nodes' tables still list a crashed peer for a while).
        self.failed: dict[int, float] = {}
        self.running = False
        self.bootstrapped = False
        # Whether a requester serves the DHT and so may join our routing table (libp2p: Identify lists the
        # protocol; a node behind a NAT runs in client mode). None: every requester does.
        self.serving: Callable[[PeerInfo], bool] | None = None
        self._lamport = 0
        self._published: dict[bytes, DHTRecord] = {}
        self._timers: list[Timer] = []
        self._sweep_timer: Timer | None = None
        self._bootstrap: list[PeerInfo] = []

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self, bootstrap: Iterable[PeerInfo] = (), on_bootstrapped: Callable[[], None] | None = None) -> None:
        """Join the network through ``bootstrap`` peers: look up our own ID, then fill the buckets that
        the lookup left short. ``on_bootstrapped`` runs when that is done. If every bootstrap peer failed
        (the table is empty at the end), the join is tried again after 1, 2, 4 … 60 s."""
        self.running = True
        self._bootstrap = [peer for peer in bootstrap if peer.peer_id != self.peer_id]
        self._join(on_bootstrapped, attempt=0)

    def _join(self, on_bootstrapped: Callable[[], None] | None, attempt: int) -> None:
        if not self.running:
            return
        for peer in self._bootstrap:
            self._seen(peer)

        def refreshed() -> None:
            if self._bootstrap and not self.table.peers:  # nobody answered: we are not part of any network
                delay = min(JOIN_RETRY_MAX, 2.0**attempt)
                self._timers.append(self.runtime.call_later(delay, lambda: self._join(on_bootstrapped, attempt + 1)))
                return
            self.bootstrapped = True
            self._every(self.config.refresh_interval, self.refresh)
            if on_bootstrapped is not None:
                on_bootstrapped()

        def self_lookup_done(_: LookupFinished) -> None:
            short = [i for i in self._refreshable_buckets() if len(self.table.buckets.get(i, ())) < self.config.k]
            self._refresh_buckets(short, refreshed)

        self.find_node(self.peer_id.raw, self_lookup_done)

    def stop(self) -> None:
        """Stop at once (a crash or a shutdown): timers are cancelled and answers to our requests dropped."""
        self.running = False
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None

    def _every(self, interval: float, action: Callable[[], None]) -> None:
        """Run ``action`` every ``interval`` seconds until the node stops."""
        slot = len(self._timers)

        def tick() -> None:
            if self.running:
                action()
                self._timers[slot] = self.runtime.call_later(interval, tick)

        self._timers.append(self.runtime.call_later(interval, tick))

    # ---- maintenance -----------------------------------------------------------------------------

    def _refreshable_buckets(self) -> list[int]:
        """Buckets from the farthest in use down to just beyond our closest neighbour; buckets with a
        common prefix longer than ``keyspace.MAX_REFRESH_CPL`` are left to the self lookup."""
        buckets = self.table.buckets
        if not buckets:
            return []
        nearest = min(i for i, b in buckets.items() if b.entries) if self.table.peers else 256
        lowest = max(nearest + 1, 256 - keyspace.MAX_REFRESH_CPL)
        return list(range(256, lowest - 1, -1))

    def refresh(self) -> None:
        """Periodic refresh: look up a random key in every bucket no lookup has covered lately (from the
        bootstrap peers again if every peer we knew has gone)."""
        now = self.runtime.now()
        if not self.table.peers:
            for peer in self._bootstrap:
                self._seen(peer)
        interval = self.config.refresh_interval
        stale = [
            i for i in self._refreshable_buckets()
            if i not in self.table.buckets or now - self.table.buckets[i].last_lookup >= interval
        ]
        self._refresh_buckets(stale, None)

    def _refresh_buckets(self, indices: list[int], on_done: Callable[[], None] | None) -> None:
        if not indices:
            if on_done is not None:
                on_done()
            return
        remaining = len(indices)

        def one_done(_: LookupFinished) -> None:
            nonlocal remaining
            remaining -= 1
            if remaining == 0 and on_done is not None and self.running:
                on_done()

        rng = self.runtime.rng
        for index in indices:
            key = keyspace.refresh_key(self.peer_id.kad_id, 256 - index, rng.getrandbits(256))
            self.find_node(key, one_done)

    def add_peer(self, peer: PeerInfo) -> None:
        """A peer known to serve the DHT (libp2p learns it from Identify on a new connection)."""
        if self.running and peer.peer_id != self.peer_id:
            self._seen(peer)

    def _seen(self, peer: PeerInfo) -> None:
        if self.failed:
            self.failed.pop(peer.peer_id.kad_id, None)
        table = self.table
        kad_id = peer.peer_id.kad_id
        if kad_id in table:
            candidate = table.update(peer, self.runtime.now())
        else:  # an insert: only an ID that meets the puzzles gets in
            if self.puzzles.enabled and not self.puzzles.admit(kad_id, peer.puzzle):
                return
            candidate = table.update(peer, self.runtime.now())
            if table.sibling_count and kad_id in table:
                self._hand_off(peer)
        if candidate is not None:
            self._check_alive(candidate)

    def _hand_off(self, peer: PeerInfo) -> None:
        """Replica placement: a peer that has just joined our neighbourhood gets the records it is now
        among the k closest to (and so should hold), as S/Kademlia's sibling list has them placed."""
        if peer not in self.table.siblings():
            return
        now = self.runtime.now()
        kad_id, k = peer.peer_id.kad_id, self.config.k
        for stored in self.records.items():
            if stored.expires > now and any(p.peer_id.kad_id == kad_id
                                            for p in self.table.closest(kad_key(stored.record.key), k)):
                self.runtime.request(peer, PutValue(stored.record), self.config.request_timeout, _ignore, _ignore)

    def _admitted(self, peers: tuple[PeerInfo, ...]) -> tuple[PeerInfo, ...] | list[PeerInfo]:
        """The referred peers a lookup may contact: those whose IDs meet the puzzles."""
        if not self.puzzles.enabled:
            return peers
        admit = self.puzzles.admit
        return [p for p in peers if admit(p.peer_id.kad_id, p.puzzle)]

    def _check_alive(self, peer: PeerInfo) -> None:
        sent = self.runtime.now()

        def answered(_: Any) -> None:
            if self.running:
                self.rtt.sample(peer.peer_id.kad_id, self.runtime.now() - sent)
                self.table.check_done(peer, True, self.runtime.now())

        def failed(_: str) -> None:
            if self.running:
                self.table.check_done(peer, False, self.runtime.now())

        self.runtime.request(peer, Ping(), self._wait_for(peer.peer_id.kad_id)[1], answered, failed)

    def _note_record(self, record: DHTRecord) -> None:
        if record.version > self._lamport:
            self._lamport = record.version

    def _arm_sweep(self) -> None:
        if self._sweep_timer is None and self.running:
            self._sweep_timer = self.runtime.call_later(self.config.expiry_sweep_interval, self._sweep)

    def _sweep(self) -> None:
        self._sweep_timer = None
        if not self.running:
            return
        now = self.runtime.now()
        self.records.sweep(now)
        self.providers.sweep(now)
        if len(self.records) or len(self.providers):
            self._arm_sweep()

    # ---- inbound ---------------------------------------------------------------------------------

    def handle_request(self, sender: PeerInfo, message: Any) -> Any:
        """Answer a request from ``sender``; returns the response, or None for one-way messages."""
        if not self.running:
            return None
        if self.serving is None or self.serving(sender):
            self._seen(sender)
        kind = type(message)
        if kind is FindNode:
            return FindNodeResponse(self._closer(message.key, sender))
        if kind is GetValue:
            record = self.records.get(message.key, self.runtime.now())
            return GetValueResponse(record, self._closer(message.key, sender))
        if kind is PutValue:
            record = message.record
            stored = self.records.put(record, self.runtime.now())
            if stored:
                self._note_record(record)
                self._arm_sweep()
            return PutValueResponse(record, stored)
        if kind is GetProviders:
            providers = tuple(self.providers.get(message.key, self.runtime.now()))
            return GetProvidersResponse(providers, self._closer(message.key, sender))
        if kind is AddProvider:
            # Only a peer may announce itself as a provider (as libp2p requires).
            if message.provider.peer_id == sender.peer_id:
                self.providers.add(message.key, message.provider, self.runtime.now() + self.config.provider_ttl)
                self._arm_sweep()
            return None
        if kind is Ping:
            return Pong()
        raise ValueError(f"not a Kademlia request: {kind.__name__}")

    def _closer(self, key: bytes, sender: PeerInfo) -> tuple[PeerInfo, ...]:
        return tuple(self.table.closest(kad_key(key), self.config.k, exclude=sender.peer_id.kad_id))

    # ---- lookups ---------------------------------------------------------------------------------

    def _query(self, key: bytes, request: Any, on_reply, on_done) -> _Query:
        target = kad_key(key)
        now = self.runtime.now()
        config = self.config
        seeds = self.table.closest(target, config.k)
        if not seeds and self.puzzles.enabled:
            # bootstrap peers whose puzzle solution we have not seen yet (Identify tells it later)
            seeds = self._bootstrap[: config.k]
        self.table.mark_lookup(target, now)
        failed = self.failed
        if failed:
            horizon = now - config.skip_failed_for
            while failed and next(iter(failed.values())) <= horizon:
                del failed[next(iter(failed))]
        lookup = Lookup(target, seeds, config.k, config.alpha, config.disjoint_paths, self.peer_id.kad_id,
                        failed, self.rtt if config.proximity else None,
                        # a lookup that gathers records or providers waits for all of its k closest
                        config.beta if on_reply is None else config.k, config.followup)
        query = _Query(key, lookup, request, on_reply, on_done, now)
        self._step(query)
        return query

    def _wait_for(self, kad_id: int) -> tuple[float, float]:
        """How long a lookup waits for a request to this peer before it stops waiting, and before the request
        fails: adaptive (the peer's RTO, see ``rtt``) or the fixed ``slow_after`` and ``request_timeout``.
        The request fails after ``timeout_rtos`` RTOs only if the peer was measured (a first request may
        have to dial it, which takes some round trips more); never later than ``request_timeout``."""
        config = self.config
        if not config.adaptive:
            return config.slow_after, config.request_timeout
        slow = self.rtt.rto(kad_id, config.min_wait, config.slow_after)
        if not self.rtt.known(kad_id):
            return slow, config.request_timeout
        return slow, min(config.request_timeout, max(slow * config.timeout_rtos, config.slow_after))

    def _step(self, query: _Query) -> None:
        if query.done or not self.running:
            return
        lookup = query.lookup
        peers = lookup.next_peers()
        if peers:
            request = self.runtime.request
            now = self.runtime.now()
            due = query.due
            for peer in peers:
                kad_id = peer.peer_id.kad_id
                slow, timeout = self._wait_for(kad_id)
                heappush(due, (now + slow, kad_id, peer))
                request(
                    peer, query.request, timeout,
                    lambda response, peer=peer, sent=now: self._on_reply(query, peer, response, sent),
                    lambda reason, peer=peer: self._on_failure(query, peer),
                )
        if lookup.finished or lookup.in_flight == 0:  # next_peers() has just settled ``finished``
            query.done = True
            query.on_done(query)
        elif not query.slow_timer:
            self._arm_slow_check(query)

    def _arm_slow_check(self, query: _Query) -> None:
        """One timer per query, due when its first open request turns slow."""
        due = query.due
        lookup = query.lookup
        while due and lookup.state_of(due[0][2]) != WAITING:
            heappop(due)  # answered already
        if due:
            query.slow_timer = True
            self.runtime.call_later(max(due[0][0] - self.runtime.now(), 0.0), lambda: self._slow_check(query))

    def _slow_check(self, query: _Query) -> None:
        query.slow_timer = False
        if query.done or not self.running:
            return
        horizon = self.runtime.now() + 1e-9  # the timer may fire a hair early
        due = query.due
        changed = False
        while due and due[0][0] <= horizon:
            changed |= query.lookup.mark_slow(heappop(due)[2])
        if changed:
            self._step(query)
        elif not query.slow_timer:
            self._arm_slow_check(query)

    def _on_reply(self, query: _Query, peer: PeerInfo, response: Any, sent: float) -> None:
        if not self.running:
            return
        self.rtt.sample(peer.peer_id.kad_id, self.runtime.now() - sent)
        self._seen(peer)
        if query.done:
            return
        query.lookup.on_success(peer, self._admitted(getattr(response, "closer_peers", ())))
        if query.on_reply is not None and query.on_reply(query, peer, response):
            query.done = True
            query.on_done(query)
            return
        self._step(query)

    def _on_failure(self, query: _Query, peer: PeerInfo) -> None:
        if not self.running:
            return
        kad_id = peer.peer_id.kad_id
        self.table.remove(kad_id)
        if self.config.skip_failed_for > 0:
            self.failed.pop(kad_id, None)
            self.failed[kad_id] = self.runtime.now()
        if query.done:
            return
        query.lookup.on_failure(peer)
        self._step(query)

    def find_node(self, key: bytes, on_done: Callable[[LookupFinished], None]) -> None:
        """The k closest peers to ``key`` (its Kademlia key is SHA-256(key))."""

        def done(query: _Query) -> None:
            lookup = query.lookup
            peers = lookup.result()
            on_done(LookupFinished(query.key, tuple(peers), lookup.result_hops(peers), lookup.requests,
                                   query.started, self.runtime.now()))

        self._query(key, FindNode(key), None, done)

    def find_peer(self, peer_id: PeerId, on_done: Callable[[PeerFound], None]) -> None:
        """The addresses of ``peer_id``: the lookup for its ID stops at the first answer that refers to it
        (or at its own answer), as libp2p's FIND_PEER does."""
        found: list[PeerInfo] = []

        def reply(query: _Query, peer: PeerInfo, response: FindNodeResponse) -> bool:
            if peer.peer_id == peer_id:
                found.append(peer)
            else:
                found.extend(p for p in response.closer_peers if p.peer_id == peer_id)
            return bool(found)

        def done(query: _Query) -> None:
            lookup = query.lookup
            on_done(PeerFound(peer_id, found[0] if found else None, lookup.result_hops(), lookup.requests,
                              query.started, self.runtime.now()))

        self._query(peer_id.raw, FindNode(peer_id.raw), reply, done)

    def put_value(self, key: bytes, value: bytes, on_done: Callable[[PutFinished], None] | None = None,
                  ttl: float | None = None) -> DHTRecord:
        """Sign a new version of ``key`` and store it on the k closest peers (and here). Republished
        every ``republish_interval`` while the node runs. A value over ``max_record_size`` is refused
        (ValueError): no peer would store it."""
        if len(value) > self.config.max_record_size:
            raise ValueError(f"value of {len(value)} bytes exceeds the {self.config.max_record_size}-byte record limit")
        self._lamport += 1
        record = make_record(self.keypair, key, value, ttl or self.config.record_ttl, self._lamport)
        # the proof of work, minted once per version (republishes carry the same stamp); in modelled time
        # the put goes out when the minting would have finished
        record, hashes = stamped(record, self.config.pow_difficulty)
        first = key not in self._published
        self._published[key] = record
        if first:
            self._every(self.config.republish_interval, lambda: self._store(self._published[key], None))
        minting = hashes * self.config.pow_hash_seconds
        if minting > 0:
            started = self.runtime.now()
            self.runtime.call_later(minting, lambda: self._store(record, on_done, started) if self.running else None)
        else:
            self._store(record, on_done)
        return record

    def _store(self, record: DHTRecord, on_done: Callable[[PutFinished], None] | None,
               started: float | None = None) -> None:
        started = self.runtime.now() if started is None else started
        self.records.put(record, started)  # here too, at every republish: our copy must not lapse first
        self._arm_sweep()

        def closest_found(found: LookupFinished) -> None:
            peers = found.peers
            requests = found.requests + len(peers)
            acks = 0
            pending = len(peers)

            def finish() -> None:
                if on_done is not None:
                    on_done(PutFinished(record.key, record.version, acks, requests, started, self.runtime.now()))

            if not peers:
                finish()
                return

            def answered(peer: PeerInfo, response: PutValueResponse) -> None:
                nonlocal acks, pending
                self.rtt.sample(peer.peer_id.kad_id, self.runtime.now() - sent)
                acks += bool(response.stored)
                pending -= 1
                if pending == 0:
                    finish()

            def failed(_: str) -> None:
                nonlocal pending
                pending -= 1
                if pending == 0:
                    finish()

            message = PutValue(record)
            sent = self.runtime.now()
            for peer in peers:
                self.runtime.request(peer, message, self._wait_for(peer.peer_id.kad_id)[1],
                                     lambda response, peer=peer: answered(peer, response), failed)

        self.find_node(record.key, closest_found)

    def get_value(self, key: bytes, on_done: Callable[[GetFinished], None], quorum: int = 1) -> None:
        """The newest valid record for ``key``: the lookup stops once ``quorum`` peers returned one."""
        local = self.records.get(key, self.runtime.now())
        best: list[DHTRecord] = [local] if local is not None else []
        found = 0

        holders: list[tuple[PeerInfo, DHTRecord]] = []  # who answered with which valid copy

        def reply(query: _Query, peer: PeerInfo, response: GetValueResponse) -> bool:
            nonlocal found
            record = response.record
            if record is None:
                return False
            if record.key != key or not record_is_valid(record):  # forged, or for another key
                self.refused_answers["other key" if record.key != key else "invalid"] += 1
                return False
            self._note_record(record)
            found += 1
            holders.append((peer, record))
            if not best or (record != best[0] and record_replaces(record, best[0])):
                best[:] = [record]
            return found >= quorum

        def done(query: _Query) -> None:
            lookup = query.lookup
            newest = best[0] if best else None
            if newest is not None:
                # peers that answered with an older copy get the newest (libp2p's correction of stale peers)
                message = PutValue(newest)
                for peer, record in holders:
                    if record.version < newest.version:
                        self.runtime.request(peer, message, self.config.request_timeout, _ignore, _ignore)
            on_done(GetFinished(key, newest, lookup.result_hops(), lookup.requests, query.started,
                                self.runtime.now()))

        self._query(key, GetValue(key), reply, done)

    def provide(self, key: bytes, on_done: Callable[[PutFinished], None] | None = None) -> None:
        """Announce this node as a provider of ``key`` to the k closest peers (one-way, as in libp2p)."""
        started = self.runtime.now()

        def closest_found(found: LookupFinished) -> None:
            message = AddProvider(key, self.info)
            for peer in found.peers:
                self.runtime.send(peer, message)
            if on_done is not None:
                on_done(PutFinished(key, 0, len(found.peers), found.requests + len(found.peers), started,
                                    self.runtime.now()))

        self.providers.add(key, self.info, started + self.config.provider_ttl)
        self._arm_sweep()
        self.find_node(key, closest_found)

    def find_providers(self, key: bytes, on_done: Callable[[ProvidersFound], None], count: int = 20) -> None:
        """Providers of ``key``: the lookup stops once it has ``count`` of them (those this node holds count)."""
        providers: dict[Any, PeerInfo] = {p.peer_id: p for p in self.providers.get(key, self.runtime.now())}

        def reply(query: _Query, peer: PeerInfo, response: GetProvidersResponse) -> bool:
            for provider in response.provider_peers:
                providers.setdefault(provider.peer_id, provider)
            return len(providers) >= count

        def done(query: _Query) -> None:
            lookup = query.lookup
            on_done(ProvidersFound(key, tuple(providers.values())[:count], lookup.requests, query.started,
                                   self.runtime.now(), lookup.result_hops()))

        self._query(key, GetProviders(key), reply, done)


def _ignore(_: Any) -> None:
    """Hand-offs are best effort: the next republish repairs a lost one."""
