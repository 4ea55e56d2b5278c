"""Fuzz targets: the protobuf messages a node decodes from its peers, and their varint framing.

Contract of each: any bytes decode to a message or raise the decoder's documented error (``CodecError``,
whose subclasses include ``EnvelopeError``; request/response's ``ReqRespError``); nothing else, no hang. The
addresses a message gives (Kademlia peers, Identify, peer records, relay and DCUtR) are readable multiaddrs;
AutoNAT v2's are not filtered, as its answers refer to them by index.
Where one input could go to several decoders, its first byte picks which.
"""

from __future__ import annotations

from multiaddr import Multiaddr

from fuzz._keys import ADDRS, ALICE, BOB, first_byte_picks
from fuzz._runner import target
from p2pnode import envelope, framing, identify, peer_record, reqresp
from p2pnode.autonat import messages as autonat
from p2pnode.dcutr import messages as dcutr
from p2pnode.framing import CodecError
from p2pnode.kad import codec as kad
from p2pnode.kad.messages import (
    AddProvider,
    FindNode,
    FindNodeResponse,
    GetProviders,
    GetProvidersResponse,
    GetValue,
    GetValueResponse,
    PeerInfo,
    Ping,
    PutValue,
    PutValueResponse,
)
from p2pnode.kad.records import make_record, record_is_valid
from p2pnode.pubsub import codec as pubsub
from p2pnode.pubsub.messages import RPC, Control, Graft, IHave, IWant, Message, PeerExchange, Prune, SubOpts
from p2pnode.pubsub.router import signature_ok
from p2pnode.relay import messages as relay
from p2pnode.relay import voucher


def _varint_seeds() -> list[bytes]:
    frames = b"".join(framing.encode_uvarint(len(body)) + body for body in (b"", b"x", b"y" * 200))
    return [bytes([0]) + framing.encode_uvarint(300), bytes([1]) + frames, bytes([2]) + frames[:-5]]


@target("varint", seeds=_varint_seeds)
def check_varint(data: bytes) -> None:
    """A varint, or varint-framed frames split at every byte: the frames read back are the same however the
    input is chunked."""
    which, rest = first_byte_picks(data, 3)
    if which == 0:
        try:
            value, end = framing.decode_uvarint(rest)
        except CodecError:
            return
        assert rest[:end] == framing.encode_uvarint(value)
        return
    whole, chunked = framing.FrameReader(bytes, max_frame_size=256), framing.FrameReader(bytes, max_frame_size=256)
    try:
        expected = list(whole.feed(rest))
    except CodecError:
        return
    got = []
    step = 1 if which == 1 else 7
    for at in range(0, len(rest), step):
        got.extend(chunked.feed(rest[at:at + step]))
    assert got == expected and chunked.buffered == whole.buffered


def _kad_seeds() -> list[bytes]:
    record = make_record(ALICE, b"/p2pnode/app/key", b"value", 3600.0, 7)
    peers = tuple(PeerInfo(k.peer_id, ADDRS[:2]) for k in (ALICE, BOB))
    requests = [FindNode(b"k" * 32), GetValue(b"/p2pnode/app/key"), PutValue(record), GetProviders(b"c" * 34),
                AddProvider(b"c" * 34, PeerInfo(ALICE.peer_id, ADDRS[:1])), Ping()]
    responses = [FindNodeResponse(peers), GetValueResponse(record, peers), PutValueResponse(record),
                 GetProvidersResponse(peers[:1], peers[1:])]
    return [bytes([0]) + kad.encode(m) for m in requests] + [bytes([1]) + kad.encode(m) for m in responses]


@target("kad", seeds=_kad_seeds)
def check_kad(data: bytes) -> None:
    """Requests and responses, and the check of the record one carries (signature, /pk/ namespace)."""
    which, rest = first_byte_picks(data, 2)
    try:
        message = kad.decode(rest, response=bool(which))
    except CodecError:
        return
    record = getattr(message, "record", None)
    if record is not None:
        assert record_is_valid(record) in (True, False)
    for field in ("closer_peers", "provider_peers"):
        for peer in getattr(message, field, ()):
            _readable(peer.addrs)
    if isinstance(message, AddProvider):
        _readable(message.provider.addrs)


def _pubsub_seeds() -> list[bytes]:
    unsigned = Message(ALICE.peer_id.raw, b"hello", (1).to_bytes(8, "big"), "topic")
    signed = Message(unsigned.source, unsigned.data, unsigned.seqno, unsigned.topic,
                     ALICE.sign(pubsub.signing_payload(unsigned)))
    control = Control(ihave=(IHave("topic", (b"m1", b"m2")),), iwant=(IWant((b"m3",)),), graft=(Graft("topic"),),
                      prune=(Prune("topic", (PeerExchange(BOB.peer_id.raw, b""),), 60),))
    rpcs = [RPC(subscriptions=(SubOpts(True, "topic"), SubOpts(False, "other"))), RPC(publish=(signed,)),
            RPC(control=control)]
    return [pubsub.encode(rpc) for rpc in rpcs]


@target("pubsub", seeds=_pubsub_seeds)
def check_pubsub(data: bytes) -> None:
    try:
        rpc = pubsub.decode(data)
    except CodecError:
        return
    pubsub.encoded_size(rpc)  # what the router does with every RPC it takes, and with each message
    for message in rpc.publish:
        assert signature_ok(message) in (True, False)
        pubsub.default_message_id(message)


