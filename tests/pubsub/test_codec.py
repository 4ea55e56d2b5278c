"""The GossipSub codec: round trips, exact sizes, wire bytes, malformed input, framing, signing payload."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pnode.framing import decode_uvarint, encode_uvarint
from p2pnode.identity import Keypair, PeerId, verify
from p2pnode.pubsub.codec import (
    MAX_FRAME_SIZE,
    MAX_MESSAGE_SIZE,
    SIGNING_PREFIX,
    CodecError,
    FrameReader,
    decode,
    default_message_id,
    encode,
    encoded_size,
    framed_size,
    message_size,
    signing_payload,
    sizes,
    write_frame,
)
from p2pnode.pubsub.messages import (
    RPC,
    Control,
    Graft,
    IHave,
    IWant,
    Message,
    PeerExchange,
    Prune,
    SubOpts,
)
from p2pnode.pubsub.pb import rpc_pb2

# --- strategies ---------------------------------------------------------------------------------------


def _repeat(n: int, byte: bytes) -> bytes:
    return byte * n


# Small random bytes, plus long runs so that lengths cross the 1-, 2- and 3-byte varint boundaries.
blobs = st.one_of(
    st.binary(max_size=200),
    st.builds(_repeat, st.integers(0, 70_000), st.binary(min_size=1, max_size=1)),
)
small = st.binary(max_size=48)
# Any text (non-ASCII included; hypothesis leaves out lone surrogates, which are not UTF-8), and long
# topics whose length needs a two-byte varint.
topics = st.one_of(st.text(max_size=40), st.builds(_repeat, st.integers(100, 300), st.sampled_from(["t", "é"])))
message_ids = st.lists(small, max_size=8).map(tuple)

messages = st.builds(Message, source=small, data=blobs, seqno=small, topic=topics, signature=small, key=small)
subopts = st.builds(SubOpts, st.booleans(), topics)
prunes = st.builds(
    Prune,
    topics,
    st.lists(st.builds(PeerExchange, small, small), max_size=4).map(tuple),
    st.none() | st.integers(0, 2**64 - 1),
)
controls = st.builds(
    Control,
    ihave=st.lists(st.builds(IHave, topics, message_ids), max_size=3).map(tuple),
    iwant=st.lists(st.builds(IWant, message_ids), max_size=3).map(tuple),
    graft=st.lists(st.builds(Graft, topics), max_size=3).map(tuple),
    prune=st.lists(prunes, max_size=3).map(tuple),
)
rpcs = st.builds(
    RPC,
    subscriptions=st.lists(subopts, max_size=4).map(tuple),
    publish=st.lists(messages, max_size=3).map(tuple),
    control=st.none() | controls,
)


def normalised(rpc: RPC) -> RPC:
    """What ``rpc`` decodes back to: an empty ``Control`` is not sent, so it comes back as None."""
    return replace(rpc, control=rpc.control or None)


ALICE = Keypair.from_seed(bytes(range(32)))


def signed_message(keypair: Keypair, data: bytes = b"hello", topic: str = "blocks", seqno: int = 1) -> Message:
    unsigned = Message(source=keypair.peer_id.raw, data=data, seqno=seqno.to_bytes(8, "big"), topic=topic)
    return replace(unsigned, signature=keypair.sign(signing_payload(unsigned)))


# --- round trips and sizes ----------------------------------------------------------------------------


@given(rpcs)
def test_round_trip_and_exact_sizes(rpc):
    data = encode(rpc)
    assert decode(data) == normalised(rpc)
    assert encoded_size(rpc) == len(data)
    frame = write_frame(rpc)
    assert frame == encode_uvarint(len(data)) + data
    assert framed_size(rpc) == len(frame)


@given(rpcs)
def test_decoded_rpc_re_encodes_identically(rpc):
    data = encode(rpc)
    assert encode(decode(data)) == data


@given(rpcs)
def test_sizes_split_data_from_overhead(rpc):
    data, overhead = sizes(rpc)
    assert data + overhead == encoded_size(rpc)
    # Top-level protobuf fields just concatenate, so each part is the size of an RPC holding only it.
    assert data == len(encode(RPC(publish=rpc.publish)))
    assert overhead == len(encode(RPC(subscriptions=rpc.subscriptions, control=rpc.control)))


@given(messages)
def test_message_size_is_the_marshalled_message(msg):
    pb = rpc_pb2.RPC.FromString(encode(RPC(publish=(msg,)))).publish[0]
    assert message_size(msg) == len(pb.SerializeToString())


def test_empty_rpc_is_empty():
    assert encode(RPC()) == b""
    assert encoded_size(RPC()) == 0
    assert sizes(RPC()) == (0, 0)
    assert write_frame(RPC()) == b"\x00"
    assert decode(b"") == RPC()
    # An all-empty Control is not worth a field.
    assert encode(RPC(control=Control())) == b""


# --- wire bytes, worked out by hand from the protobuf wire format ---------------------------------------
# A field's tag is (field number << 3) | wire type, with wire type 0 for varints and 2 for length-delimited
# fields; a length-delimited field is tag, varint length, content.


def _ld(field: int, content: bytes) -> bytes:
    """A length-delimited field, for content shorter than 128 bytes."""
    assert len(content) < 128
    return bytes([field << 3 | 2, len(content)]) + content


def _varint_field(field: int, value: int) -> bytes:
    """A varint field, for values below 128."""
    assert value < 128
    return bytes([field << 3 | 0, value])


def test_subscription_bytes():
    # RPC.subscriptions = 1 -> tag 0x0a; SubOpts.subscribe = 1 (varint) -> 0x08; SubOpts.topicid = 2 -> 0x12
    expected = b"\x0a\x05" + b"\x08\x01" + b"\x12\x01t"
    assert _ld(1, _varint_field(1, 1) + _ld(2, b"t")) == expected
    assert encode(RPC(subscriptions=(SubOpts(subscribe=True, topic="t"),))) == expected
    # Unsubscribing writes subscribe=false explicitly.
    assert encode(RPC(subscriptions=(SubOpts(False, "t"),))) == b"\x0a\x05\x08\x00\x12\x01t"


def test_published_message_bytes():
    msg = Message(source=b"A", data=b"d", seqno=b"\x07", topic="t", signature=b"S", key=b"K")
    # Message: from = 1, data = 2, seqno = 3, topic = 4, signature = 5, key = 6 (all length-delimited)
    body = b"\x0a\x01A" + b"\x12\x01d" + b"\x1a\x01\x07" + b"\x22\x01t" + b"\x2a\x01S" + b"\x32\x01K"
    assert body == _ld(1, b"A") + _ld(2, b"d") + _ld(3, b"\x07") + _ld(4, b"t") + _ld(5, b"S") + _ld(6, b"K")
    expected = b"\x12\x12" + body  # RPC.publish = 2
    assert encode(RPC(publish=(msg,))) == expected
    assert message_size(msg) == len(body) == 18
    assert signing_payload(msg) == b"libp2p-pubsub:" + b"\x0a\x01A\x12\x01d\x1a\x01\x07\x22\x01t"
    # StrictNoSign: from, seqno, signature and key are absent, not empty; data and topic are always written.
    assert encode(RPC(publish=(Message(b"", b"", b"", "t"),))) == b"\x12\x05" + b"\x12\x00" + b"\x22\x01t"


def test_control_bytes():
    control = Control(
        ihave=(IHave("t", (b"x", b"yz")),),
        iwant=(IWant((b"x",)),),
        graft=(Graft("g"),),
        prune=(Prune("p", (PeerExchange(b"P", b"R"),), backoff=60),),
    )
    ihave = _ld(1, _ld(1, b"t") + _ld(2, b"x") + _ld(2, b"yz"))  # ControlIHave: topicID = 1, messageIDs = 2
    iwant = _ld(2, _ld(1, b"x"))  # ControlIWant: messageIDs = 1
    graft = _ld(3, _ld(1, b"g"))  # ControlGraft: topicID = 1
    peer = _ld(1, b"P") + _ld(2, b"R")  # PeerInfo: peerID = 1, signedPeerRecord = 2
    prune = _ld(4, _ld(1, b"p") + _ld(2, peer) + _varint_field(3, 60))  # ControlPrune: topicID, peers, backoff
    expected = _ld(3, ihave + iwant + graft + prune)  # RPC.control = 3
    # The same, byte by byte: 12 + 5 + 5 + 15 = 37 = 0x25 bytes of ControlMessage.
    assert expected == (
        b"\x1a\x25"  # RPC.control, 37 bytes
        b"\x0a\x0a" b"\x0a\x01t" b"\x12\x01x" b"\x12\x02yz"  # ihave: topicID "t", messageIDs "x", "yz"
        b"\x12\x03" b"\x0a\x01x"  # iwant: messageIDs "x"
        b"\x1a\x03" b"\x0a\x01g"  # graft: topicID "g"
        b"\x22\x0d" b"\x0a\x01p" b"\x12\x06" b"\x0a\x01P" b"\x12\x01R" b"\x18\x3c"  # prune: "p", peer, 60 s
    )
    assert encode(RPC(control=control)) == expected
    assert decode(expected) == RPC(control=control)


def test_fields_go_out_in_field_number_order():
    rpc = RPC((SubOpts(True, "a"),), (Message(b"", b"", b"", "a"),), Control(graft=(Graft("a"),)))
    data = encode(rpc)
    assert data[0] == 0x0A
    assert data[7] == 0x12
    assert data[14] == 0x1A


# --- decoding what others may send ----------------------------------------------------------------------


def _rpc(**fields) -> bytes:
    return rpc_pb2.RPC(**fields).SerializeToString()


def test_absent_optional_fields():
    # A SubOpts without `subscribe` unsubscribes; absent topic IDs and bytes read as empty.
    data = _rpc(
        subscriptions=[rpc_pb2.RPC.SubOpts(topicid="t"), rpc_pb2.RPC.SubOpts()],
        control=rpc_pb2.ControlMessage(
            ihave=[rpc_pb2.ControlIHave()],
            graft=[rpc_pb2.ControlGraft()],
            prune=[rpc_pb2.ControlPrune(topicID="p", peers=[rpc_pb2.PeerInfo()])],
        ),
    )
    assert decode(data) == RPC(
        subscriptions=(SubOpts(False, "t"), SubOpts(False, "")),
        control=Control(ihave=(IHave("", ()),), graft=(Graft(""),), prune=(Prune("p", (PeerExchange(b""),)),)),
    )


def test_backoff_absent_is_none_but_zero_is_zero():
    absent = _rpc(control=rpc_pb2.ControlMessage(prune=[rpc_pb2.ControlPrune(topicID="p")]))
    zero = _rpc(control=rpc_pb2.ControlMessage(prune=[rpc_pb2.ControlPrune(topicID="p", backoff=0)]))
    assert decode(absent).control.prune[0].backoff is None
    assert decode(zero).control.prune[0].backoff == 0
    assert encode(decode(zero)) == zero


def test_empty_or_absent_control_is_none():
    assert decode(b"\x1a\x00").control is None  # present but empty
    assert decode(_rpc(subscriptions=[rpc_pb2.RPC.SubOpts(subscribe=True, topicid="t")])).control is None


def test_idontwant_is_ignored():
    idontwant = [rpc_pb2.ControlIDontWant(messageIDs=[b"m1", b"m2"])]
    only = _rpc(control=rpc_pb2.ControlMessage(idontwant=idontwant))
    assert decode(only) == RPC()
    mixed = _rpc(control=rpc_pb2.ControlMessage(graft=[rpc_pb2.ControlGraft(topicID="g")], idontwant=idontwant))
    assert decode(mixed) == RPC(control=Control(graft=(Graft("g"),)))


def test_unknown_fields_are_ignored():
    # field 15 (varint) in the RPC and in a Message, as a newer peer might send
    msg = rpc_pb2.Message(topic="t", data=b"d").SerializeToString() + b"\x78\x01"
    data = b"\x12" + bytes([len(msg)]) + msg + b"\x78\x05"
    assert decode(data) == RPC(publish=(Message(b"", b"d", b"", "t"),))


# --- malformed input ----------------------------------------------------------------------------------


def _decode_or_codec_error(data: bytes) -> None:
    try:
        decode(data)
    except CodecError:
        pass  # any other exception fails the test


@given(st.binary(max_size=400))
def test_garbage_raises_codec_error_only(data):
    _decode_or_codec_error(data)


@given(rpcs, st.data())
def test_truncated_or_corrupted_rpcs_raise_codec_error_only(rpc, data):
    encoded = encode(rpc)
    cut = data.draw(st.integers(0, len(encoded)))
    _decode_or_codec_error(encoded[:cut])
    if encoded:
        pos = data.draw(st.integers(0, len(encoded) - 1))
        flipped = bytearray(encoded)
        flipped[pos] ^= data.draw(st.integers(1, 255))
        _decode_or_codec_error(bytes(flipped))


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"\xff", "not a pubsub protobuf RPC"),
        (b"\x0a\x05\x08\x01\x12\x01", "not a pubsub protobuf RPC"),  # truncated
        (b"\x12\x00", "no topic"),  # a published Message without its required topic
        (b"\x12\x03\x12\x01d", "no topic"),
        (b"\x12\x03\x22\x01\xff", "not valid UTF-8"),  # Message.topic
        (b"\x12\x04\x22\x02\xc3\x28", "not valid UTF-8"),  # Message.topic, truncated sequence
        (b"\x0a\x03\x12\x01\xff", "not valid UTF-8"),  # SubOpts.topicid
        (b"\x1a\x05\x0a\x03\x0a\x01\xff", "not valid UTF-8"),  # ControlIHave.topicID
        (b"\x1a\x05\x1a\x03\x0a\x01\xff", "not valid UTF-8"),  # ControlGraft.topicID
        (b"\x1a\x05\x22\x03\x0a\x01\xff", "not valid UTF-8"),  # ControlPrune.topicID
    ],
)
def test_malformed_rpcs(data, complaint):
    with pytest.raises(CodecError, match=complaint):
        decode(data)


def test_codec_error_is_a_value_error():
    assert issubclass(CodecError, ValueError)


@pytest.mark.parametrize(
    "rpc",
    [
        RPC(subscriptions=(SubOpts(True, "\ud800"),)),  # a lone surrogate has no UTF-8 encoding
        RPC(publish=(Message(b"", b"", b"", "\udcff"),)),
        RPC(control=Control(ihave=(IHave("\ud800", ()),))),
        RPC(control=Control(graft=(Graft("\ud800"),))),
        RPC(control=Control(prune=(Prune("\ud800"),))),
        RPC(control=Control(prune=(Prune("p", backoff=-1),))),
        RPC(control=Control(prune=(Prune("p", backoff=2**64),))),
    ],
)
def test_unencodable_rpcs_are_refused_by_encode_and_encoded_size(rpc):
    with pytest.raises(CodecError):
        encode(rpc)
    with pytest.raises(CodecError):
        encoded_size(rpc)


def test_not_an_rpc_is_a_type_error():
    with pytest.raises(TypeError):
        encode(SubOpts(True, "t"))
    with pytest.raises(TypeError):
        encoded_size(b"")


# --- signing payload and message IDs ------------------------------------------------------------------


def _marshalled(msg: Message) -> bytes:
    """``msg``'s bytes inside an encoded RPC: what follows the publish tag and the length prefix."""
    data = encode(RPC(publish=(msg,)))
    length, start = decode_uvarint(data, 1)
    assert start + length == len(data)
    return data[start:]


