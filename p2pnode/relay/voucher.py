"""Reservation vouchers (circuit-v2 "Reservation Vouchers"): a relay's signed statement that it serves a peer
until a time, in a signed envelope (``p2pnode.envelope``) of domain ``libp2p-relay-rsvp`` and payload type
``03 02`` (multicodec 0x0302, as plain bytes, as go-, js- and rust-libp2p write it).

The payload is the canonical ``Voucher{relay=1, peer=2, expiration=3}`` protobuf (fields in order, no unknown
ones). ``consume`` checks everything a client relies on: the signature, that the relay signed it, that it names
the reserving peer, that it has not expired; each failure is a ``VoucherError`` saying which.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from p2pnode import envelope
from p2pnode.envelope import EnvelopeError
from p2pnode.identity import IdentityError, Keypair, PeerId
from p2pnode.pb import circuit_pb2

DOMAIN = "libp2p-relay-rsvp"
PAYLOAD_TYPE = b"\x03\x02"


class VoucherError(EnvelopeError):
    """A voucher that is forged, malformed, for someone else, or expired."""


@dataclass(frozen=True, slots=True)
class Voucher:
    relay: PeerId
    peer: PeerId
    expiration: int  # UNIX seconds (UTC)


def encode(voucher: Voucher) -> bytes:
    pb = circuit_pb2.Voucher(relay=voucher.relay.raw, peer=voucher.peer.raw, expiration=voucher.expiration)
    return pb.SerializeToString(deterministic=True)


def seal(keypair: Keypair, peer: PeerId, expiration: int) -> bytes:
    """The relay ``keypair``'s voucher for ``peer`` until ``expiration``."""
    return envelope.seal(keypair, DOMAIN, PAYLOAD_TYPE, encode(Voucher(keypair.peer_id, peer, expiration)))


def consume(data: bytes, *, relay: PeerId, peer: PeerId, now: float) -> Voucher:
    """The voucher in ``data`` if the relay ``relay`` signed it for ``peer`` and it holds at ``now`` (UNIX
    seconds); ``VoucherError`` naming the fault otherwise."""
    try:
        opened = envelope.consume(data, DOMAIN, PAYLOAD_TYPE)
    except VoucherError:
        raise
    except EnvelopeError as exc:
        raise VoucherError(f"voucher: {exc}") from None
    try:
        pb = circuit_pb2.Voucher.FromString(opened.payload)
        voucher = Voucher(PeerId(pb.relay), PeerId(pb.peer), pb.expiration)
    except (DecodeError, IdentityError) as exc:
        raise VoucherError(f"voucher payload is not a Voucher: {exc}") from None
    if opened.signer != voucher.relay:
        raise VoucherError(f"voucher for relay {voucher.relay.short()} signed by {opened.signer.short()}")
    if voucher.relay != relay:
        raise VoucherError(f"voucher names relay {voucher.relay.short()}, not {relay.short()}")
    if voucher.peer != peer:
        raise VoucherError(f"voucher names peer {voucher.peer.short()}, not {peer.short()}")
    if voucher.expiration <= now:
        raise VoucherError(f"voucher expired at {voucher.expiration} (now {int(now)})")
    return voucher
