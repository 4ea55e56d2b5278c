"""Signed records, the namespaces that say which records are valid and which of two is better, and the
stores that hold records and provider entries, with expiry."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from p2pnode.identity import IdentityError, Keypair, PeerId, verify
from p2pnode.kad.codec import signing_payload
from p2pnode.kad.messages import DHTRecord, PeerInfo
from p2pnode.kad.namespaces import (
    IPNS,
    MCP_SERVICE,
    is_pk_key,
    make_pk_record,
    mcp_descriptor_is_valid,
    pk_record_is_valid,
    refuse_unsupported,
)
from p2pnode.security.pow import mint, stamp_bits, stamp_payload


def make_record(keypair: Keypair, key: bytes, value: bytes, ttl: float, version: int) -> DHTRecord:
    """A record signed by ``keypair``: the signature covers key, value, publisher, ttl and version.

    Under a namespace libp2p defines, the record takes that namespace's form instead: a ``/pk/`` record is
    the bare public key (``NamespaceError`` unless the key names it), an ``/ipns/`` key is refused."""
    if is_pk_key(key):
        return make_pk_record(key, value, ttl)
    refuse_unsupported(key)
    signature = keypair.sign(signing_payload(key, value, keypair.peer_id, ttl, version))
    return DHTRecord(key, value, keypair.peer_id, signature, ttl, version)


def stamped(record: DHTRecord, difficulty: int) -> tuple[DHTRecord, int]:
    """``record`` with a proof-of-work stamp of ``difficulty`` bits, and the hashes minting it took (the
    record as it is, and 0, when no work is asked or its namespace carries none)."""
    if difficulty <= 0 or not namespace_of(record.key).stamped:
        return record, 0
    stamp, hashes = mint(stamp_payload(record.key, record.value, record.publisher, record.version), difficulty)
    return replace(record, stamp=stamp), hashes


def _signed_by_publisher(record: DHTRecord) -> bool:
    try:
        public_key = record.publisher.public_key()
    except IdentityError:
        return False
    payload = signing_payload(record.key, record.value, record.publisher, record.ttl, record.version)
    return verify(public_key, record.signature, payload)


def _newer(new: DHTRecord, old: DHTRecord) -> bool:
    """Lamport order: a higher version wins; the same version only from the same publisher (a republish;
    the first writer of a version wins, a later one must bump the version)."""
    return new.version > old.version or (new.version == old.version and new.publisher == old.publisher)


@dataclass(frozen=True, slots=True)
class Namespace:
    """A key namespace's validator (is this record acceptable at all) and selector (may ``new`` replace
    ``old``, both valid), as libp2p's record validators pair ``Validate`` and ``Select``."""

    name: str
    prefix: bytes
    validate: Callable[[DHTRecord], bool]
    replaces: Callable[[DHTRecord, DHTRecord], bool]
    stamped: bool = True  # whether the proof of work applies (a /pk/ record carries none)


NAMESPACES = (
    # libp2p's: the key names the value's public key; every valid value for a key is the same key
    Namespace("pk", b"/pk/", pk_record_is_valid, lambda new, old: True, stamped=False),
    Namespace("ipns", IPNS, lambda record: False, lambda new, old: False, stamped=False),  # unsupported
    # MCP service descriptors: signed by the peer the key names, and a descriptor of that service by it
    Namespace("mcp", MCP_SERVICE, lambda r: mcp_descriptor_is_valid(r) and _signed_by_publisher(r), _newer),
)
DEFAULT_NAMESPACE = Namespace("signed", b"", _signed_by_publisher, _newer)


def namespace_of(key: bytes) -> Namespace:
    for namespace in NAMESPACES:
        if key.startswith(namespace.prefix):
            return namespace
    return DEFAULT_NAMESPACE


def record_is_valid(record: DHTRecord) -> bool:
    """The validator of the record's namespace: libp2p's for ``/pk/`` (the key names the value's public
    key) and ``/ipns/`` (unsupported, never valid), the descriptor rules and our signature check for MCP
    service descriptors, our signature check for every other key."""
    return namespace_of(record.key).validate(record)


