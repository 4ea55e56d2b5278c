"""libp2p Identify (``/ipfs/id/1.0.0``): what a peer tells about itself when asked.

The responder writes one ``Identify`` protobuf (``pb/identify.proto``) and closes the stream. Current
implementations prefix it with its unsigned-varint length; older ones wrote the bare protobuf, so
``decode`` accepts both. The public key must be the one the peer ID was made from: a peer cannot
claim to be someone else through Identify.

``signedPeerRecord`` (field 8, which go-, js-, rust- and py-libp2p send though the Identify spec text does not
list it) carries the peer's addresses in a signed peer record (``p2pnode.peer_record``). ``decode`` checks it
and gives the record only if it verifies and names the peer we are talking to; its addresses are then the
ones to use (``PeerRecordBook.addresses``), as other implementations prefer them to the unsigned ``listenAddrs``.
Addresses that are not readable multiaddrs (``transports.addresses.parse``) are left out of both, and of the
observed address: they would fail wherever they are printed or dialled.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from p2pnode import peer_record
from p2pnode.envelope import EnvelopeError
from p2pnode.framing import CodecError, encode_uvarint, read_uvarint
from p2pnode.identity import IdentityError, PeerId, decode_public_key, encode_public_key
from p2pnode.pb import identify_pb2
from p2pnode.peer_record import PeerRecord
from p2pnode.transports.addresses import readable

PROTOCOL = "/ipfs/id/1.0.0"
PROTOCOL_VERSION = "ipfs/0.1.0"
MAX_SIZE = 8192  # libp2p implementations cap an Identify message at a few KiB
MAX_PUZZLE = 32  # a dynamic-puzzle solution is XORed with a 256-bit node ID


@dataclass(frozen=True, slots=True)
class IdentifyInfo:
    public_key: bytes  # raw Ed25519 key (empty when the peer sent a key type we do not support)
    listen_addrs: tuple[bytes, ...]  # binary multiaddrs
    protocols: tuple[str, ...]
    observed_addr: bytes = b""
    protocol_version: str = PROTOCOL_VERSION
    agent_version: str = ""
    signed_peer_record: bytes = b""  # the envelope as sent
    peer_record: PeerRecord | None = None  # decoded: the record, if it verified and is the peer's own
    peer_record_error: str = ""  # decoded: why a record that came was not taken
    kad_puzzle: bytes = b""  # ours (field 100): the peer's S/Kademlia dynamic-puzzle solution


def encode(info: IdentifyInfo) -> bytes:
    """The length-prefixed message, as written on the stream."""
    pb = identify_pb2.Identify(
        protocolVersion=info.protocol_version,
        agentVersion=info.agent_version,
        publicKey=encode_public_key(info.public_key),
        listenAddrs=list(info.listen_addrs),
        protocols=list(info.protocols),
    )
    if info.observed_addr:
        pb.observedAddr = info.observed_addr
    if info.signed_peer_record:
        pb.signedPeerRecord = info.signed_peer_record
    if info.kad_puzzle:
        pb.kadPuzzle = info.kad_puzzle
    data = pb.SerializeToString()
    return encode_uvarint(len(data)) + data


def _parse(data: bytes) -> identify_pb2.Identify:
    pb = identify_pb2.Identify()
    pb.ParseFromString(data)
    return pb


def decode(data: bytes, peer_id: PeerId | None = None) -> IdentifyInfo:
    """Read everything the responder wrote; with ``peer_id``, check the key belongs to that peer."""
    if len(data) > MAX_SIZE:
        raise CodecError(f"identify message of {len(data)} bytes is over {MAX_SIZE}")
    pb = None
    try:
        prefix = read_uvarint(data, 0)
    except CodecError:
        prefix = None
    try:
        if prefix is not None and prefix[0] == len(data) - prefix[1]:
            pb = _parse(data[prefix[1]:])
        else:
            pb = _parse(data)
    except DecodeError as exc:
        raise CodecError(f"bad identify message: {exc}") from exc
    public_key = b""
    if pb.HasField("publicKey"):
        try:
            public_key = decode_public_key(pb.publicKey)
        except IdentityError:
            public_key = b""  # another key type: we cannot check it, the peer ID was checked by the handshake
    if peer_id is not None and public_key and PeerId.from_public_key(public_key) != peer_id:
        raise CodecError("identify carries a public key that is not the peer's")
    record, record_error = None, ""
    if pb.signedPeerRecord:
        try:
            record = peer_record.consume(pb.signedPeerRecord)
        except EnvelopeError as exc:
            record_error = str(exc)
        else:
            if peer_id is not None and record.peer_id != peer_id:
                record, record_error = None, f"the signed peer record is {record.peer_id.short()}'s"
    return IdentifyInfo(
        public_key=public_key,
        listen_addrs=readable(pb.listenAddrs),
        protocols=tuple(pb.protocols),
        observed_addr=(readable((pb.observedAddr,)) or (b"",))[0],
        protocol_version=pb.protocolVersion,
        agent_version=pb.agentVersion,
        signed_peer_record=pb.signedPeerRecord,
        peer_record=record,
        peer_record_error=record_error,
        kad_puzzle=pb.kadPuzzle if len(pb.kadPuzzle) <= MAX_PUZZLE else b"",
    )
