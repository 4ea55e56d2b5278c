"""The sans-IO Yamux session: frames, flow control, limits, malformed input, and property tests that
shuffle the bytes between two sessions (any chunking, any interleaving of operations)."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from p2pnode.transports import yamux
from p2pnode.transports.base import StreamReset
from p2pnode.transports.yamux import (
    FLAG_ACK,
    FLAG_FIN,
    FLAG_RST,
    FLAG_SYN,
    GO_AWAY_NORMAL,
    GO_AWAY_PROTOCOL_ERROR,
    HEADER,
    INITIAL_WINDOW,
    TYPE_DATA,
    TYPE_GO_AWAY,
    TYPE_PING,
    TYPE_WINDOW_UPDATE,
    ConnectionTerminated,
    DataReceived,
    GoAwayReceived,
    PingAcknowledged,
    StreamEnded,
    StreamOpened,
    StreamWasReset,
    WindowUpdated,
    YamuxConnection,
    YamuxError,
    YamuxSession,
)


def frame(kind: int, flags: int, stream_id: int, length: int, payload: bytes = b"", version: int = 0) -> bytes:
    return struct.pack(">BBHII", version, kind, flags, stream_id, length) + payload


def frames(data: bytes) -> list[tuple[int, int, int, int, int, bytes]]:
    """Split a session's output into (version, type, flags, stream, length, payload)."""
    out = []
    pos = 0
    while pos < len(data):
        version, kind, flags, sid, length = HEADER.unpack_from(data, pos)
        pos += 12
        payload = b""
        if kind == TYPE_DATA:
            payload = data[pos : pos + length]
            pos += length
        out.append((version, kind, flags, sid, length, payload))
    return out


def pair(**kwargs) -> tuple[YamuxSession, YamuxSession]:
    return YamuxSession(is_client=True, **kwargs), YamuxSession(is_client=False, **kwargs)


def pump(a: YamuxSession, b: YamuxSession) -> tuple[list, list]:
    """Deliver everything queued both ways until quiet; the events each side saw."""
    events_a: list = []
    events_b: list = []
    while True:
        out_a, out_b = a.data_to_send(), b.data_to_send()
        if not out_a and not out_b:
            return events_a, events_b
        events_b += b.receive_data(out_a)
        events_a += a.receive_data(out_b)


# ---- framing and the basic flows -------------------------------------------------------------------------


def test_open_stream_sends_syn_and_the_remote_acks():
    client, server = pair()
    sid = client.open_stream()
    assert sid == 1 and client.open_stream() == 3
    syn = frames(client.data_to_send())
    assert syn[0] == (0, TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0, b"")
    events = server.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0))
    assert events == [StreamOpened(1)]
    assert frames(server.data_to_send()) == [(0, TYPE_WINDOW_UPDATE, FLAG_ACK, 1, 0, b"")]
    assert server.open_stream() == 2  # the server numbers its streams evenly


def test_data_fin_and_half_close():
    client, server = pair()
    sid = client.open_stream()
    assert client.send_data(sid, b"hello") == 5
    client.send_fin(sid)
    _, events = pump(client, server)
    assert events == [StreamOpened(sid), DataReceived(sid, b"hello"), StreamEnded(sid)]
    # The server can still answer on its half.
    server.send_data(sid, b"world")
    server.send_fin(sid)
    events, _ = pump(client, server)
    assert events == [DataReceived(sid, b"world"), StreamEnded(sid)]
    assert not client.has_stream(sid) and not server.has_stream(sid)
    with pytest.raises(YamuxError):
        client.send_data(sid, b"late")