@given(messages)
def test_signing_payload_leaves_out_signature_and_key(msg):
    payload = signing_payload(msg)
    assert payload.startswith(SIGNING_PREFIX)
    assert SIGNING_PREFIX == b"libp2p-pubsub:"
    pb = rpc_pb2.Message.FromString(payload[len(SIGNING_PREFIX) :])
    assert not pb.HasField("signature") and not pb.HasField("key")
    assert (getattr(pb, "from"), pb.data, pb.seqno, pb.topic) == (msg.source, msg.data, msg.seqno, msg.topic)
    # It is the Message exactly as it is marshalled inside an RPC, minus those two fields.
    assert payload == SIGNING_PREFIX + _marshalled(replace(msg, signature=b"", key=b""))
    assert signing_payload(replace(msg, signature=b"other", key=b"other")) == payload


def test_signature_survives_the_wire():
    msg = signed_message(ALICE)
    (received,) = decode(encode(RPC(publish=(msg,)))).publish
    public_key = PeerId(received.source).public_key()  # Ed25519: inlined in the peer ID, so no `key`
    assert received.key == b""
    assert verify(public_key, received.signature, signing_payload(received))
    assert not verify(public_key, received.signature, signing_payload(replace(received, data=b"tampered")))
    assert not verify(public_key, received.signature, signing_payload(replace(received, topic="other")))


