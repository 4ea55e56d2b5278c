"""The Kademlia codec: round trips, exact sizes, malformed input, framing, and the record signing payload."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pnode.framing import decode_uvarint, encode_uvarint
from p2pnode.identity import Keypair, PeerId, verify
from p2pnode.kad.codec import (
    MAX_FRAME_SIZE,
    MAX_TTL_MS,
    SIGNING_PREFIX,
    CodecError,
    FrameReader,
    decode,
    encode,
    encoded_size,
    framed_size,
    signing_payload,
    write_frame,
)
from p2pnode.kad.messages import (
    AddProvider,
    ConnectionType,
    DHTRecord,
    FindNode,
    FindNodeResponse,
    GetProviders,
    GetProvidersResponse,
    GetValue,
    GetValueResponse,
    PeerInfo,
    Ping,
    Pong,
    PutValue,
    PutValueResponse,
)
from p2pnode.kad.pb import dht_pb2, record_pb2
from p2pnode.transports.addresses import ip_multiaddr

# --- strategies ---------------------------------------------------------------------------------------

seeds = st.binary(min_size=32, max_size=32)
ed25519_ids = seeds.map(lambda seed: Keypair.from_seed(seed).peer_id)
# Peer IDs that hash their key (RSA-style): the codec must carry those too.
sha256_ids = st.binary(min_size=32, max_size=32).map(lambda digest: PeerId(b"\x12\x20" + digest))
peer_ids = st.one_of(ed25519_ids, sha256_ids)


def _repeat(n: int, byte: bytes) -> bytes:
    return byte * n


# Small random bytes, plus long runs so that lengths cross the 1-, 2- and 3-byte varint boundaries.
blobs = st.one_of(
    st.binary(max_size=300),
    st.builds(_repeat, st.integers(0, 70_000), st.binary(min_size=1, max_size=1)),
)
keys = st.binary(max_size=80)
# binary multiaddrs (the codec leaves out what is not one): IP and TCP or UDP/QUIC, or a DNS name
_addr = st.one_of(
    st.builds(lambda ip, port: ip_multiaddr(str(ip), port, "tcp").to_bytes(), st.ip_addresses(), st.integers(0, 65535)),
    st.builds(lambda ip, port: ip_multiaddr(str(ip), port, "udp", "quic-v1").to_bytes(), st.ip_addresses(),
              st.integers(0, 65535)),
    st.from_regex(r"\A[a-z]{1,20}\.example\Z").map(lambda name: Multiaddr(f"/dns4/{name}/tcp/443").to_bytes()),
)
addrs = st.lists(_addr, max_size=4).map(tuple)
peer_infos = st.builds(PeerInfo, peer_ids, addrs, st.sampled_from(ConnectionType))
peer_lists = st.lists(peer_infos, max_size=20).map(tuple)
def _pk_record(seed: bytes, hex_key: bool) -> DHTRecord:
    from p2pnode.identity import encode_public_key
    from p2pnode.kad.namespaces import make_pk_record

    peer = Keypair.from_seed(seed)
    suffix = peer.peer_id.raw.hex().encode() if hex_key else peer.peer_id.raw
    return make_pk_record(b"/pk/" + suffix, encode_public_key(peer.public_key))


# Our signed records live outside the namespaces libp2p defines; /pk/ records travel bare.
signed_records = st.builds(
    DHTRecord,
    key=st.binary(min_size=1, max_size=80).filter(lambda key: not key.startswith((b"/pk/", b"/ipns/"))),
    value=blobs,
    publisher=peer_ids,
    signature=st.binary(min_size=1, max_size=96),
    ttl=st.integers(0, MAX_TTL_MS).map(lambda ms: ms / 1000),
    version=st.integers(0, 2**64 - 1),
)
records = st.one_of(signed_records, st.builds(_pk_record, seeds, st.booleans()))

requests = st.one_of(
    st.builds(FindNode, keys),
    st.builds(GetValue, keys),
    st.builds(GetProviders, keys),
    st.builds(PutValue, records),
    st.builds(AddProvider, keys, peer_infos),
    st.just(Ping()),
)
responses = st.one_of(
    st.builds(FindNodeResponse, peer_lists),
    st.builds(GetValueResponse, st.none() | records, peer_lists),
    st.builds(PutValueResponse, records, st.booleans()),
    st.builds(GetProvidersResponse, peer_lists, peer_lists),
    st.just(Pong()),
)
any_message = st.one_of(requests.map(lambda m: (m, False)), responses.map(lambda m: (m, True)))


def expected_after_round_trip(message):
    # A refused PUT travels without its record (see codec docstring).
    if isinstance(message, PutValueResponse) and not message.stored:
        return PutValueResponse(None, stored=False)
    return message


def make_record(keypair: Keypair, key: bytes = b"/p2pnode/svc", value: bytes = b"hello", ttl=3600, version=1):
    signature = keypair.sign(signing_payload(key, value, keypair.peer_id, ttl, version))
    return DHTRecord(key, value, keypair.peer_id, signature, ttl, version)


ALICE = Keypair.from_seed(bytes(range(32)))
BOB = Keypair.from_seed(bytes(range(1, 33)))

# --- round trips and sizes ----------------------------------------------------------------------------


@given(any_message)
def test_round_trip_and_exact_sizes(case):
    message, response = case
    data = encode(message)
    assert decode(data, response=response) == expected_after_round_trip(message)
    assert encoded_size(message) == len(data)
    frame = write_frame(message)
    assert frame == encode_uvarint(len(data)) + data
    assert framed_size(message) == len(frame)


@given(any_message)
def test_decoded_message_re_encodes_identically(case):
    message, response = case
    if isinstance(message, PutValueResponse) and not message.stored:
        return  # the echoed key of a refused PUT is dropped on decoding; see the test below
    data = encode(message)
    assert encode(decode(data, response=response)) == data


def test_wire_bytes_match_the_libp2p_schema():
    # type=1 (varint, tag 0x08), key=2 (bytes, tag 0x12)
    assert encode(FindNode(b"k")) == b"\x08\x04\x12\x01k"
    assert encode(GetValue(b"k")) == b"\x08\x01\x12\x01k"
    assert encode(Ping()) == encode(Pong()) == b"\x08\x05"
    # PUT_VALUE is 0, so proto3 writes no type field at all.
    record = make_record(ALICE)
    data = encode(PutValue(record))
    assert data.startswith(b"\x12" + bytes([len(record.key)]) + record.key)
    pb = dht_pb2.Message.FromString(data)
    assert pb.type == dht_pb2.Message.PUT_VALUE
    assert pb.key == pb.record.key == record.key
    signed = record_pb2.SignedRecord.FromString(pb.record.value)
    assert (signed.value, signed.publisher) == (b"hello", ALICE.peer_id.raw)
    assert signed.signature == record.signature
    assert (signed.ttl_ms, signed.version) == (3_600_000, 1)


def test_peers_go_into_the_right_fields():
    alice = PeerInfo(ALICE.peer_id, (b"\x04\x7f\x00\x00\x01",), ConnectionType.CONNECTED)
    bob = PeerInfo(BOB.peer_id)
    pb = dht_pb2.Message.FromString(encode(GetProvidersResponse((alice,), (bob,))))
    assert pb.type == dht_pb2.Message.GET_PROVIDERS
    assert [p.id for p in pb.providerPeers] == [ALICE.peer_id.raw]
    assert list(pb.providerPeers[0].addrs) == [b"\x04\x7f\x00\x00\x01"]
    assert pb.providerPeers[0].connection == dht_pb2.Message.CONNECTED
    assert [p.id for p in pb.closerPeers] == [BOB.peer_id.raw]
    pb = dht_pb2.Message.FromString(encode(AddProvider(b"cid", alice)))
    assert (pb.type, pb.key, len(pb.providerPeers)) == (dht_pb2.Message.ADD_PROVIDER, b"cid", 1)


def test_refused_put_carries_the_key_but_no_record():
    record = make_record(ALICE)
    pb = dht_pb2.Message.FromString(encode(PutValueResponse(record, stored=False)))
    assert pb.key == record.key and not pb.HasField("record")
    refused = PutValueResponse(None, stored=False)
    assert decode(encode(PutValueResponse(record, stored=False)), response=True) == refused
    assert encode(refused) == b""  # PUT_VALUE is type 0 and there is nothing else to say
    assert decode(b"", response=True) == refused
    with pytest.raises(CodecError):
        encode(PutValueResponse(None, stored=True))
    with pytest.raises(CodecError):
        encoded_size(PutValueResponse(None, stored=True))


def test_get_value_response_without_record_has_no_record_field():
    pb = dht_pb2.Message.FromString(encode(GetValueResponse(None, ())))
    assert not pb.HasField("record")


@pytest.mark.parametrize(
    "record",
    [
        DHTRecord(b"", b"v", ALICE.peer_id, b"s", 1, 1),  # no key
        DHTRecord(b"k", b"v", ALICE.peer_id, b"", 1, 1),  # no signature
        DHTRecord(b"k", b"v", ALICE.peer_id, b"s", -1, 1),
        DHTRecord(b"k", b"v", ALICE.peer_id, b"s", float("nan"), 1),
        DHTRecord(b"k", b"v", ALICE.peer_id, b"s", float("inf"), 1),
        DHTRecord(b"k", b"v", ALICE.peer_id, b"s", (MAX_TTL_MS + 1) / 1000, 1),
        DHTRecord(b"k", b"v", ALICE.peer_id, b"s", 1, -1),
        DHTRecord(b"k", b"v", ALICE.peer_id, b"s", 1, 2**64),
    ],
)
def test_unencodable_records_are_refused_by_encode_and_encoded_size(record):
    with pytest.raises(CodecError):
        encode(PutValue(record))
    with pytest.raises(CodecError):
        encoded_size(PutValue(record))


def test_not_a_message_is_a_type_error():
    with pytest.raises(TypeError):
        encode("FIND_NODE")
    with pytest.raises(TypeError):
        encoded_size(b"")


# --- malformed input ----------------------------------------------------------------------------------


def _decode_or_codec_error(data: bytes, response: bool) -> None:
    try:
        decode(data, response=response)
    except CodecError:
        pass  # any other exception fails the test


@given(st.binary(max_size=400), st.booleans())
def test_garbage_raises_codec_error_only(data, response):
    _decode_or_codec_error(data, response)


@given(any_message, st.data())
def test_truncated_or_corrupted_messages_raise_codec_error_only(case, data):
    message, response = case
    encoded = encode(message)
    cut = data.draw(st.integers(0, len(encoded)))
    _decode_or_codec_error(encoded[:cut], response)
    if encoded:
        pos = data.draw(st.integers(0, len(encoded) - 1))
        flipped = bytearray(encoded)
        flipped[pos] ^= data.draw(st.integers(1, 255))
        _decode_or_codec_error(bytes(flipped), response)
        _decode_or_codec_error(encoded, not response)


ALICE_PB = dht_pb2.Message.Peer(id=ALICE.peer_id.raw)


def _message(**fields) -> bytes:
    return dht_pb2.Message(**fields).SerializeToString()


def _record_pb(key=b"k", **signed) -> dht_pb2.Record:
    fields = {"publisher": ALICE.peer_id.raw, "signature": b"s", "ttl_ms": 1000, "version": 1} | signed
    fields = {name: value for name, value in fields.items() if value is not None}
    return dht_pb2.Record(key=key, value=record_pb2.SignedRecord(**fields).SerializeToString())


@pytest.mark.parametrize(
    ("data", "response", "complaint"),
    [
        (b"\xff", False, "not a Kademlia protobuf"),
        (b"\x08\x07", False, "unknown Kademlia message type 7"),
        (_message(type=4, closerPeers=[dht_pb2.Message.Peer(id=b"\x99\x01x")]), True, "bad peer ID"),
        (_message(type=4, closerPeers=[dht_pb2.Message.Peer()]), True, "bad peer ID"),
        (_message(type=0, key=b"k"), False, "without a record"),
        (_message(type=0, key=b"other", record=_record_pb()), False, "does not match"),
        (_message(type=0, key=b"other", record=_record_pb()), True, "does not match"),
        (_message(type=0, record=_record_pb(key=b"")), False, "no key"),
        (_message(type=1, record=dht_pb2.Record(key=b"k")), True, "no value"),
        (_message(type=1, record=dht_pb2.Record(key=b"k", value=b"\xff")), True, "not a SignedRecord"),
        (_message(type=1, record=_record_pb(publisher=None)), True, "no publisher"),
        (_message(type=1, record=_record_pb(signature=None)), True, "no signature"),
        (_message(type=1, record=_record_pb(publisher=b"\x00\x05abc")), True, "bad peer ID in record"),
        (_message(type=1, record=_record_pb(ttl_ms=MAX_TTL_MS + 1)), True, "ttl_ms"),
        (_message(type=2, key=b"cid"), False, "one provider"),
        (_message(type=2, key=b"cid", providerPeers=[ALICE_PB] * 2), False, "one provider"),
        (_message(type=2, key=b"cid"), True, "no response"),
    ],
)
def test_malformed_messages(data, response, complaint):
    with pytest.raises(CodecError, match=complaint):
        decode(data, response=response)


def test_unknown_connection_type_is_read_as_not_connected():
    data = _message(type=4, closerPeers=[dht_pb2.Message.Peer(id=ALICE.peer_id.raw, connection=9)])
    assert decode(data, response=True) == FindNodeResponse((PeerInfo(ALICE.peer_id),))


def test_fields_we_do_not_use_are_ignored():
    data = _message(type=4, key=b"k", clusterLevelRaw=3)
    assert decode(data, response=False) == FindNode(b"k")
    record = make_record(ALICE)
    pb = dht_pb2.Message.FromString(encode(GetValueResponse(record, ())))
    pb.record.timeReceived = "2024-01-01T00:00:00Z"
    assert decode(pb.SerializeToString(), response=True) == GetValueResponse(record, ())


# --- signing payload ----------------------------------------------------------------------------------


def test_signing_payload_layout():
    payload = signing_payload(b"/p2pnode/k", b"value", ALICE.peer_id, 1.5, 7)
    assert payload.startswith(SIGNING_PREFIX + b"\x0a/p2pnode/k")
    signed = record_pb2.SignedRecord.FromString(payload[len(SIGNING_PREFIX) + 1 + 10 :])
    expected = record_pb2.SignedRecord(value=b"value", publisher=ALICE.peer_id.raw, ttl_ms=1500, version=7)
    assert signed == expected
    assert signed.signature == b""
    assert payload == signing_payload(b"/p2pnode/k", b"value", ALICE.peer_id, 1.5, 7)


@given(
    st.tuples(keys, st.binary(max_size=64), peer_ids, st.integers(0, 10**9), st.integers(0, 2**64 - 1)),
    st.tuples(keys, st.binary(max_size=64), peer_ids, st.integers(0, 10**9), st.integers(0, 2**64 - 1)),
)
def test_signing_payload_is_injective(a, b):
    # ttl in whole milliseconds, so that distinct inputs are distinct records on the wire
    a = (*a[:3], a[3] / 1000, a[4])
    b = (*b[:3], b[3] / 1000, b[4])
    assert (signing_payload(*a) == signing_payload(*b)) == (a == b)


def test_key_and_value_cannot_trade_bytes():
    peer = ALICE.peer_id
    assert signing_payload(b"ab", b"c", peer, 1, 1) != signing_payload(b"a", b"bc", peer, 1, 1)


def test_signature_survives_the_wire():
    record = make_record(ALICE, ttl=0.25, version=9)
    received = decode(encode(PutValue(record)), response=False).record
    fields = (received.value, received.publisher, received.ttl, received.version)
    public_key = received.publisher.public_key()
    assert verify(public_key, received.signature, signing_payload(received.key, *fields))
    assert not verify(public_key, received.signature, signing_payload(b"/p2pnode/other", *fields))


# --- unsigned varints ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (255, b"\xff\x01"),
        (300, b"\xac\x02"),
        (16384, b"\x80\x80\x01"),
        (2**63 - 1, b"\xff" * 8 + b"\x7f"),
    ],
)
def test_uvarint_vectors(value, encoded):
    assert encode_uvarint(value) == encoded
    assert decode_uvarint(encoded) == (value, len(encoded))


@given(st.integers(0, 2**63 - 1))
def test_uvarint_round_trip(value):
    encoded = encode_uvarint(value)
    assert decode_uvarint(encoded + b"rest") == (value, len(encoded))


@pytest.mark.parametrize("value", [-1, 2**63])
def test_uvarint_out_of_range(value):
    with pytest.raises(CodecError):
        encode_uvarint(value)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"", "truncated"),
        (b"\x80", "truncated"),
        (b"\x80\x00", "minimal"),
        (b"\x81\x80\x00", "minimal"),
        (b"\xff" * 9, "longer than 9"),
        (b"\x80" * 9 + b"\x01", "longer than 9"),
    ],
)
def test_bad_uvarints(data, complaint):
    with pytest.raises(CodecError, match=complaint):
        decode_uvarint(data)


# --- framing ------------------------------------------------------------------------------------------


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@given(st.lists(requests, max_size=6), st.data())
def test_frame_reader_handles_any_chunking(messages, data):
    stream = b"".join(write_frame(m) for m in messages)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    reader = FrameReader(response=False, max_frame_size=1 << 20)
    received = []
    for chunk in _chunks(stream, cuts):
        received.extend(reader.feed(chunk))
    assert received == messages
    assert reader.buffered == 0
    reader.close()


@given(st.lists(responses, max_size=4))
def test_frame_reader_byte_by_byte(messages):
    stream = b"".join(write_frame(m) for m in messages)
    reader = FrameReader(response=True, max_frame_size=1 << 20)
    received = [msg for i in range(len(stream)) for msg in reader.feed(stream[i : i + 1])]
    assert received == [expected_after_round_trip(m) for m in messages]


def test_unconsumed_feed_keeps_its_bytes():
    reader = FrameReader(response=False)
    reader.feed(write_frame(FindNode(b"a")))  # iterator dropped unread
    assert list(reader.feed(write_frame(FindNode(b"b")))) == [FindNode(b"a"), FindNode(b"b")]


def test_oversized_frame_is_refused_before_its_body_arrives():
    reader = FrameReader(response=False)
    assert reader.max_frame_size == MAX_FRAME_SIZE == 64 * 1024 + 16 * 1024  # a 64 KiB record fits
    with pytest.raises(CodecError, match="exceeds"):
        list(reader.feed(encode_uvarint(MAX_FRAME_SIZE + 1)))


def test_max_frame_size_is_configurable_and_inclusive():
    message = FindNode(b"x" * 100)
    size = encoded_size(message)
    assert list(FrameReader(response=False, max_frame_size=size).feed(write_frame(message))) == [message]
    with pytest.raises(CodecError, match="exceeds"):
        list(FrameReader(response=False, max_frame_size=size - 1).feed(write_frame(message)))


@pytest.mark.parametrize("header", [b"\x80\x00", b"\x85\x00", b"\xff" * 9, b"\x80" * 8 + b"\x00"])
def test_malformed_length_prefix(header):
    with pytest.raises(CodecError):
        list(FrameReader(response=False, max_frame_size=2**63).feed(header))


def test_messages_before_a_bad_frame_are_delivered():
    reader = FrameReader(response=False)
    messages = reader.feed(write_frame(Ping()) + b"\x01\xff")
    assert next(messages) == Ping()
    with pytest.raises(CodecError):
        next(messages)


def test_stream_ending_inside_a_frame():
    reader = FrameReader(response=False)
    assert list(reader.feed(write_frame(GetValue(b"key"))[:-1])) == []
    assert reader.buffered > 0
    with pytest.raises(CodecError, match="inside a frame"):
        reader.close()


# --- libp2p's /pk/ namespace: self-certifying public-key records from other implementations --------------


def _pk_record_pb(key: bytes, value: bytes) -> bytes:
    pb = dht_pb2.Message(type=dht_pb2.Message.PUT_VALUE, key=key)
    pb.record.key, pb.record.value = key, value
    return pb.SerializeToString()


@pytest.mark.parametrize("suffix", [lambda p: p.raw, lambda p: p.raw.hex().encode()], ids=["go-raw", "py-hex"])
def test_pk_records_decode_validate_and_re_encode_unchanged(suffix):
    from p2pnode.identity import encode_public_key
    from p2pnode.kad.records import RecordStore

    key = b"/pk/" + suffix(ALICE.peer_id)
    value = encode_public_key(ALICE.public_key)
    data = _pk_record_pb(key, value)
    message = decode(data, response=False)
    assert message.record.publisher == ALICE.peer_id and message.record.value == value
    assert encode(message) == data and encoded_size(message) == len(data)
    store = RecordStore()
    assert store.put(message.record, now=0.0)
    assert store.get(key, 1.0).value == value
    response = PutValueResponse(message.record, stored=True)
    assert decode(encode(response), response=True).record == message.record


def test_pk_record_naming_another_peer_is_not_a_pk_record():
    from p2pnode.identity import encode_public_key

    forged = _pk_record_pb(b"/pk/" + BOB.peer_id.raw, encode_public_key(ALICE.public_key))
    with pytest.raises(CodecError):  # not self-certifying, and not one of our signed envelopes either
        decode(forged, response=False)


def test_addresses_that_are_not_multiaddrs_are_left_out():
    # py-multiaddr takes any bytes and fails when they are printed: such an address from one peer was kept in
    # the routing table, served to others, and raised where it was printed (MCP's peer lists)
    good = ip_multiaddr("192.0.2.1", 4001, "tcp").to_bytes()
    peer = PeerInfo(ALICE.peer_id, (b"\x04\x08\x08\x08\x08\x06", good, b"", b"\x04", b"garbage"))
    (decoded,) = decode(encode(FindNodeResponse((peer,))), response=True).closer_peers
    assert decoded.addrs == (good,)
