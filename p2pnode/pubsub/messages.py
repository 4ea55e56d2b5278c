"""GossipSub wire messages, as typed objects.

Each class maps one-to-one onto the libp2p pubsub protobuf (``pubsub/rpc.proto`` in libp2p/specs):
``RPC`` carries subscription changes, published messages and a ``ControlMessage`` (IHAVE, IWANT, GRAFT,
PRUNE). ``p2pnode.pubsub.codec`` puts them on the wire; the simulator passes the objects and charges
their encoded size.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    """A published message. ``source`` is the publisher's peer-ID bytes (``from``), ``seqno`` 8 bytes
    big-endian; ``signature`` covers the message without ``signature`` and ``key`` (StrictSign). ``key``
    stays empty for Ed25519 publishers: their public key is inlined in the peer ID."""

    source: bytes
    data: bytes
    seqno: bytes
    topic: str
    signature: bytes = b""
    key: bytes = b""


@dataclass(frozen=True, slots=True)
class SubOpts:
    subscribe: bool
    topic: str


@dataclass(frozen=True, slots=True)
class IHave:
    topic: str
    message_ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class IWant:
    message_ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Graft:
    topic: str


@dataclass(frozen=True, slots=True)
class PeerExchange:
    """``PeerInfo`` in a PRUNE: a peer to try instead (peer-ID bytes, optional signed peer record)."""

    peer_id: bytes
    signed_peer_record: bytes = b""


@dataclass(frozen=True, slots=True)
class Prune:
    """``backoff`` is in seconds (v1.1); None when absent on the wire (a v1.0 peer)."""

    topic: str
    peers: tuple[PeerExchange, ...] = ()
    backoff: int | None = None


@dataclass(frozen=True, slots=True)
class Control:
    ihave: tuple[IHave, ...] = ()
    iwant: tuple[IWant, ...] = ()
    graft: tuple[Graft, ...] = ()
    prune: tuple[Prune, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ihave or self.iwant or self.graft or self.prune)


@dataclass(frozen=True, slots=True)
class RPC:
    subscriptions: tuple[SubOpts, ...] = ()
    publish: tuple[Message, ...] = ()
    control: Control | None = None
