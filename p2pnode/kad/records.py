"""Signed records and the stores that hold records and provider entries, with expiry."""

from __future__ import annotations

from dataclasses import dataclass

from p2pnode.identity import IdentityError, Keypair, PeerId, verify
from p2pnode.kad.codec import signing_payload
from p2pnode.kad.messages import DHTRecord, PeerInfo
from p2pnode.kad.namespaces import IPNS, is_pk_key, make_pk_record, pk_record_is_valid, refuse_unsupported


def make_record(keypair: Keypair, key: bytes, value: bytes, ttl: float, version: int) -> DHTRecord:
    """A record signed by ``keypair``: the signature covers key, value, publisher, ttl and version.

    Under a namespace libp2p defines, the record takes that namespace's form instead: a ``/pk/`` record is
    the bare public key (``NamespaceError`` unless the key names it), an ``/ipns/`` key is refused."""
    if is_pk_key(key):
        return make_pk_record(key, value, ttl)
    refuse_unsupported(key)
    signature = keypair.sign(signing_payload(key, value, keypair.peer_id, ttl, version))
    return DHTRecord(key, value, keypair.peer_id, signature, ttl, version)


def record_is_valid(record: DHTRecord) -> bool:
    """libp2p's validator for its namespaces (``/pk/``: the key names the value's public key; ``/ipns/``:
    unsupported, never valid), our signature check for every other key."""
    if is_pk_key(record.key):
        return pk_record_is_valid(record)
    if record.key.startswith(IPNS):
        return False
    try:
        public_key = record.publisher.public_key()
    except IdentityError:
        return False
    payload = signing_payload(record.key, record.value, record.publisher, record.ttl, record.version)
    return verify(public_key, record.signature, payload)


@dataclass(slots=True)
class StoredRecord:
    record: DHTRecord
    expires: float


class RecordStore:
    """Records by key. A record replaces a stored one only with a higher version; equal versions from the
    same publisher refresh the expiry (a republish). Expired records are dropped on read and by ``sweep``."""

    def __init__(self, max_value_size: int = 64 * 1024):
        self.max_value_size = max_value_size
        self._records: dict[bytes, StoredRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def put(self, record: DHTRecord, now: float) -> bool:
        if record.ttl <= 0 or len(record.value) > self.max_value_size:
            return False
        current = self._records.get(record.key)
        if current is not None and current.expires > now:
            old = current.record
            if record.version < old.version:
                return False
            if record.version == old.version and record.publisher != old.publisher:
                return False  # first writer of a version wins; a later one must bump the version
        if not record_is_valid(record):
            return False
        self._records[record.key] = StoredRecord(record, now + record.ttl)
        return True

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
