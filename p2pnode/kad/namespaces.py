"""Record namespaces that libp2p defines, and the form their records must take on the wire.

Other libp2p implementations accept a PUT_VALUE only under a namespace they hold a validator for, and read
the value in that namespace's own format, so a record under such a key must not travel in our signed
envelope (js-libp2p, reading our envelope as a public key, fails with "Invalid enum value"):

- ``/pk/`` (go-libp2p-record's ``PublicKeyValidator``): the key is ``/pk/`` + the multihash of the
  public key, i.e. the peer ID's bytes (go-libp2p writes them raw; py-libp2p writes them as hex text, which
  we accept too); the value is the peer's protobuf ``PublicKey``. The record certifies itself: it is valid
  when the key names the peer whose key the value is. All valid values for a key are the same key, so the
  selector keeps the first one found. No signature, TTL or version travels with it.
- ``/ipns/``: IPNS records carry their own signature, sequence number and validity. This node does not
  implement them, so it refuses such keys by name rather than store them in a form nobody else accepts.

Every other key is ours, and its records travel in our signed envelope (``p2pnode.kad.codec``). One of our
namespaces has rules beyond the signature:

- ``mcp:service:{name}:{peer_id}``: an MCP service descriptor (``p2pnode.mcp.services``). Valid only when
  signed by the peer the key names, and when its value is a JSON object describing service ``name`` by that
  peer (with a list of capabilities): no node can describe another, nor put junk under a service's key.

Which record is valid and which of two wins is decided per namespace in ``p2pnode.kad.records``.
"""

from __future__ import annotations

import json

from p2pnode.framing import CodecError
from p2pnode.identity import IdentityError, PeerId, peer_id_of_key
from p2pnode.kad.messages import DHTRecord

PK = b"/pk/"
IPNS = b"/ipns/"
MCP_SERVICE = b"mcp:service:"
PK_RECORD_TTL = 3600.0
"""How long a ``/pk/`` record is kept when it arrives (none travels with it): our default record TTL."""


class NamespaceError(CodecError):
    """A key or value that the libp2p namespace it falls under does not allow (a ``CodecError``: such a
    record can be neither encoded nor decoded)."""


def is_pk_key(key: bytes) -> bool:
    return key.startswith(PK)


def pk_record_owner(key: bytes, value: bytes) -> PeerId | None:
    """The peer whose public key ``value`` (a protobuf ``PublicKey`` of any type) is, if the ``/pk/`` key names
    that very peer; else None. RSA-keyed peers, whose IDs hash their key, are the ones who need such records."""
    if not key.startswith(PK):
        return None
    try:
        owner = peer_id_of_key(value)
    except IdentityError:
        return None
    suffix = key[len(PK):]
    return owner if suffix in (owner.raw, owner.raw.hex().encode()) else None


def make_pk_record(key: bytes, value: bytes, ttl: float = PK_RECORD_TTL) -> DHTRecord:
    """The ``/pk/`` record of ``key``; ``NamespaceError`` unless the key names the value's public key."""
    owner = pk_record_owner(key, value)
    if owner is None:
        raise NamespaceError(f"{key[:48]!r}: a /pk/ record's key must be /pk/ + the multihash (peer ID) of the "
                             "public key its value holds, and its value a protobuf PublicKey")
    return DHTRecord(key, value, owner, b"", ttl, 0)


def refuse_unsupported(key: bytes) -> None:
    """``NamespaceError`` for a key under a libp2p namespace this node does not implement (``/ipns/``)."""
    if key.startswith(IPNS):
        raise NamespaceError(f"{key[:48]!r}: /ipns/ records are not supported (this node does not check IPNS "
                             "signatures and sequence numbers, so it neither stores nor sends them)")


def pk_record_is_valid(record: DHTRecord) -> bool:
    return not record.signature and pk_record_owner(record.key, record.value) == record.publisher


def parse_mcp_descriptor(service: str, publisher: PeerId, value: bytes) -> dict | None:
    """The descriptor in a record's value if it is one for ``service`` by ``publisher``; else None."""
    try:
        descriptor = json.loads(value)
    except ValueError:
        return None
    if not isinstance(descriptor, dict) or descriptor.get("service") != service \
            or descriptor.get("peer_id") != publisher.to_base58() \
            or not isinstance(descriptor.get("capabilities"), list):
        return None
    return descriptor


def mcp_descriptor_is_valid(record: DHTRecord) -> bool:
    """A descriptor record's key is ``mcp:service:{name}:{peer_id}`` with the publisher's ID, and its value
    a descriptor of that service by that peer (the signature is checked by the caller)."""
    service, sep, peer = record.key[len(MCP_SERVICE):].decode("utf-8", "replace").rpartition(":")
    return (bool(sep) and bool(service) and peer == record.publisher.to_base58()
            and parse_mcp_descriptor(service, record.publisher, record.value) is not None)
