"""Kademlia wire messages, as typed objects.

Each class maps one-to-one onto the libp2p ``/ipfs/kad/1.0.0`` protobuf ``Message`` (type, key, record,
closerPeers, providerPeers); ``p2pnode.kad.codec`` puts them on the wire. The simulator passes these
objects directly and charges each its encoded size.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from p2pnode.identity import PeerId


class MessageType(IntEnum):
    PUT_VALUE = 0
    GET_VALUE = 1
    ADD_PROVIDER = 2
    GET_PROVIDERS = 3
    FIND_NODE = 4
    PING = 5


class ConnectionType(IntEnum):
    NOT_CONNECTED = 0
    CONNECTED = 1
    CAN_CONNECT = 2
    CANNOT_CONNECT = 3


@dataclass(frozen=True, slots=True, eq=False)
class PeerInfo:
    """``Message.Peer``: a peer ID and its multiaddrs (binary form), and its S/Kademlia dynamic-puzzle
    solution (``p2pnode.security.puzzles``; empty for peers that solve none).

    Two infos are equal when they name the same peer, whatever addresses each carries: a peer's addresses
    change and arrive by different routes, but the connection table and the routers key on who it is.
    ``same_as`` compares every field (for codec round trips)."""

    peer_id: PeerId
    addrs: tuple[bytes, ...] = ()
    connection: ConnectionType = ConnectionType.NOT_CONNECTED
    puzzle: bytes = b""

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, PeerInfo) and other.peer_id == self.peer_id)

    def __hash__(self) -> int:
        return self.peer_id._hash  # cheap: the peer ID caches its hash

    def same_as(self, other: PeerInfo) -> bool:
        return ((self.peer_id, self.addrs, self.connection, self.puzzle)
                == (other.peer_id, other.addrs, other.connection, other.puzzle))


@dataclass(frozen=True, slots=True)
class DHTRecord:
    """The spec's signed DHT record. ``key`` is the application key; its Kademlia key is SHA-256(key).

    ``ttl`` is in seconds; ``version`` is a Lamport counter: a higher version replaces a lower one;
    ``stamp`` is the proof of work for the write (``p2pnode.security.pow``; empty when none was asked for).
    On the wire it travels inside ``Message.Record.value`` (see ``p2pnode.kad.codec``).
    """

    key: bytes
    value: bytes
    publisher: PeerId
    signature: bytes
    ttl: float
    version: int
    stamp: bytes = b""


@dataclass(frozen=True, slots=True)
class FindNode:
    key: bytes


@dataclass(frozen=True, slots=True)
class FindNodeResponse:
    closer_peers: tuple[PeerInfo, ...]


@dataclass(frozen=True, slots=True)
class GetValue:
    key: bytes


@dataclass(frozen=True, slots=True)
class GetValueResponse:
    record: DHTRecord | None
    closer_peers: tuple[PeerInfo, ...]


@dataclass(frozen=True, slots=True)
class PutValue:
    record: DHTRecord


@dataclass(frozen=True, slots=True)
class PutValueResponse:
    """libp2p echoes the stored record; ``stored`` is False when the record was refused.

    A refused PUT goes on the wire without a record (see ``p2pnode.kad.codec``), so once decoded its
    ``record`` is None.
    """

    record: DHTRecord | None
    stored: bool = True


@dataclass(frozen=True, slots=True)
class AddProvider:
    key: bytes
    provider: PeerInfo


@dataclass(frozen=True, slots=True)
class GetProviders:
    key: bytes


@dataclass(frozen=True, slots=True)
class GetProvidersResponse:
    provider_peers: tuple[PeerInfo, ...]
    closer_peers: tuple[PeerInfo, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    """Kademlia PING (deprecated on the wire: answered, never sent to other implementations)."""


@dataclass(frozen=True, slots=True)
class Pong:
    pass


Request = FindNode | GetValue | PutValue | AddProvider | GetProviders | Ping
Response = FindNodeResponse | GetValueResponse | PutValueResponse | GetProvidersResponse | Pong
RESPONSE_TYPES = (FindNodeResponse, GetValueResponse, PutValueResponse, GetProvidersResponse, Pong)

MESSAGE_TYPE: dict[type, MessageType] = {
    FindNode: MessageType.FIND_NODE,
    FindNodeResponse: MessageType.FIND_NODE,
    GetValue: MessageType.GET_VALUE,
    GetValueResponse: MessageType.GET_VALUE,
    PutValue: MessageType.PUT_VALUE,
    PutValueResponse: MessageType.PUT_VALUE,
    AddProvider: MessageType.ADD_PROVIDER,
    GetProviders: MessageType.GET_PROVIDERS,
    GetProvidersResponse: MessageType.GET_PROVIDERS,
    Ping: MessageType.PING,
    Pong: MessageType.PING,
}