def test_default_message_id_is_from_then_seqno():
    msg = Message(source=b"\x00\x24peer", data=b"d", seqno=(5).to_bytes(8, "big"), topic="t")
    assert default_message_id(msg) == b"\x00\x24peer" + b"\x00" * 7 + b"\x05"
    assert default_message_id(replace(msg, data=b"other", signature=b"s")) == default_message_id(msg)


# --- framing ------------------------------------------------------------------------------------------


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@given(st.lists(rpcs, max_size=5), st.data())
def test_frame_reader_handles_any_chunking(batch, data):
    stream = b"".join(write_frame(rpc) for rpc in batch)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    reader = FrameReader()
    received = []
    for chunk in _chunks(stream, cuts):
        received.extend(reader.feed(chunk))
    assert received == [normalised(rpc) for rpc in batch]
    assert reader.buffered == 0
    reader.close()


@given(st.lists(rpcs.filter(lambda rpc: encoded_size(rpc) < 2000), max_size=4))
def test_frame_reader_byte_by_byte(batch):
    stream = b"".join(write_frame(rpc) for rpc in batch)
    reader = FrameReader()
    received = [rpc for i in range(len(stream)) for rpc in reader.feed(stream[i : i + 1])]
    assert received == [normalised(rpc) for rpc in batch]
    reader.close()


