"""Circuit Relay v2 and DCUtR against py-libp2p 0.8.1 (its ``libp2p.relay.circuit_v2``: CircuitV2Protocol,
CircuitV2Transport, DCUtRProtocol) on loopback, each side in each role:

- py-libp2p reserves a slot at our relay (our voucher, checked here as its envelope), and our node reaches it
  through a /p2p-circuit address (our CONNECT, its STOP side, Noise and Yamux over the relayed stream);
- our private node reserves at a py-libp2p relay (our client checks its voucher before taking the slot), and
  py-libp2p dials us through its relay;
- DCUtR over QUIC both ways: our node initiates and py-libp2p answers (it dials on SYNC while we spray), and
  py-libp2p initiates and we answer; either way a direct QUIC connection comes to carry the streams.

Nothing of py-libp2p's had to be worked around: it sends RESERVE with the optional ``peer`` field (the spec's
RESERVE carries none; we ignore it), its vouchers are spec envelopes, and its relay puts the relay's own
addresses in the reservation. Its relay checks a voucher only if one is presented again on CONNECT, which our
client never does (the spec has no such step).
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from multiaddr import Multiaddr

from p2pnode.config import NatConfig
from p2pnode.identity import Keypair, PeerId
from p2pnode.relay import voucher
from p2pnode.relay.addrs import dial_addr
from p2pnode.runtime.node import Node
from tests.interop.pylibp2p import PyLibp2pPeer, interop_python, interop_venv

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(interop_python() is None,
                       reason=f"no py-libp2p interop venv at {interop_venv()} (run scripts/setup-interop.sh)"),
]

LISTEN = {"tcp": "/ip4/127.0.0.1/tcp/0", "quic": "/ip4/127.0.0.1/udp/0/quic-v1"}
LOOPBACK = ("127.0.0.0/8",)
_seeds = itertools.count(700)


def our_node(transport: str, reachability: str, relay: bool = False, bootstrap=(), public_ranges=LOOPBACK) -> Node:
    keypair = Keypair.from_seed(next(_seeds).to_bytes(32, "big"))
    return Node(keypair, listen=[LISTEN[transport]], transports=[transport], bootstrap=bootstrap, seed=1,
                pubsub=False, nat=NatConfig(reachability=reachability, relay_service=relay),
                public_ranges=list(public_ranges))


async def call(py: PyLibp2pPeer, cmd: str, **args):
    return await asyncio.to_thread(lambda: py.call(cmd, **args))


async def until(condition, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def run(coro, timeout: float = 90.0):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


@pytest.fixture
def pylibp2p():
    peers = []

    def start(transport: str, *extra: str) -> PyLibp2pPeer:
        peer = PyLibp2pPeer(name=f"pylibp2p-{len(peers)}")
        peers.append(peer)
        peer.start(transport, LISTEN[transport], extra_args=list(extra))
        return peer

    yield start
    for peer in peers:
        peer.close()


async def relay_with_pylibp2p_reserved(transport: str, py: PyLibp2pPeer) -> Node:
    relay = our_node(transport, "public", relay=True)
    await relay.start()
    await call(py, "connect", addr=str(relay.listen_addrs[0]))
    reserved = await call(py, "relay_reserve", relay=str(relay.peer_id))
    assert reserved["reserved"], reserved
    # the voucher is ours: a signed envelope naming our relay and py-libp2p's peer until the reservation's end
    proof = voucher.consume(bytes.fromhex(reserved["voucher_hex"]), relay=relay.peer_id,
                            peer=PeerId.from_base58(py.peer_id), now=time.time())
    assert proof.expiration == reserved["expire"]
    assert relay.nat.traversal.service.stats()["reservations"] == 1
    return relay


@pytest.mark.parametrize("transport", ["tcp", "quic"])
def test_pylibp2p_reserves_at_our_relay_and_we_reach_it_through_the_circuit(transport, pylibp2p):
    py = pylibp2p(transport, "--relay", "client")

    async def scenario():
        relay = await relay_with_pylibp2p_reserved(transport, py)
        dialer = our_node(transport, "public", bootstrap=[str(relay.listen_addrs[0])])
        await dialer.start()
        try:
            target = PeerId.from_base58(py.peer_id)
            circuit = dial_addr(Multiaddr(relay.listen_addrs[0]), target)
            assert len(await dialer.ping(target, count=3, addrs=[circuit])) == 3
            assert [c.transport for c in dialer.swarm.connections[target]] == ["circuit"]
            stats = relay.nat.traversal.service.stats()
            assert stats["circuits"] == 1 and stats["bytes_relayed"] > 0  # the pings went through our relay
        finally:
            await asyncio.gather(dialer.stop(), relay.stop())

    run(scenario())


@pytest.mark.parametrize("transport", ["tcp", "quic"])
def test_we_reserve_at_a_pylibp2p_relay_and_pylibp2p_dials_us_through_it(transport, pylibp2p):
    py_relay = pylibp2p(transport, "--relay", "hop")
    py_dialer = pylibp2p(transport, "--relay", "client")

    async def scenario():
        relay_addr = py_relay.addrs[0]
        private = our_node(transport, "private", bootstrap=[relay_addr])
        await private.start()
        try:
            await until(lambda: private.nat.traversal.client.slots)
            (slot,) = private.nat.traversal.client.slots.values()
            assert str(slot.relay.peer_id) == py_relay.peer_id
            assert slot.reservation.voucher  # py-libp2p's voucher, taken only after our client checked it
            circuit = str(dial_addr(Multiaddr(relay_addr), private.peer_id))
            assert private.nat.status()["circuit_addrs"] == [circuit.rsplit("/p2p/", 1)[0]]
            await call(py_dialer, "connect", addr=relay_addr)
            dialled = await call(py_dialer, "relay_dial", addr=circuit, timeout=20)
            assert dialled["peer_id"] == str(private.peer_id)
            assert (await call(py_dialer, "ping", peer=str(private.peer_id)))["rtt_ms"] > 0
            conns = await call(py_dialer, "connections", peer=str(private.peer_id))
            assert "relayed" in [c["kind"] for c in conns["connections"]]
        finally:
            await private.stop()

    run(scenario())


def test_dcutr_we_initiate_and_pylibp2p_answers(pylibp2p):
    """Our private node takes py-libp2p's relayed connection in and, py-libp2p's addresses not being public to
    it, runs DCUtR as the initiator: CONNECT, SYNC, then UDP spray while py-libp2p dials us."""
    py = pylibp2p("quic", "--relay", "client", "--dcutr")

    async def scenario():
        relay = our_node("quic", "public", relay=True)
        await relay.start()
        relay_addr = str(relay.listen_addrs[0])
        private = our_node("quic", "private", bootstrap=[relay_addr], public_ranges=())
        await private.start()
        try:
            await until(lambda: private.nat.traversal.client.slots)
            await call(py, "connect", addr=relay_addr)
            await call(py, "relay_dial", addr=str(dial_addr(Multiaddr(relay_addr), private.peer_id)), timeout=20)
            other = PeerId.from_base58(py.peer_id)
            await until(lambda: private.nat.punches["ok"] == 1)
            direct = [c for c in private.swarm.connections[other] if c.transport == "quic"]
            assert direct and not direct[0].outbound  # py-libp2p dialled us on SYNC
            assert private.swarm.connection(other).transport == "quic"  # new streams go direct
            assert (await call(py, "ping", peer=str(private.peer_id)))["rtt_ms"] > 0
        finally:
            await asyncio.gather(private.stop(), relay.stop())

    run(scenario())


def test_dcutr_pylibp2p_initiates_and_we_answer(pylibp2p):
    """py-libp2p, reserved at our relay and reached through it, initiates DCUtR; our node answers CONNECT and
    dials on SYNC (the only way our node gets an outbound QUIC connection to it here)."""
    py = pylibp2p("quic", "--relay", "client", "--dcutr")

    async def scenario():
        relay = await relay_with_pylibp2p_reserved("quic", py)
        relay_addr = relay.listen_addrs[0]
        dialer = our_node("quic", "private", bootstrap=[str(relay_addr)], public_ranges=())
        await dialer.start()
        try:
            target = PeerId.from_base58(py.peer_id)
            await dialer.ping(target, addrs=[dial_addr(Multiaddr(relay_addr), target)])
            assert (await call(py, "dcutr_initiate", peer=str(dialer.peer_id), timeout=30))["direct"]
            await until(lambda: dialer.swarm.connection(target).transport == "quic")
            (direct,) = [c for c in dialer.swarm.connections[target] if c.transport == "quic"]
            assert direct.outbound
            assert len(await dialer.ping(target, count=2)) == 2
        finally:
            await asyncio.gather(dialer.stop(), relay.stop())

    run(scenario())