def _identify_seeds() -> list[bytes]:
    record = peer_record.seal(ALICE, 1, ADDRS[:2])
    info = identify.IdentifyInfo(ALICE.public_key, ADDRS[:3], ("/ipfs/id/1.0.0", "/meshsub/1.1.0"),
                                 observed_addr=ADDRS[0], agent_version="p2pnode", signed_peer_record=record)
    return [identify.encode(info), identify.encode(info)[2:]]


@target("identify", seeds=_identify_seeds)
def check_identify(data: bytes) -> None:
    """Identify, with its signed peer record."""
    try:
        info = identify.decode(data, ALICE.peer_id)
    except CodecError:
        return
    record_addrs = info.peer_record.addrs if info.peer_record else ()
    _readable((*info.listen_addrs, *record_addrs, *([info.observed_addr] if info.observed_addr else [])))


def _readable(addrs) -> None:
    """Addresses a decoder gives are multiaddrs: they print, and read back to the same bytes."""
    for addr in addrs:
        assert Multiaddr(str(Multiaddr(addr))).to_bytes() == addr, addr


def _relay_seeds() -> list[bytes]:
    rsvp = relay.Reservation(1_900_000_000, ADDRS[2:3], voucher.seal(BOB, ALICE.peer_id, 1_900_000_000))
    hop = [relay.Reserve(), relay.Connect(ALICE.peer_id, ADDRS[:1]),
           relay.HopStatus(relay.Status.OK, rsvp, relay.Limit(120, 1 << 17))]
    stop = [relay.StopConnect(BOB.peer_id, relay.Limit(120, 1 << 17)), relay.StopStatus(relay.Status.OK)]
    dcutr_messages = [dcutr.HolePunchConnect(ADDRS[:2]), dcutr.HolePunchSync()]
    return ([bytes([0]) + relay.encode_hop(m) for m in hop] + [bytes([1]) + relay.encode_stop(m) for m in stop]
            + [bytes([2]) + dcutr.encode(m) for m in dcutr_messages])


@target("relay", seeds=_relay_seeds)
def check_relay(data: bytes) -> None:
    """Circuit relay v2 hop and stop messages, and DCUtR's hole-punch messages."""
    which, rest = first_byte_picks(data, 3)
    try:
        message = (relay.decode_hop, relay.decode_stop, dcutr.decode)[which](rest)
    except CodecError:
        return
    reservation = getattr(message, "reservation", None)
    _readable((*getattr(message, "addrs", ()), *(reservation.addrs if reservation else ())))


def _autonat_seeds() -> list[bytes]:
    v2 = [autonat.DialRequest(ADDRS[:2], 42), autonat.DialDataRequest(0, 30_000), autonat.DialDataResponse(b"x" * 64),
          autonat.DialResponse(autonat.ResponseStatus.OK, 0, autonat.DialStatus.OK)]
    v1 = [autonat.V1Dial(ALICE.peer_id, ADDRS[:2]), autonat.V1DialResponse(autonat.V1Status.OK, "", ADDRS[0])]
    return ([bytes([0]) + autonat.encode_v2(m) for m in v2] + [bytes([1]) + autonat.encode_v1(m) for m in v1]
            + [bytes([2]) + autonat.encode_dial_back(autonat.DialBack(42)),
               bytes([3]) + autonat.encode_dial_back(autonat.DialBackResponse())])


@target("autonat", seeds=_autonat_seeds)
def check_autonat(data: bytes) -> None:
    which, rest = first_byte_picks(data, 4)
    decoders = (autonat.decode_v2, autonat.decode_v1, autonat.decode_dial_back, autonat.decode_dial_back_response)
    try:
        decoders[which](rest)
    except CodecError:
        pass


def _reqresp_seeds() -> list[bytes]:
    return [bytes([0]) + reqresp.encode(reqresp.AppRequest("/echo/1.0.0", b"ping")),
            bytes([1]) + reqresp.encode(reqresp.AppResponse(b"pong")),
            bytes([1]) + reqresp.encode(reqresp.AppResponse(error="unsupported"))]


@target("reqresp", seeds=_reqresp_seeds)
def check_reqresp(data: bytes) -> None:
    which, rest = first_byte_picks(data, 2)
    try:
        message = reqresp.decode(rest, response=bool(which))
    except reqresp.ReqRespError:
        return
    assert reqresp.encode(message) == rest or isinstance(message, reqresp.AppResponse) and message.error == ""


def _envelope_seeds() -> list[bytes]:
    return [bytes([0]) + peer_record.seal(ALICE, 3, ADDRS[:3]),
            bytes([1]) + voucher.seal(BOB, ALICE.peer_id, 1_900_000_000),
            bytes([2]) + envelope.seal(ALICE, "libp2p-test", b"\x03\x99", b"payload")]


@target("envelope", seeds=_envelope_seeds)
def check_envelope(data: bytes) -> None:
    """Signed envelopes: peer records, relay vouchers and a bare envelope."""
    which, rest = first_byte_picks(data, 3)
    try:
        if which == 0:
            peer_record.consume(rest)
        elif which == 1:
            voucher.consume(rest, relay=BOB.peer_id, peer=ALICE.peer_id, now=1_800_000_000.0)
        else:
            envelope.consume(rest, "libp2p-test", b"\x03\x99")
    except CodecError:
        pass
