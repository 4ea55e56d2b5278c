"""The protocol table (``p2pnode.wire``): every message's protocol, codec and size; a protocol registered there
is dispatched by the host and carried by the SimPy runtime with no other code (the asyncio runtime's side is
in ``tests/runtime/test_nodes.py``)."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import pytest
import simpy
from hypothesis import given
from hypothesis import strategies as st

from experiment.latency import builtin_matrix
from p2pnode import reqresp, wire
from p2pnode.framing import encode_uvarint
from p2pnode.host import Host
from p2pnode.identity import Keypair
from p2pnode.kad.messages import FindNode, PeerInfo
from p2pnode.pubsub import codec as pubsub_codec
from p2pnode.pubsub.messages import RPC
from p2pnode.wire import KAD, MCP, PUBSUB, REQRESP, WireProtocol, protocol_of, register, round_trip
from sim.latency import LatencyModel
from sim.runtime import SimNetwork, SimRuntime
from tests.kad.test_codec import any_message as kad_messages
from tests.kad.test_codec import expected_after_round_trip
from tests.pubsub.test_codec import normalised, rpcs

app_messages = st.one_of(
    st.builds(reqresp.AppRequest, st.text(max_size=30), st.binary(max_size=200)),
    st.builds(reqresp.AppResponse, st.binary(max_size=200)),
    st.builds(reqresp.AppResponse, error=st.text(min_size=1, max_size=30)),
)
messages = st.one_of(kad_messages.map(lambda case: case[0]), rpcs, app_messages)


@given(messages)
def test_every_message_has_one_protocol_whose_size_and_frame_match_its_encoding(message):
    protocol = protocol_of(message)
    body = protocol.encode(message)
    payload, other, payloads = protocol.measure(message)
    assert payload + other == len(body)
    assert protocol.frame(message) == encode_uvarint(len(body)) + body
    expected = normalised(message) if protocol is PUBSUB else expected_after_round_trip(message)
    assert round_trip(message) == expected
    if protocol is PUBSUB:
        assert (payload, payloads) == (pubsub_codec.sizes(message)[0], len(message.publish))
    else:
        assert (payload, payloads) == (0, 0)


def test_the_protocols_and_their_libp2p_ids():
    assert protocol_of(FindNode(b"k")) is KAD and KAD.ids == ("/ipfs/kad/1.0.0",)
    assert protocol_of(RPC()) is PUBSUB and PUBSUB.ids[0] == "/meshsub/1.1.0" and PUBSUB.per_peer
    assert protocol_of(reqresp.AppRequest("p", b"")) is REQRESP and not REQRESP.per_peer
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"é": 1}}
    assert protocol_of(request) is MCP and MCP.own_streams and MCP.ids == ("/p2pnode/mcp/1.0.0",)
    assert round_trip(request) == request and sum(MCP.measure(request)) == len(MCP.encode(request))


def test_an_unregistered_message_is_a_clear_type_error():
    with pytest.raises(TypeError, match="no registered protocol carries bytes messages"):
        protocol_of(b"hello")


def test_a_protocol_name_or_message_type_cannot_be_taken_twice():
    with pytest.raises(ValueError, match="'kad' is already registered"):
        register(WireProtocol("kad", ("/x/1",), (), (), bytes, lambda b, r: b, lambda m: (0, 0, 0), 10))
    with pytest.raises(ValueError, match="RPC already belongs to protocol 'pubsub'"):
        register(WireProtocol("other", ("/x/1",), (RPC,), (), bytes, lambda b, r: b, lambda m: (0, 0, 0), 10))
    assert "other" not in wire.PROTOCOLS


# ---- a protocol plugged in from outside -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Echo:
    data: bytes


@dataclass(frozen=True, slots=True)
class EchoReply:
    data: bytes


def _decode_echo(body: bytes, response: bool) -> Echo | EchoReply:
    if body[:1] != (b"R" if response else b"Q"):
        raise ValueError("not an echo message of the expected direction")
    return (EchoReply if response else Echo)(body[1:])


ECHO = WireProtocol(
    name="test-echo",
    ids=("/p2pnode-test/echo/1.0.0",),
    requests=(Echo,),
    responses=(EchoReply,),
    encode=lambda m: (b"R" if type(m) is EchoReply else b"Q") + m.data,
    decode=_decode_echo,
    measure=lambda m: (len(m.data), 1, 1),
    max_frame=1024,
)


@contextlib.contextmanager
def echo_registered():
    """ECHO in the table for the duration (the table is global: taken out again afterwards)."""
    register(ECHO)
    try:
        yield ECHO
    finally:
        del wire.PROTOCOLS[ECHO.name]
        for kind in (Echo, EchoReply):
            del wire.BY_TYPE[kind]


def serve_echo(host: Host) -> None:
    host.serve(ECHO.name, lambda sender, message: EchoReply(message.data[::-1]))


@pytest.mark.parametrize("wire_exact", [False, True])
def test_a_registered_protocol_is_dispatched_by_the_host_and_carried_by_the_simulator(wire_exact):
    env, rng = simpy.Environment(), random.Random(1)
    names, rtt = builtin_matrix()
    net = SimNetwork(env, LatencyModel(rtt, [0, 1], [0.005] * 2, 0.0, rng), 0.0, rng, wire_exact=wire_exact)
    keys = [Keypair.from_seed(bytes([i]) * 32) for i in range(2)]
    hosts = []
    for i, key in enumerate(keys):
        net.add_endpoint(PeerInfo(key.peer_id))
        hosts.append(Host(key, SimRuntime(net, i, rng)))
        net.handlers[i] = hosts[i]
    answers, failures = [], []
    with echo_registered():
        serve_echo(hosts[1])
        hosts[0].runtime.request(net.infos[1], Echo(b"abc"), 5.0, answers.append, failures.append)
        env.run(until=5.0)
        # a host that does not serve the protocol says so (a programming error, not a lost message)
        with pytest.raises(ValueError, match="Echo is not a request of a protocol this host serves"):
            hosts[0].handle_request(net.infos[1], Echo(b"x"))
    assert (answers, failures) == ([EchoReply(b"cba")], [])
    assert net.by_type == {Echo: 1, EchoReply: 1}
    assert (net.messages, net.bytes) == (2, 2 * (1 + 1 + 3))  # varint + direction byte + 3 data bytes