def test_send_window_limits_and_window_updates_reopen_it():
    client, server = pair()
    sid = client.open_stream()
    big = b"x" * (INITIAL_WINDOW + 1000)
    assert client.send_data(sid, big) == INITIAL_WINDOW
    assert client.send_window(sid) == 0
    assert client.send_data(sid, b"more") == 0
    out = client.data_to_send()
    # Frames are at most MAX_DATA_FRAME long.
    assert all(len(p) <= yamux.MAX_DATA_FRAME for *_, p in frames(out))
    events = server.receive_data(out)
    assert sum(len(e.data) for e in events if isinstance(e, DataReceived)) == INITIAL_WINDOW
    server.data_to_send()
    # Consuming less than half a window grants nothing yet; reaching half sends one update.
    server.consume(sid, INITIAL_WINDOW // 2 - 1)
    assert server.data_to_send() == b""
    server.consume(sid, 1)
    update = frames(server.data_to_send())
    assert update == [(0, TYPE_WINDOW_UPDATE, 0, sid, INITIAL_WINDOW // 2, b"")]
    assert client.receive_data(frame(TYPE_WINDOW_UPDATE, 0, sid, INITIAL_WINDOW // 2)) == [WindowUpdated(sid)]
    assert client.send_window(sid) == INITIAL_WINDOW // 2


def test_larger_window_is_announced_with_syn_and_ack():
    client, server = pair(window=1 << 20)
    sid = client.open_stream()
    assert frames(client.data_to_send())[0][4] == (1 << 20) - INITIAL_WINDOW
    server.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, sid, (1 << 20) - INITIAL_WINDOW))
    assert server.send_window(sid) == 1 << 20
    # The server may now receive a full 1 MiB on its own streams too.
    assert frames(server.data_to_send())[0][4] == (1 << 20) - INITIAL_WINDOW


def test_reset_both_ways():
    client, server = pair()
    sid = client.open_stream()
    client.send_data(sid, b"abc")
    pump(client, server)
    server.reset_stream(sid)
    events, _ = pump(client, server)
    assert events == [StreamWasReset(sid)]
    assert not client.has_stream(sid) and not server.has_stream(sid)
    # Frames still in flight for the reset stream are dropped silently.
    assert server.receive_data(frame(TYPE_DATA, 0, sid, 3, b"xyz")) == []
    assert server.data_to_send() == b""


def test_ping_is_answered_and_acknowledged():
    client, server = pair()
    value = client.ping()
    events_client, _ = pump(client, server)
    assert events_client == [PingAcknowledged(value)]
    assert server.receive_data(frame(TYPE_PING, FLAG_SYN, 0, 77)) == []
    assert frames(server.data_to_send()) == [(0, TYPE_PING, FLAG_ACK, 0, 77, b"")]


def test_go_away_refuses_new_streams_but_existing_ones_go_on():
    client, server = pair()
    sid = client.open_stream()
    pump(client, server)
    server.go_away()
    events, _ = pump(client, server)
    assert events == [GoAwayReceived(GO_AWAY_NORMAL)]
    with pytest.raises(YamuxError):
        client.open_stream()
    client.send_data(sid, b"still fine")
    _, events = pump(client, server)
    assert events == [DataReceived(sid, b"still fine")]
    # A SYN that crosses our GO_AWAY is refused with RST.
    server.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 5, 0))
    assert frames(server.data_to_send()) == [(0, TYPE_WINDOW_UPDATE, FLAG_RST, 5, 0, b"")]


def test_inbound_stream_limit_resets_the_excess():
    server = YamuxSession(is_client=False, max_inbound_streams=3)
    for sid in (1, 3, 5):
        assert server.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, sid, 0)) == [StreamOpened(sid)]
    server.data_to_send()
    assert server.receive_data(frame(TYPE_DATA, FLAG_SYN, 7, 4, b"data")) == []
    assert frames(server.data_to_send()) == [(0, TYPE_WINDOW_UPDATE, FLAG_RST, 7, 0, b"")]
    assert server.inbound_streams == 3
    # Once one ends, a new one fits.
    server.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_RST, 1, 0))
    assert server.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 9, 0)) == [StreamOpened(9)]


