"""Self-check of the py-libp2p 0.8.1 interop harness: two py-libp2p peers talk to each other, over TCP
(Noise + Yamux) and over QUIC-v1, on 127.0.0.1 (ids tcp, quic) and on ::1 (tcp-ip6, quic-ip6), through
tests/interop/pylibp2p.py. No p2pnode code is involved, so a failure here is in the harness or in py-libp2p
itself, never in our node.

Needs the interop venv (scripts/setup-interop.sh). Run:
    .venv/bin/python -m pytest -p no:cacheprovider -o markers=interop -m interop tests/interop -v
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid

import pytest

from tests.interop.pylibp2p import PeerError, PyLibp2pPeer, interop_python, interop_venv

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        interop_python() is None,
        reason=f"no py-libp2p interop venv at {interop_venv()} (run scripts/setup-interop.sh, or set INTEROP_VENV)",
    ),
]

TOPIC = "interop-selfcheck"
KAD = "/ipfs/kad/1.0.0"
MESHSUB = "/meshsub/1.1.0"
# --seed N means the Ed25519 seed sha256(str(N).encode()); these IDs were derived independently of py-libp2p.
SEED1_PEER_ID = "12D3KooWPcfGdBCrdxX9nqGAdPAdkPMqfKEDjbZWGA4UFBJuY4rP"
SEED2_PEER_ID = "12D3KooWSXdVD6y6zg28gXAnEU1CyofLSgdKbxN6z4ShjUj4XuYs"
SEED3_PEER_ID = "12D3KooWDhZ9Di28H9RThwPLGmFQgBLa8YobJ1eNddCwNRpTYtWP"  # never started: a peer nobody answers for


def _until(fn, timeout: float = 10.0, interval: float = 0.1):
    """Poll fn() until it returns something truthy; return it (or fail after timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def _have_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


LISTEN = {
    ("tcp", "ip4"): "/ip4/127.0.0.1/tcp/0",
    ("quic", "ip4"): "/ip4/127.0.0.1/udp/0/quic-v1",
    ("tcp", "ip6"): "/ip6/::1/tcp/0",
    ("quic", "ip6"): "/ip6/::1/udp/0/quic-v1",
}


@pytest.fixture(params=list(LISTEN), ids=lambda p: p[0] if p[1] == "ip4" else f"{p[0]}-{p[1]}")
def pair(request):
    transport, family = request.param
    if family == "ip6" and not _have_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this machine")
    listen = LISTEN[request.param]
    a = PyLibp2pPeer(name=f"A-{transport}-{family}")
    b = PyLibp2pPeer(name=f"B-{transport}-{family}")
    with a, b:
        t0 = time.monotonic()
        a.start(transport, listen, seed=1, topic=TOPIC)
        b.start(transport, listen, seed=2, topic=TOPIC)
        startup = time.monotonic() - t0
        try:
            yield transport, family, a, b, startup
        finally:
            rc_a, rc_b = a.close(), b.close()
            # Shown by pytest when the test fails.
            print(f"--- A stderr ---\n{a.stderr_tail(60)}\n--- B stderr ---\n{b.stderr_tail(60)}")
        assert (rc_a, rc_b) == (0, 0), f"peers did not exit cleanly on quit: A rc={rc_a}, B rc={rc_b}"


@contextlib.contextmanager
def black_hole(transport: str, family: str):
    """A local address that never answers: TCP accepts into the backlog, UDP swallows datagrams."""
    af, host = (socket.AF_INET, "127.0.0.1") if family == "ip4" else (socket.AF_INET6, "::1")
    if transport == "tcp":
        s = socket.socket(af, socket.SOCK_STREAM)
        s.bind((host, 0))
        s.listen(8)
        addr = f"/{family}/{host}/tcp/{s.getsockname()[1]}"
    else:
        s = socket.socket(af, socket.SOCK_DGRAM)
        s.bind((host, 0))
        addr = f"/{family}/{host}/udp/{s.getsockname()[1]}/quic-v1"
    try:
        yield f"{addr}/p2p/{SEED3_PEER_ID}"
    finally:
        s.close()


def test_two_pylibp2p_peers(pair):
    transport, family, a, b, startup = pair
    timings = {"startup": startup}
    t = time.monotonic()

    def lap(name: str) -> None:
        nonlocal t
        now = time.monotonic()
        timings[name] = now - t
        t = now

    # Seeds are deterministic, and the advertised addresses carry the peer ID.
    assert (a.peer_id, b.peer_id) == (SEED1_PEER_ID, SEED2_PEER_ID)
    want = "/udp/" if transport == "quic" else "/tcp/"
    for p in (a, b):
        assert p.addrs and all(x.startswith(f"/{family}/") and want in x and x.endswith(f"/p2p/{p.peer_id}")
                               for x in p.addrs), p.addrs
    if transport == "quic":
        assert all(x.split("/p2p/")[0].endswith("/quic-v1") for x in b.addrs)

    # connect (A dials B)
    assert a.call("connect", addr=b.addrs[0])["peer_id"] == b.peer_id
    assert b.peer_id in a.call("peers")["peers"]
    _until(lambda: a.peer_id in b.call("peers")["peers"])
    lap("connect")

    # identify, both directions (A -> B on its outbound connection, B -> A on its inbound one)
    for x, y in ((a, b), (b, a)):
        info = x.call("identify", peer=y.peer_id)
        assert info["agent_version"] == "py-libp2p/0.8.1"
        assert info["protocol_version"] == "ipfs/0.1.0"
        assert {KAD, MESHSUB, "/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"} <= set(info["protocols"])
        assert info["public_key_hex"] == y.call("info")["public_key_hex"]
        assert info["public_key_hex"].startswith("08011220")  # protobuf PublicKey, KeyType Ed25519
        assert info["listen_addrs"] and all("/p2p/" not in m for m in info["listen_addrs"])
        # py-libp2p 0.8.1 always writes the observed address as .../tcp/<port> (also over QUIC) and leaves it
        # out over IPv6 TCP (its TCP code only understands 2-tuple socket addresses).
        if family == "ip4":
            assert info["observed_addr"] and info["observed_addr"].startswith("/ip4/127.0.0.1/tcp/")
    lap("identify")

    # ping, both directions
    for x, y in ((a, b), (b, a)):
        rtt = x.call("ping", peer=y.peer_id)["rtt_ms"]
        assert 0 <= rtt < 2000
    lap("ping")

    # Kademlia FIND_NODE: B, asked for itself, answers with itself (the FIND_PEER special case; py-libp2p
    # 0.8.1 sends its own entry without addresses); the requester never appears in an answer.
    closer = a.call("find_node", peer=b.peer_id, target=b.peer_id)["closer"]
    assert [c["peer_id"] for c in closer] == [b.peer_id]
    closer = b.call("find_node", peer=a.peer_id, target=b.peer_id)["closer"]
    assert b.peer_id not in [c["peer_id"] for c in closer]
    found = a.call("find_peer", target=b.peer_id)
    assert found["peer_id"] == b.peer_id and found["addrs"]
    lap("find_node")

    # Values. put_value stores locally and sends PUT_VALUE to the closest peers (B); B then has it locally.
    k1 = f"/v/{uuid.uuid4().hex}".encode()
    v1 = b"\x00\x01value-one\xff"
    stored = a.call("put_value", key_hex=k1.hex(), value_hex=v1.hex())["stored_at"]
    assert stored == [b.peer_id]
    got = b.call("get_value", key_hex=k1.hex())
    assert got["value_hex"] == v1.hex() and got["local"] is True
    # The stored record keeps the value bytes as sent, is signed by A (author = A's public key) and gets
    # the receiver's timeReceived (RFC 3339).
    assert got["record"]["author_hex"] == a.call("info")["public_key_hex"]
    assert got["record"]["time_received"].endswith("Z")
    got = a.call("get_value_from", peer=b.peer_id, key_hex=k1.hex())
    assert got["value_hex"] == v1.hex() and got["record"]["key_hex"] == k1.hex()

    # A single PUT_VALUE to B only; A does not keep it, so A's get_value must go to the network for it.
    k2 = f"/v/{uuid.uuid4().hex}".encode()
    v2 = b"value-two"
    echo = a.call("put_value_to", peer=b.peer_id, key_hex=k2.hex(), value_hex=v2.hex())
    assert echo["echo_key_hex"] == k2.hex() and echo["echo_record"]["value_hex"] == v2.hex()
    got = a.call("get_value", key_hex=k2.hex())
    assert got["value_hex"] == v2.hex() and got["local"] is False
    # A second PUT_VALUE for a key B already holds is refused (stream reset) by py-libp2p's default
    # validator, which keeps the existing record for non-/pk, non-/ipns keys.
    again = a.call("put_value_to", peer=b.peer_id, key_hex=k2.hex(), value_hex=b"other".hex(), check=False)
    assert again["ok"] is False
    assert b.call("get_value", key_hex=k2.hex())["value_hex"] == v2.hex()
    # Unknown keys: not found, with the closer peers B knows (A itself is excluded).
    with pytest.raises(PeerError):
        a.call("get_value_from", peer=b.peer_id, key_hex=b"/v/absent".hex())
    lap("values")

    # GossipSub: both subscribed at start; wait until each knows the other's subscription, then one message
    # each way. The events carry the originator's peer ID, and py-libp2p signs (StrictSign).
    _until(lambda: b.peer_id in a.call("topic_peers", topic=TOPIC)["topic_peers"])
    _until(lambda: a.peer_id in b.call("topic_peers", topic=TOPIC)["topic_peers"])
    for x, y, payload in ((a, b, b"hello from A"), (b, a, b"\x00hello from B\xff")):
        x.call("publish", topic=TOPIC, data_hex=payload.hex())
        ev = y.wait_message(TOPIC, data=payload, timeout=10)
        assert ev["from"] == x.peer_id and ev["signed"] and ev["has_key"]
        assert len(bytes.fromhex(ev["seqno_hex"])) == 8
    lap("gossip")

    # Commands run concurrently: a connect that hangs (the address never answers) times out on its own
    # while other commands are answered.
    with black_hole(transport, family) as dead:
        slow = a.send("connect", addr=dead, timeout=3)
        t_fast = time.monotonic()
        assert a.call("peers")["ok"] and a.call("ping", peer=b.peer_id)["ok"]
        assert time.monotonic() - t_fast < 2.5
        late = a.wait_reply(slow, timeout=15)
    assert late["ok"] is False and "timeout" in late["error"], late
    lap("concurrency")

    print(f"\n{transport}/{family}: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
