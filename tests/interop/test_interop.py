"""Our node against py-libp2p 0.8.1, a libp2p implementation from another code base, over QUIC-v1 and over
TCP + Noise + Yamux, both directions: connect, Identify, Ping, Kademlia FIND_NODE / GET_VALUE / PUT_VALUE and a
GossipSub message each way. The py-libp2p side is a subprocess (tests/interop/pylibp2p_peer.py) in its own
virtualenv (scripts/setup-interop.sh); our node runs in this process's event loop and every blocking call to
the other side goes through a thread, so our node keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from multiaddr import Multiaddr

from p2pnode.identity import Keypair, encode_public_key
from p2pnode.kad.messages import PutValue, PutValueResponse
from p2pnode.kad.pb import record_pb2
from p2pnode.kad.records import make_record
from p2pnode.runtime.node import Node, completion
from tests.interop.pylibp2p import PyLibp2pPeer, interop_python, interop_venv

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(interop_python() is None,
                       reason=f"no py-libp2p interop venv at {interop_venv()} (run scripts/setup-interop.sh)"),
]

LISTEN = {"tcp": "/ip4/127.0.0.1/tcp/0", "quic": "/ip4/127.0.0.1/udp/0/quic-v1"}
TOPIC = "interop"
_seeds = itertools.count(100)


def our_node(transport: str, bootstrap=()) -> Node:
    keypair = Keypair.from_seed(next(_seeds).to_bytes(32, "big"))
    return Node(keypair, listen=[LISTEN[transport]], transports=[transport], bootstrap=bootstrap, peers=2, seed=7)


async def call(py: PyLibp2pPeer, cmd: str, **args):
    return await asyncio.to_thread(lambda: py.call(cmd, **args))


async def until(predicate, timeout: float = 10.0, what: str = "condition"):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def next_from(subscription, peer_id: str):
    """The next message published by ``peer_id`` (our own publications reach our subscription too)."""
    while True:
        message = await subscription.get()
        if _peer(peer_id).raw == message.source:
            return message


def envelope_value(record_value_hex: str) -> bytes:
    """The value inside our signed-record envelope, as py-libp2p stored and returned it."""
    envelope = record_pb2.SignedRecord()
    envelope.ParseFromString(bytes.fromhex(record_value_hex))
    return envelope.value


def run(coro, timeout: float = 90.0):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


@pytest.fixture
def pylibp2p():
    peers = []

    def start(transport: str) -> PyLibp2pPeer:
        peer = PyLibp2pPeer(name=f"pylibp2p-{len(peers)}")
        peers.append(peer)
        peer.start(transport, LISTEN[transport], topic=TOPIC)
        return peer

    yield start
    for peer in peers:
        peer.close()


@pytest.mark.parametrize("transport", ["tcp", "quic"])
def test_pylibp2p_dials_us(transport, pylibp2p):
    """py-libp2p is the initiator: it connects, identifies, pings, asks FIND_NODE / GET_VALUE / PUT_VALUE of our
    node, and exchanges a gossip message with it."""
    py = pylibp2p(transport)

    async def scenario():
        ours, third = our_node(transport), None
        await ours.start()
        try:
            sub = ours.pubsub.subscribe(TOPIC)
            third = our_node(transport, bootstrap=[str(ours.listen_addrs[0])])
            await third.start()
            await third.wait_bootstrapped(15)

            reply = await call(py, "connect", addr=str(ours.listen_addrs[0]))
            assert reply["peer_id"] == str(ours.peer_id)
            ident = await call(py, "identify", peer=str(ours.peer_id))
            assert ident["agent_version"].startswith("p2pnode/")
            wanted = {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/ipfs/kad/1.0.0", "/meshsub/1.1.0"}
            assert wanted <= set(ident["protocols"])
            assert bytes.fromhex(ident["public_key_hex"]) == encode_public_key(ours.keypair.public_key)
            # our signed peer record, as py-libp2p's envelope code reads it
            record = ident["signed_peer_record"]
            assert record is not None and "error" not in record, record
            assert record["peer_id"] == str(ours.peer_id)
            assert set(record["addrs"]) == {bare(a) for a in ours.listen_addrs}
            assert (await call(py, "ping", peer=str(ours.peer_id)))["rtt_ms"] > 0

            # FIND_NODE: our node names the third node (not py itself, the requester)
            closer = (await call(py, "find_node", peer=str(ours.peer_id), target=str(third.peer_id)))["closer"]
            ids = [c["peer_id"] for c in closer]
            assert str(third.peer_id) in ids and py.peer_id not in ids
            assert next(c for c in closer if c["peer_id"] == str(third.peer_id))["addrs"]

            # GET_VALUE of a record our network stores
            put = await third.dht.put(b"/p2pnode/interop", b"from p2pnode")
            assert put.replicas >= 1
            got = await call(py, "get_value_from", peer=str(ours.peer_id), key_hex=b"/p2pnode/interop".hex())
            assert envelope_value(got["value_hex"]) == b"from p2pnode"

            # PUT_VALUE from py-libp2p: its public key under /pk/ (a self-certifying libp2p record)
            py_id = _peer(py.peer_id)
            pk_key, pk_value = b"/pk/" + py_id.raw.hex().encode(), encode_public_key(py_id.public_key())
            await call(py, "put_value_to", peer=str(ours.peer_id), key_hex=pk_key.hex(), value_hex=pk_value.hex())
            assert ours.host.dht.records.get(pk_key, ours.host.runtime.now()).value == pk_value
            # ... and a record it cannot certify is refused
            forged = b"/pk/" + third.peer_id.raw.hex().encode()
            reply = await asyncio.to_thread(lambda: py.call("put_value_to", check=False, peer=str(ours.peer_id),
                                                            key_hex=forged.hex(), value_hex=pk_value.hex()))
            assert not reply["ok"] and ours.host.dht.records.get(forged, ours.host.runtime.now()) is None

            # gossip both ways
            await until(lambda: any(p.to_base58() == py.peer_id for p in ours.pubsub.mesh(TOPIC)), 15)
            await call(py, "publish", topic=TOPIC, data_hex=b"from py-libp2p".hex())
            message = await asyncio.wait_for(next_from(sub, py.peer_id), 10)
            assert message.data == b"from py-libp2p"
            ours.pubsub.publish(TOPIC, b"from p2pnode")
            event = await asyncio.to_thread(py.wait_message, TOPIC, b"from p2pnode", None, 10)
            assert event["from"] == str(ours.peer_id)
        finally:
            if third is not None:
                await third.stop()
            await ours.stop()

    run(scenario())


@pytest.mark.parametrize("transport", ["tcp", "quic"])
def test_we_dial_pylibp2p(transport, pylibp2p):
    """Our node is the initiator: it bootstraps from py-libp2p, identifies and pings it, stores a record on it
    and reads it back, looks up a second py-libp2p peer through it, and exchanges a gossip message."""
    py = pylibp2p(transport)
    py2 = pylibp2p(transport)
    py2_addr = py2.addrs[0] if "/p2p/" in py2.addrs[0] else f"{py2.addrs[0]}/p2p/{py2.peer_id}"
    py.call("connect", addr=py2_addr)
    py_addr = py.addrs[0] if "/p2p/" in py.addrs[0] else f"{py.addrs[0]}/p2p/{py.peer_id}"

    async def scenario():
        ours = our_node(transport, bootstrap=[py_addr])
        await ours.start()
        try:
            sub = ours.pubsub.subscribe(TOPIC)
            await ours.wait_bootstrapped(20)
            py_id = ours.swarm.connection(_peer(py.peer_id)).remote_peer
            await until(lambda: py_id in ours.identified, 5)
            assert ours.identified[py_id].agent_version.startswith("py-libp2p")
            # py-libp2p's signed peer record verifies here, and its addresses are the ones we keep
            record = ours.identified[py_id].peer_record
            assert record is not None, ours.identified[py_id].peer_record_error
            assert record.peer_id == py_id
            assert {bare(Multiaddr(a)) for a in record.addrs} == {bare(a) for a in py.addrs}  # it adds /p2p/
            assert "/ipfs/kad/1.0.0" in ours.identified[py_id].protocols
            rtts = await ours.ping(py_id, count=3)
            assert all(0 < r < 1 for r in rtts)

            # FIND_NODE through py-libp2p reaches the second py-libp2p peer
            found = await ours.dht.find_peer(py2.peer_id)
            assert found is not None and found.addrs

            # PUT_VALUE to py-libp2p, then GET_VALUE back
            put = await ours.dht.put(b"/p2pnode/stored-on-py", b"hello py")
            assert put.replicas >= 1
            stored = await call(py, "get_value", key_hex=b"/p2pnode/stored-on-py".hex())
            assert envelope_value(stored["value_hex"]) == b"hello py"
            ours.host.dht.records._records.clear()  # forget our own copy: the value must come from py-libp2p
            assert await ours.dht.get(b"/p2pnode/stored-on-py") == b"hello py"

            # our public key under /pk/ (py-libp2p's hex form of the key), as our put sends it: bare, so
            # py-libp2p's validator takes it and serves the key itself. Sent to py-libp2p directly, since it
            # ignores FIND_NODE for keys that are not peer IDs, so a put's lookup never finds it for this key.
            pk_key, pk_value = b"/pk/" + ours.peer_id.raw.hex().encode(), encode_public_key(ours.keypair.public_key)
            put = PutValue(make_record(ours.keypair, pk_key, pk_value, 3600, 1))
            answer = await completion(lambda done: ours.host.runtime.request(ours.info_of(py_id), put, 5, done, done))
            assert isinstance(answer, PutValueResponse) and answer.stored, answer
            stored = await call(py, "get_value", key_hex=pk_key.hex())
            assert bytes.fromhex(stored["value_hex"]) == pk_value

            # gossip both ways
            await until(lambda: any(p.to_base58() == py.peer_id for p in ours.pubsub.mesh(TOPIC)), 15)
            ours.pubsub.publish(TOPIC, b"from p2pnode")
            event = await asyncio.to_thread(py.wait_message, TOPIC, b"from p2pnode", None, 10)
            assert event["from"] == str(ours.peer_id)
            await call(py, "publish", topic=TOPIC, data_hex=b"from py-libp2p".hex())
            message = await asyncio.wait_for(next_from(sub, py.peer_id), 10)
            assert message.data == b"from py-libp2p"
        finally:
            await ours.stop()

    run(scenario())


def bare(addr) -> str:
    """A multiaddr's text without its /p2p part."""
    return str(addr).split("/p2p/")[0]


def _peer(text: str):
    from p2pnode.identity import PeerId

    return PeerId.from_base58(text)