def test_default_limit_is_1000_concurrent_inbound_streams():
    client, server = pair()
    for _ in range(1001):
        client.open_stream()
    events_client, events_server = pump(client, server)
    assert sum(isinstance(e, StreamOpened) for e in events_server) == 1000
    assert events_client == [StreamWasReset(2001)]


# ---- malformed input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        frame(TYPE_DATA, 0, 1, 0, version=1),  # unknown version
        frame(7, 0, 1, 0),  # unknown type
        frame(TYPE_DATA, 0, 0, 3, b"abc"),  # data on the session ID
        frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 2, 0),  # SYN with the server's own parity (we are the server)
        frame(TYPE_DATA, 0, 1, INITIAL_WINDOW + 1),  # over any window: refused on the header alone
    ],
)
def test_protocol_errors_end_the_session_with_go_away(bad):
    server = YamuxSession(is_client=False)
    events = server.receive_data(bad)
    assert len(events) == 1 and isinstance(events[0], ConnectionTerminated)
    assert frames(server.data_to_send()) == [(0, TYPE_GO_AWAY, 0, 0, GO_AWAY_PROTOCOL_ERROR, b"")]
    assert server.terminated
    assert server.receive_data(frame(TYPE_PING, FLAG_SYN, 0, 1)) == []  # dead: ignores everything
    with pytest.raises(YamuxError):
        server.open_stream()


def test_window_overrun_is_a_protocol_error():
    client, server = pair()
    sid = client.open_stream()
    pump(client, server)
    chunk = b"y" * 60000
    data = b"".join(frame(TYPE_DATA, 0, sid, len(chunk), chunk) for _ in range(5))  # 300000 > 256 KiB
    events = server.receive_data(data)
    assert sum(isinstance(e, DataReceived) for e in events) == 4
    assert isinstance(events[-1], ConnectionTerminated)


def test_duplicate_syn_is_a_protocol_error():
    server = YamuxSession(is_client=False)
    server.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0))
    assert isinstance(server.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0))[-1], ConnectionTerminated)


def test_data_on_unknown_stream_is_dropped_and_data_after_fin_resets_the_stream():
    server = YamuxSession(is_client=False)
    assert server.receive_data(frame(TYPE_DATA, 0, 11, 4, b"lost")) == []
    assert server.receive_data(frame(TYPE_WINDOW_UPDATE, 0, 11, 100)) == []
    assert server.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_RST, 11, 0)) == []
    assert server.data_to_send() == b""
    server.receive_data(frame(TYPE_DATA, FLAG_SYN | FLAG_FIN, 1, 2, b"hi"))
    server.data_to_send()
    assert server.receive_data(frame(TYPE_DATA, 0, 1, 2, b"no")) == [StreamWasReset(1)]
    assert frames(server.data_to_send()) == [(0, TYPE_WINDOW_UPDATE, FLAG_RST, 1, 0, b"")]
    assert not server.terminated


def test_frames_split_at_every_byte_boundary():
    client, server = pair()
    sid = client.open_stream()
    client.send_data(sid, b"0123456789" * 3)
    client.send_fin(sid)
    wire = client.data_to_send()
    events = []
    for i in range(len(wire)):
        events += server.receive_data(wire[i : i + 1])
    assert events[0] == StreamOpened(sid)
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == b"0123456789" * 3
    assert events[-1] == StreamEnded(sid)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data):
    for is_client in (True, False):
        session = YamuxSession(is_client=is_client, max_inbound_streams=4)
        events = session.receive_data(data)
        assert all(not isinstance(e, ConnectionTerminated) for e in events[:-1])
        if session.terminated:
            assert isinstance(events[-1], ConnectionTerminated)
            assert session.data_to_send().endswith(frame(TYPE_GO_AWAY, 0, 0, GO_AWAY_PROTOCOL_ERROR))
        assert session.inbound_streams <= 4