def record_replaces(new: DHTRecord, old: DHTRecord) -> bool:
    """The selector of the records' namespace: whether valid ``new`` is to be kept over valid ``old``."""
    return namespace_of(new.key).replaces(new, old)


def stamp_is_valid(record: DHTRecord, difficulty: int) -> bool:
    """Whether the record's proof of work meets ``difficulty`` (always, for namespaces without one)."""
    if difficulty <= 0 or not namespace_of(record.key).stamped:
        return True
    payload = stamp_payload(record.key, record.value, record.publisher, record.version)
    return stamp_bits(payload, record.stamp) >= difficulty


@dataclass(slots=True)
class StoredRecord:
    record: DHTRecord
    expires: float


class RecordStore:
    """Records by key. A record is stored only if its namespace's validator takes it, its proof of work
    meets ``pow_difficulty`` and the namespace's selector prefers it to the stored one (for signed records:
    a higher version, or the same version from the same publisher, which refreshes the expiry). Refusals are
    counted by reason ("size", "stale", "pow", "invalid"). Expired records are dropped on read and by
    ``sweep``."""

    def __init__(self, max_value_size: int = 64 * 1024, pow_difficulty: int = 0):
        self.max_value_size = max_value_size
        self.pow_difficulty = pow_difficulty
        self.refused: Counter[str] = Counter()
        self._records: dict[bytes, StoredRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def put(self, record: DHTRecord, now: float) -> bool:
        reason = self.refusal(record, now)
        if reason is not None:
            self.refused[reason] += 1
            return False
        self._records[record.key] = StoredRecord(record, now + record.ttl)
        return True

    def refusal(self, record: DHTRecord, now: float) -> str | None:
        """Why ``put`` would refuse ``record`` (cheapest checks first), or None."""
        if record.ttl <= 0 or len(record.value) > self.max_value_size:
            return "size"
        current = self._records.get(record.key)
        if current is not None and current.expires > now and not record_replaces(record, current.record):
            return "stale"
        if not stamp_is_valid(record, self.pow_difficulty):
            return "pow"
        if not record_is_valid(record):
            return "invalid"
        return None

    def restore(self, record: DHTRecord, expires: float, now: float) -> bool:
        """Put back a record kept across a restart, with the expiry it had (never later than its TTL)."""
        if expires <= now or not self.put(record, now):
            return False
        self._records[record.key].expires = min(expires, now + record.ttl)
        return True

    def items(self) -> list[StoredRecord]:
        return list(self._records.values())

    def get(self, key: bytes, now: float) -> DHTRecord | None:
        stored = self._records.get(key)
        if stored is None:
            return None
        if stored.expires <= now:
            del self._records[key]
            return None
        return stored.record

    def sweep(self, now: float) -> int:
        expired = [key for key, stored in self._records.items() if stored.expires <= now]
        for key in expired:
            del self._records[key]
        return len(expired)

    def records(self) -> list[DHTRecord]:
        return [stored.record for stored in self._records.values()]


class ProviderStore:
    """Who provides what: key -> provider peer ID -> (peer info, expiry)."""

    def __init__(self, max_per_key: int = 20):
        self.max_per_key = max_per_key
        self._providers: dict[bytes, dict[PeerId, tuple[PeerInfo, float]]] = {}

    def __len__(self) -> int:
        return sum(len(p) for p in self._providers.values())

    def add(self, key: bytes, provider: PeerInfo, expires: float) -> None:
        providers = self._providers.setdefault(key, {})
        providers.pop(provider.peer_id, None)
        providers[provider.peer_id] = (provider, expires)
        if len(providers) > self.max_per_key:
            del providers[next(iter(providers))]

    def get(self, key: bytes, now: float) -> list[PeerInfo]:
        providers = self._providers.get(key)
        if not providers:
            return []
        for peer_id in [p for p, (_, expires) in providers.items() if expires <= now]:
            del providers[peer_id]
        if not providers:
            del self._providers[key]
        return [info for info, _ in providers.values()]

    def sweep(self, now: float) -> int:
        before = len(self)
        for key in list(self._providers):
            self.get(key, now)
        return before - len(self)
