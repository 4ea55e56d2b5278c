"""Signed peer records (libp2p/specs ``RFC/0003-routing-records.md``): a peer's own list of its addresses, with a
sequence number, in a signed envelope (``p2pnode.envelope``). Identify carries one as ``signedPeerRecord``.

Domain and payload type are those go-, js-, rust- and py-libp2p use: ``libp2p-peer-record`` and the two bytes
``03 01`` (multicodec ``libp2p-peer-record``, 0x0301, written as plain bytes, not as a varint). The RFC's draft
names (``libp2p-routing-state``, ``/libp2p/routing-state-record``) were never deployed.

A record is valid when its envelope verifies and its ``peer_id`` is the signer. Newer records have a higher
``seq``; a receiver keeps, per peer, the record with the highest ``seq`` it has seen (``PeerRecordBook``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from p2pnode import envelope
from p2pnode.envelope import EnvelopeError
from p2pnode.identity import IdentityError, Keypair, PeerId
from p2pnode.pb import envelope_pb2
from p2pnode.transports.addresses import readable

DOMAIN = "libp2p-peer-record"
PAYLOAD_TYPE = b"\x03\x01"


@dataclass(frozen=True, slots=True)
class PeerRecord:
    peer_id: PeerId
    seq: int
    addrs: tuple[bytes, ...]  # binary multiaddrs


def encode(record: PeerRecord) -> bytes:
    pb = envelope_pb2.PeerRecord(peer_id=record.peer_id.raw, seq=record.seq)
    for addr in record.addrs:
        pb.addresses.add(multiaddr=addr)
    return pb.SerializeToString(deterministic=True)


def seal(keypair: Keypair, seq: int, addrs: tuple[bytes, ...]) -> bytes:
    """Our record of ``addrs``, signed: the bytes Identify sends as ``signedPeerRecord``."""
    return envelope.seal(keypair, DOMAIN, PAYLOAD_TYPE, encode(PeerRecord(keypair.peer_id, seq, addrs)))


def consume(data: bytes) -> PeerRecord:
    """The record inside a signed envelope, once the signature checked out and the record names its signer.
    Raises ``EnvelopeError``."""
    opened = envelope.consume(data, DOMAIN, PAYLOAD_TYPE)
    try:
        pb = envelope_pb2.PeerRecord.FromString(opened.payload)
        peer_id = PeerId(pb.peer_id)
    except (DecodeError, IdentityError) as exc:
        raise EnvelopeError(f"not a peer record: {exc}") from None
    if peer_id != opened.signer:
        raise EnvelopeError(f"peer record of {peer_id.short()} signed by {opened.signer.short()}")
    return PeerRecord(peer_id, pb.seq, readable(a.multiaddr for a in pb.addresses))  # unreadable ones left out


class OwnRecord:
    """Our signed record, sealed again only when our addresses change, with a ``seq`` that always grows."""

    def __init__(self, keypair: Keypair):
        self.keypair = keypair
        self.seq = 0
        self._addrs: tuple[bytes, ...] | None = None
        self._sealed = b""

    def sealed(self, addrs: tuple[bytes, ...], seq_hint: int) -> bytes:
        """The envelope for ``addrs``; ``seq_hint`` (e.g. the wall clock in ns, as go-libp2p uses) makes seq
        grow across restarts too."""
        if addrs != self._addrs:
            self.seq = max(self.seq + 1, seq_hint)
            self._addrs, self._sealed = addrs, seal(self.keypair, self.seq, addrs)
        return self._sealed


class PeerRecordBook:
    """The newest valid record each peer sent (bounded: least recently updated peers are forgotten)."""

    def __init__(self, max_peers: int = 4096):
        self.max_peers = max_peers
        self._records: OrderedDict[PeerId, PeerRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, peer: PeerId) -> PeerRecord | None:
        return self._records.get(peer)

    def update(self, record: PeerRecord) -> PeerRecord:
        """Keep ``record`` unless one with a higher or equal ``seq`` is known; returns the one kept (RFC 0003:
        a record replaces another only with a greater seq)."""
        known = self._records.get(record.peer_id)
        if known is not None and known.seq >= record.seq:
            return known
        self._records[record.peer_id] = record
        self._records.move_to_end(record.peer_id)
        if len(self._records) > self.max_peers:
            self._records.popitem(last=False)
        return record

    def addresses(self, peer: PeerId, record: PeerRecord | None, unsigned: tuple[bytes, ...]) -> tuple[bytes, ...]:
        """The addresses to keep for ``peer`` after it told us ``unsigned`` and maybe ``record`` (a valid record
        of its own, e.g. from Identify): those of its newest signed record, else the unsigned ones."""
        known = self.update(record) if record is not None else self._records.get(peer)
        return known.addrs if known is not None else unsigned