_header_fields = st.tuples(
    st.sampled_from([0, 0, 0, 1]),
    st.sampled_from([TYPE_DATA, TYPE_WINDOW_UPDATE, TYPE_PING, TYPE_GO_AWAY, 4, 255]),
    st.integers(0, 15),
    st.sampled_from([0, 1, 2, 3, 4, 5, 2**32 - 1]),
    st.sampled_from([0, 1, 5, 100, INITIAL_WINDOW, INITIAL_WINDOW + 1, 2**32 - 1]),
)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(_header_fields, st.binary(max_size=8)), max_size=12), st.integers(1, 50))
def test_plausible_malformed_frames_are_handled(headers, chunk):
    """Frames with valid-looking headers and any flags/IDs/lengths: never an exception, a consistent state."""
    wire = b"".join(struct.pack(">BBHII", *fields) + tail for fields, tail in headers)
    session = YamuxSession(is_client=True)
    events = []
    for i in range(0, len(wire), chunk):
        events += session.receive_data(wire[i : i + chunk])
    if session.terminated:
        assert isinstance(events[-1], ConnectionTerminated)
    opened = {e.stream_id for e in events if isinstance(e, StreamOpened)}
    assert all(sid % 2 == 0 for sid in opened)  # only the server's parity may open streams at a client
    session.data_to_send()


# ---- property tests: two sessions, any chunking, any interleaving ----------------------------------------


class Side:
    """One session plus what its application sent and received per stream."""

    def __init__(self, session: YamuxSession):
        self.session = session
        self.sent: dict[int, bytearray] = {}
        self.unsent: dict[int, bytearray] = {}  # what the application still wants to send (window-limited)
        self.received: dict[int, bytearray] = {}
        self.unconsumed: dict[int, int] = {}
        self.ended: set[int] = set()
        self.reset: set[int] = set()
        self.fin_wanted: set[int] = set()
        self.fin_sent: set[int] = set()
        self.wire = bytearray()  # bytes on their way to the other side
        self.terminated = False

    def collect(self) -> None:
        self.wire += self.session.data_to_send()

    def handle(self, events) -> None:
        for event in events:
            if isinstance(event, StreamOpened):
                self.received.setdefault(event.stream_id, bytearray())
            elif isinstance(event, DataReceived):
                assert event.stream_id not in self.ended
                self.received.setdefault(event.stream_id, bytearray()).extend(event.data)
                self.unconsumed[event.stream_id] = self.unconsumed.get(event.stream_id, 0) + len(event.data)
                assert self.unconsumed[event.stream_id] <= self.session.window  # flow control holds
            elif isinstance(event, StreamEnded):
                self.ended.add(event.stream_id)
            elif isinstance(event, StreamWasReset):
                self.reset.add(event.stream_id)
            elif isinstance(event, ConnectionTerminated):
                self.terminated = True

    def open(self) -> None:
        try:
            sid = self.session.open_stream()
        except YamuxError:
            return
        self.sent[sid] = bytearray()
        self.unsent[sid] = bytearray()

    def write(self, sid: int, data: bytes) -> None:
        if sid in self.fin_wanted or sid in self.reset:
            return
        self.sent.setdefault(sid, bytearray()).extend(data)
        self.unsent.setdefault(sid, bytearray()).extend(data)
        self.push(sid)

    def push(self, sid: int) -> None:
        pending = self.unsent.get(sid)
        if sid in self.reset or not self.session.has_stream(sid) or sid in self.fin_sent:
            return
        if pending:
            n = self.session.send_data(sid, bytes(pending))
            del pending[:n]
        if not pending and sid in self.fin_wanted:
            self.session.send_fin(sid)
            self.fin_sent.add(sid)

    def push_all(self) -> None:
        for sid in list(self.unsent):
            self.push(sid)

    def consume(self, sid: int, n: int) -> None:
        have = self.unconsumed.get(sid, 0)
        n = min(n, have)
        if n:
            self.unconsumed[sid] = have - n
            self.session.consume(sid, n)

    def consume_all(self) -> None:
        for sid in list(self.unconsumed):
            self.consume(sid, self.unconsumed[sid])

    def do_reset(self, sid: int) -> None:
        if self.session.has_stream(sid):
            self.session.reset_stream(sid)
            self.reset.add(sid)

    def streams(self) -> list[int]:
        return sorted(set(self.sent) | set(self.received))


