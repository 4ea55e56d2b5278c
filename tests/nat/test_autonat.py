"""AutoNAT: codecs, the server's rules (no private addresses, dial data for another IP, v1 only on the
observed IP and never over a relay, rate limits) and the client's verdicts over real hosts' runtimes."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2pnode.autonat.addresses import ObservedAddrs, public_addr
from p2pnode.autonat.client import PRIVATE, PUBLIC, UNKNOWN, AutoNatClient, ProbeResult
from p2pnode.autonat.messages import (
    DialBack,
    DialBackResponse,
    DialDataRequest,
    DialDataResponse,
    DialRequest,
    DialResponse,
    DialStatus,
    ResponseStatus,
    V1Dial,
    V1DialResponse,
    V1Status,
    decode_dial_back,
    decode_dial_back_response,
    decode_v1,
    decode_v2,
    encode_dial_back,
    encode_v1,
    encode_v2,
)
from p2pnode.autonat.server import AutoNatServer, DialChoice
from p2pnode.config import NatConfig
from p2pnode.framing import CodecError
from p2pnode.identity import Keypair

A = Keypair.from_seed(b"a" * 32).peer_id
blobs = st.lists(st.binary(max_size=30), max_size=4).map(tuple)
v2 = st.one_of(st.builds(DialRequest, blobs, st.integers(0, 2**64 - 1)),
               st.builds(DialDataRequest, st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)),
               st.builds(DialDataResponse, st.binary(max_size=4096)),
               st.builds(DialResponse, st.sampled_from(list(ResponseStatus)), st.integers(0, 2**32 - 1),
                         st.sampled_from(list(DialStatus))))
v1 = st.one_of(st.builds(V1Dial, st.just(A), blobs),
               st.builds(V1DialResponse, st.sampled_from(list(V1Status)), st.text(max_size=20), st.binary(max_size=30)))


@given(v2)
def test_v2_round_trip(message):
    assert decode_v2(encode_v2(message)) == message


@given(v1)
def test_v1_round_trip(message):
    assert decode_v1(encode_v1(message)) == message


def test_dial_back_round_trip():
    assert decode_dial_back(encode_dial_back(DialBack(2**64 - 1))) == DialBack(2**64 - 1)
    assert decode_dial_back_response(encode_dial_back(DialBackResponse())) == DialBackResponse()


def test_bad_messages_refused_by_name():
    with pytest.raises(CodecError, match="no message set"):
        decode_v2(b"")
    with pytest.raises(CodecError, match="unknown status"):
        decode_v2(b"\x12\x02\x08\x07")  # dialResponse{status: 7}
    with pytest.raises(CodecError, match="over 4096"):
        decode_v2(encode_v2(DialDataResponse(b"x" * 5000)))
    with pytest.raises(CodecError, match="neither a DIAL nor"):
        decode_v1(b"\x08\x00")


def addr(ip: str, port: int = 4001) -> bytes:
    family = "ip6" if ":" in ip else "ip4"
    return Multiaddr(f"/{family}/{ip}/udp/{port}/quic-v1").to_bytes()


def server(**overrides) -> AutoNatServer:
    return AutoNatServer(NatConfig(**overrides), can_dial=lambda a: b"/tcp/" not in Multiaddr(a).to_bytes() and
                         "quic" in str(Multiaddr(a)), public_ranges=[ipaddress.ip_network("10.99.0.0/16")])


def test_server_dials_the_first_public_address_it_can():
    request = DialRequest((addr("192.168.1.2"), Multiaddr("/ip4/8.8.8.8/tcp/1").to_bytes(), addr("8.8.4.4"),
                           addr("9.9.9.9")), 7)
    assert server().choose(A, request, "8.8.4.4", 0.0) == DialChoice(2, request.addrs[2], 0)


def test_another_ip_costs_dial_data():
    choice = server(autonat_dial_data=50_000).choose(A, DialRequest((addr("9.9.9.9"),), 1), "8.8.4.4", 0.0)
    assert choice.dial_data == 50_000


def test_lab_ranges_count_as_public():
    assert server().choose(A, DialRequest((addr("10.99.3.4"),), 1), "10.99.3.4", 0.0).index == 0
    assert public_addr(addr("10.99.3.4"), [ipaddress.ip_network("10.99.0.0/16")])
    assert not public_addr(addr("10.98.3.4"), [ipaddress.ip_network("10.99.0.0/16")])


def test_nothing_dialable_is_refused_and_floods_rate_limited():
    s = server()
    assert s.choose(A, DialRequest((addr("127.0.0.1"), addr("fe80::1")), 1), "127.0.0.1", 0.0) == \
        DialResponse(ResponseStatus.E_DIAL_REFUSED)
    answers = [s.choose(A, DialRequest((addr("8.8.8.8"),), i), "8.8.8.8", 1.0) for i in range(20)]
    assert DialResponse(ResponseStatus.E_REQUEST_REJECTED) in answers
    assert s.choose(A, DialRequest((addr("8.8.8.8"),), 1), "8.8.8.8", 0.0, relayed=True).status is \
        ResponseStatus.E_REQUEST_REJECTED


def test_v1_dials_only_the_observed_ip_and_never_over_a_relay():
    s = server()
    request = V1Dial(A, (addr("9.9.9.9"), addr("8.8.8.8", 1), addr("8.8.8.8", 2)))
    assert s.choose_v1(A, request, "8.8.8.8", 0.0) == [request.addrs[1], request.addrs[2]]
    assert s.choose_v1(A, request, "8.8.8.8", 0.0, relayed=True).status is V1Status.E_DIAL_REFUSED
    assert s.choose_v1(A, V1Dial(A, (addr("9.9.9.9"),)), "8.8.8.8", 0.0).status is V1Status.E_DIAL_REFUSED
    other = Keypair.from_seed(b"o" * 32).peer_id
    assert s.choose_v1(other, request, "8.8.8.8", 0.0).status is V1Status.E_BAD_REQUEST


def test_observed_addresses_need_votes_from_distinct_networks():
    seen = ObservedAddrs(threshold=2)
    seen.record(addr("8.8.8.8"), "1.1.1.1", 0.0)
    seen.record(addr("8.8.8.8"), "1.1.1.2", 0.0)  # the same /24: one vote
    assert seen.confirmed(1.0) == []
    seen.record(addr("8.8.8.8"), "2.2.2.2", 1.0)
    seen.record(addr("8.8.8.9"), "3.3.3.3", 1.0)
    assert seen.confirmed(2.0) == [addr("8.8.8.8")]
    assert seen.all(2.0) == [addr("8.8.8.8"), addr("8.8.8.9")]
    assert seen.confirmed(2000.0) == []  # votes age out


def client_on(make_net, answers, candidates=(b"x",)):
    """An AutoNAT client on a real host's runtime whose servers answer from ``answers`` (server index ->
    reachable or None), each answer arriving 50 ms after the probe."""
    net = make_net(seed=3)
    host = net.add_host()
    servers = [net.outsider() for _ in answers]
    changes = []

    def probe(server, addrs, done):
        verdict = answers[servers.index(server)]
        net.call_at(net.time + 0.05, lambda: done(ProbeResult(server.peer_id, addrs[0] if verdict is not None
                                                             else None, verdict)))

    client = AutoNatClient(host.runtime, NatConfig(autonat_interval=100.0, autonat_retry=10.0),
                           lambda: servers, lambda: candidates, probe, changes.append)
    return net, client, changes


def test_client_becomes_private_after_three_failed_dials(make_net):
    net, client, changes = client_on(make_net, [False] * 5)
    client.start()
    net.advance(1.0)
    assert client.status == PRIVATE and client.probes == 3
    assert [c.status for c in changes] == [PRIVATE]


def test_client_becomes_public_when_three_servers_reach_it(make_net):
    net, client, changes = client_on(make_net, [True, False, True, None, True, True])
    client.start()
    net.advance(20.0)
    assert client.status == PUBLIC and client.reachable_addrs() == (b"x",)


def test_client_without_candidates_waits(make_net):
    net, client, _ = client_on(make_net, [True] * 3, candidates=())
    client.start()
    net.advance(30.0)
    assert client.status == UNKNOWN and client.probes == 0
