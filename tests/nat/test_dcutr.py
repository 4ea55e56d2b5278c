"""DCUtR's two sides with explicit time: the relayed round trip measured, the initiator dialling half a round
trip after its SYNC (when the SYNC reaches the responder, which dials at once), three attempts in all."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pnode.dcutr.holepunch import Dial, Finished, Initiator, Responder, Send
from p2pnode.dcutr.messages import HolePunchConnect, HolePunchSync, decode, encode
from p2pnode.framing import CodecError
from p2pnode.transports.addresses import ip_multiaddr

B_ADDRS = (b"b-addr",)
A_ADDRS = (b"a-addr-1", b"a-addr-2")


_addrs = st.lists(st.builds(lambda ip, port: ip_multiaddr(str(ip), port, "udp", "quic-v1").to_bytes(),
                            st.ip_addresses(), st.integers(0, 65535)), max_size=5).map(tuple)


@given(st.one_of(st.just(HolePunchSync()), st.builds(HolePunchConnect, _addrs)))
def test_round_trip(message):
    assert decode(encode(message)) == message


def test_addresses_that_are_not_multiaddrs_are_left_out():
    good = ip_multiaddr("192.0.2.1", 4001, "udp", "quic-v1").to_bytes()
    assert decode(encode(HolePunchConnect((b"b-addr", good, b"\x04")))) == HolePunchConnect((good,))


def test_bad_messages_refused():
    with pytest.raises(CodecError, match="without a"):
        decode(b"")
    with pytest.raises(CodecError, match="over the 4096-byte limit"):
        decode(b"\x12" * 5000)


def exchange(one_way: float, start: float = 0.0):
    """One attempt over a relayed path of ``one_way`` seconds each way; the two sides' dials."""
    b, a = Initiator(B_ADDRS), Responder(A_ADDRS)
    (send,) = b.start(start)
    assert send == Send(HolePunchConnect(B_ADDRS))
    (answer,) = a.receive(send.message, start + one_way)
    sync, b_dial = b.receive(answer.message, start + 2 * one_way)
    assert sync == Send(HolePunchSync())
    (a_dial,) = a.receive(sync.message, start + 3 * one_way)
    return b, a, b_dial, a_dial


def test_both_sides_dial_at_the_same_moment():
    b, _, b_dial, a_dial = exchange(0.040)
    assert b.rtt == pytest.approx(0.080)
    assert b_dial == Dial(A_ADDRS, pytest.approx(0.120), 1)
    assert a_dial == Dial(B_ADDRS, pytest.approx(0.120), 1)


def test_three_attempts_then_failure():
    b, a, _, _ = exchange(0.010)
    actions = b.dial_done(False, 1.0)
    assert actions == [Send(HolePunchConnect(B_ADDRS), new_stream=True)]  # attempt 2: a new exchange
    assert b.attempt == 2
    a.receive(actions[0].message, 1.01)
    b.receive(HolePunchConnect(A_ADDRS), 1.02)
    assert b.dial_done(False, 2.0)[0].new_stream and b.attempt == 3
    b.receive(HolePunchConnect(A_ADDRS), 2.02)
    (finished,) = b.dial_done(False, 3.0, "timeout")
    assert finished == Finished(False, 3, pytest.approx(0.02), "timeout")
    assert b.dial_done(True, 4.0) == []  # done is done


def test_success_on_the_second_attempt():
    b, _, _, _ = exchange(0.010)
    b.dial_done(False, 1.0)
    b.receive(HolePunchConnect(A_ADDRS), 1.05)
    assert b.dial_done(True, 1.2) == [Finished(True, 2, pytest.approx(0.05))]


def test_a_peer_without_addresses_counts_as_a_failed_attempt():
    b = Initiator(B_ADDRS, attempts=1)
    b.start(0.0)
    assert b.receive(HolePunchConnect(()), 0.1) == [Finished(False, 1, pytest.approx(0.1),
                                                            "the peer sent no address to punch towards")]


def test_responder_ignores_sync_before_connect():
    assert Responder(A_ADDRS).receive(HolePunchSync(), 0.0) == []