def deliver(src: Side, dst: Side, n: int) -> None:
    chunk = bytes(src.wire[:n])
    del src.wire[:n]
    dst.handle(dst.session.receive_data(chunk))


def settle(a: Side, b: Side) -> None:
    """Let both applications read everything and send what they still have, until nothing moves."""
    for _ in range(10_000):
        for side in (a, b):
            side.consume_all()
            side.push_all()
            side.collect()
        if not a.wire and not b.wire:
            return
        deliver(a, b, len(a.wire))
        deliver(b, a, len(b.wire))
    raise AssertionError("the sessions did not settle")


def check_delivery(a: Side, b: Side) -> None:
    for src, dst in ((a, b), (b, a)):
        for sid, data in src.sent.items():
            if sid in src.reset or sid in dst.reset:
                # A reset stream delivers a prefix of what was sent.
                assert data.startswith(dst.received.get(sid, b""))
                continue
            assert dst.received.get(sid, b"") == data, f"stream {sid}"
            assert (sid in dst.ended) == (sid in src.fin_sent)


_size = st.one_of(st.integers(0, 3000), st.sampled_from([65507, 65508, 100_000, 131_072, 200_000, 262_144, 300_000]))
_op = st.one_of(
    st.tuples(st.just("open"), st.booleans()),
    st.tuples(st.just("write"), st.booleans(), st.integers(0, 7), _size),
    st.tuples(st.just("write"), st.booleans(), st.integers(0, 7), _size),
    st.tuples(st.just("consume"), st.booleans(), st.integers(0, 7), _size),
    st.tuples(st.just("fin"), st.booleans(), st.integers(0, 7)),
    st.tuples(st.just("reset"), st.booleans(), st.integers(0, 7)),
    st.tuples(st.just("deliver"), st.booleans(), st.integers(1, 100_000)),
    st.tuples(st.just("ping"), st.booleans()),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 3), st.integers(0, 3), st.lists(_op, min_size=5, max_size=80))
def test_random_interleavings_deliver_the_same_data(client_streams, server_streams, ops):
    a = Side(YamuxSession(is_client=True))
    b = Side(YamuxSession(is_client=False))
    for side, count in ((a, client_streams), (b, server_streams)):
        for _ in range(count):
            side.open()
        side.collect()
    deliver(a, b, len(a.wire))
    deliver(b, a, len(b.wire))
    counter = 0
    for op in ops:
        side, other = (a, b) if op[1] else (b, a)
        streams = side.streams()
        kind = op[0]
        if kind == "open":
            side.open()
        elif kind == "ping":
            side.session.ping()
        elif kind == "deliver":
            deliver(side, other, op[2])
        elif streams:
            sid = streams[op[2] % len(streams)]
            if kind == "write":
                counter += 1
                side.write(sid, bytes([counter % 256]) * op[3])
            elif kind == "consume":
                side.consume(sid, op[3])
            elif kind == "fin":
                side.fin_wanted.add(sid)
                side.push(sid)
            elif kind == "reset":
                side.do_reset(sid)
        side.collect()
    blocked = any(side.unsent.get(sid) for side in (a, b) for sid in side.unsent)
    settle(a, b)
    assert not a.terminated and not b.terminated
    check_delivery(a, b)
    total = sum(len(d) for side in (a, b) for d in side.sent.values())
    note_event(f"bytes sent: {'none' if not total else '< 256 KiB' if total < INITIAL_WINDOW else '>= 256 KiB'}")
    note_event(f"a sender was window-blocked before settling: {blocked}")
    note_event(f"streams reset: {bool(a.reset or b.reset)}; streams ended: {bool(a.ended or b.ended)}")
    # Every stream closed on both sides (FIN both ways) or reset is forgotten: no leak.
    for sid in set(a.streams()) | set(b.streams()):
        done_both = (sid in a.fin_sent and sid in b.fin_sent) or sid in a.reset or sid in b.reset
        if done_both:
            assert not a.session.has_stream(sid) and not b.session.has_stream(sid)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=6),
    st.lists(st.integers(1, 4000), min_size=1, max_size=20),
)
def test_any_chunking_of_the_wire_gives_the_same_data(payloads, cuts):
    client, server = pair()
    sids = []
    for payload in payloads:
        sid = client.open_stream()
        sids.append(sid)
        assert client.send_data(sid, payload) == len(payload)
        client.send_fin(sid)
    wire = client.data_to_send()
    events = []
    pos = 0
    i = 0
    while pos < len(wire):
        n = cuts[i % len(cuts)]
        events += server.receive_data(wire[pos : pos + n])
        pos += n
        i += 1
    got = {sid: bytearray() for sid in sids}
    for event in events:
        if isinstance(event, DataReceived):
            got[event.stream_id] += event.data
    assert [bytes(got[sid]) for sid in sids] == payloads
    assert {e.stream_id for e in events if isinstance(e, StreamEnded)} == set(sids)
    assert {e.stream_id for e in events if isinstance(e, StreamOpened)} == set(sids)