def test_unconsumed_feed_keeps_its_bytes():
    a, b = RPC(control=Control(graft=(Graft("a"),))), RPC(control=Control(graft=(Graft("b"),)))
    reader = FrameReader()
    reader.feed(write_frame(a))  # iterator dropped unread
    assert list(reader.feed(write_frame(b))) == [a, b]


def test_default_limit_fits_a_full_size_message():
    assert MAX_FRAME_SIZE > MAX_MESSAGE_SIZE == 1 << 20
    source = ALICE.peer_id.raw
    msg = Message(source, b"\x00" * MAX_MESSAGE_SIZE, bytes(8), "topic", signature=b"s" * 64, key=b"k" * 300)
    rpc = RPC(subscriptions=(SubOpts(True, "topic"),), publish=(msg,), control=Control(graft=(Graft("topic"),)))
    assert list(FrameReader().feed(write_frame(rpc))) == [rpc]


def test_oversized_frame_is_refused_before_its_body_arrives():
    reader = FrameReader()
    assert reader.max_frame_size == MAX_FRAME_SIZE
    with pytest.raises(CodecError, match="exceeds"):
        list(reader.feed(encode_uvarint(MAX_FRAME_SIZE + 1)))


def test_max_frame_size_is_configurable_and_inclusive():
    rpc = RPC(publish=(Message(b"src", b"x" * 100, b"1", "t"),))
    size = encoded_size(rpc)
    assert list(FrameReader(max_frame_size=size).feed(write_frame(rpc))) == [rpc]
    with pytest.raises(CodecError, match="exceeds"):
        list(FrameReader(max_frame_size=size - 1).feed(write_frame(rpc)))


@pytest.mark.parametrize("header", [b"\x80\x00", b"\x85\x00", b"\xff" * 9, b"\x80" * 8 + b"\x00"])
def test_malformed_length_prefix(header):
    with pytest.raises(CodecError):
        list(FrameReader(max_frame_size=2**63).feed(header))


def test_rpcs_before_a_bad_frame_are_delivered():
    good = RPC(subscriptions=(SubOpts(True, "t"),))
    reader = FrameReader()
    received = reader.feed(write_frame(good) + b"\x02\x12\x00")  # second frame: a Message without a topic
    assert next(received) == good
    with pytest.raises(CodecError, match="no topic"):
        next(received)


def test_stream_ending_inside_a_frame():
    reader = FrameReader()
    assert list(reader.feed(write_frame(RPC(subscriptions=(SubOpts(True, "t"),)))[:-1])) == []
    assert reader.buffered > 0
    with pytest.raises(CodecError, match="inside a frame"):
        reader.close()