# ---- the asyncio glue over an in-memory link -------------------------------------------------------------


class MemoryLink:
    def __init__(self):
        self.peer: YamuxConnection | None = None
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            asyncio.get_running_loop().call_soon(self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer._receive(data)

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        self.closed = True
        peer = self.peer
        if peer is not None:
            asyncio.get_running_loop().call_soon(peer._link_lost, "closed by the remote")

    def abort(self) -> None:
        self.close()


def connected_pair(**kwargs) -> tuple[YamuxConnection, YamuxConnection]:
    link_a, link_b = MemoryLink(), MemoryLink()
    a = YamuxConnection(YamuxSession(is_client=True, **kwargs), link_a)
    b = YamuxConnection(YamuxSession(is_client=False, **kwargs), link_b)
    link_a.peer, link_b.peer = b, a
    return a, b


def run(coro, timeout: float = 5.0):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def test_glue_backpressure_and_window_updates():
    async def main():
        a, b = connected_pair()
        stream = await a.open_stream()
        payload = bytes(range(256)) * 4096  # 1 MiB: four windows
        writer = asyncio.create_task(stream.write(payload))
        remote = await b.accept_stream()
        await asyncio.sleep(0.05)
        assert not writer.done()  # blocked on the exhausted window
        assert len(remote._buffer) == INITIAL_WINDOW
        received = bytearray()
        while len(received) < len(payload):
            received += await remote.read(100_000)
        await writer
        assert received == payload
        await stream.close()
        assert await remote.read() == b""

    run(main())


def test_glue_reset_wakes_a_blocked_writer_and_close_resets_streams():
    async def main():
        a, b = connected_pair()
        stream = await a.open_stream()
        writer = asyncio.create_task(stream.write(b"z" * (INITIAL_WINDOW + 10)))
        remote = await b.accept_stream()
        await asyncio.sleep(0.01)
        remote.reset()
        with pytest.raises(StreamReset):
            await writer
        other = await a.open_stream()
        await other.write(b"x")
        remote_other = await b.accept_stream()
        await b.close()
        with pytest.raises(StreamReset):
            await other.read()
        with pytest.raises(StreamReset):
            await remote_other.read(1) and await remote_other.read(1)
        assert a.closed and b.closed

    run(main())


def test_glue_ping_round_trip():
    async def main():
        a, b = connected_pair()
        assert await a.ping() >= 0
        assert await b.ping() >= 0

    run(main())
