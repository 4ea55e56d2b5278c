"""Circuit Relay v2 against js-libp2p 3.3.11 (@libp2p/circuit-relay-v2 4.2.13) over TCP on loopback, each side
in each role: js-libp2p reserves at our relay by itself (it listens on /p2p-circuit and takes the relays it
meets) and our node reaches it through the circuit; our private node reserves at a js-libp2p relay (our
client checks its voucher) and js-libp2p dials us through it. DCUtR's hole punch is not tried: ours punches
over QUIC only and js-libp2p on Node.js has no QUIC; the relayed connection is still replaced by a direct one,
by our node dialling js-libp2p's public addresses (connection reversal)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from multiaddr import Multiaddr

from p2pnode.config import NatConfig
from p2pnode.identity import Keypair, PeerId
from p2pnode.relay.addrs import dial_addr
from p2pnode.runtime.node import Node
from tests.interop.jslibp2p import JS_DIR, JsLibp2pPeer, node_binary

RELAY_PACKAGE = JS_DIR / "node_modules" / "@libp2p" / "circuit-relay-v2"
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(node_binary() is None or not RELAY_PACKAGE.is_dir(),
                       reason=f"no js-libp2p relay packages in {JS_DIR} (run scripts/setup-interop.sh)"),
]

LISTEN = "/ip4/127.0.0.1/tcp/0"
_seeds = itertools.count(900)


def our_node(reachability: str, relay: bool = False, bootstrap=()) -> Node:
    keypair = Keypair.from_seed(next(_seeds).to_bytes(32, "big"))
    return Node(keypair, listen=[LISTEN], transports=["tcp"], bootstrap=bootstrap, seed=1, pubsub=False,
                nat=NatConfig(reachability=reachability, relay_service=relay), public_ranges=["127.0.0.0/8"])


async def call(js: JsLibp2pPeer, cmd: str, **args):
    return await asyncio.to_thread(lambda: js.call(cmd, **args))


async def until(condition, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not (await condition() if asyncio.iscoroutinefunction(condition) else condition()):
            await asyncio.sleep(0.1)


def run(coro, timeout: float = 90.0):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


@pytest.fixture
def jslibp2p():
    peers = []

    def start(roles: str) -> JsLibp2pPeer:
        peer = JsLibp2pPeer(name=f"jslibp2p-{len(peers)}")
        peers.append(peer)
        peer.start(LISTEN, roles=roles)
        return peer

    yield start
    for peer in peers:
        peer.close()


def test_jslibp2p_reserves_at_our_relay_and_we_reach_it_through_the_circuit(jslibp2p):
    js = jslibp2p("client")

    async def scenario():
        relay = our_node("public", relay=True)
        await relay.start()
        relay_addr = str(relay.listen_addrs[0])
        dialer = our_node("public", bootstrap=[relay_addr])
        await dialer.start()
        try:
            await call(js, "connect", addr=relay_addr)

            async def reserved():
                return any("/p2p-circuit" in a for a in (await call(js, "addrs"))["addrs"])

            await until(reserved)
            assert relay.nat.traversal.service.stats()["reservations"] == 1
            target = PeerId.from_base58(js.peer_id)
            assert len(await dialer.ping(target, count=3, addrs=[dial_addr(Multiaddr(relay_addr), target)])) == 3
            assert [c.transport for c in dialer.swarm.connections[target]] == ["circuit"]
            assert relay.nat.traversal.service.stats()["bytes_relayed"] > 0
        finally:
            await asyncio.gather(dialer.stop(), relay.stop())

    run(scenario())


def test_we_reserve_at_a_jslibp2p_relay_and_jslibp2p_dials_us_through_it(jslibp2p):
    js_relay = jslibp2p("hop")
    js = jslibp2p("client")

    async def scenario():
        private = our_node("private", bootstrap=[js_relay.addrs[0]])
        await private.start()
        try:
            await until(lambda: private.nat.traversal.client.slots)
            (slot,) = private.nat.traversal.client.slots.values()
            assert str(slot.relay.peer_id) == js_relay.peer_id and slot.reservation.voucher
            circuit = str(dial_addr(Multiaddr(js_relay.addrs[0]), private.peer_id))
            assert (await call(js, "connect", addr=circuit, timeout=20))["peer_id"] == str(private.peer_id)
            assert (await call(js, "ping", peer=str(private.peer_id)))["rtt_ms"] >= 0
            kinds = [c["kind"] for c in (await call(js, "connections", peer=str(private.peer_id)))["connections"]]
            assert "relayed" in kinds
            # connection reversal: js-libp2p's addresses are public to our node, which dials them
            await until(lambda: private.nat.punches["reversal_ok"] >= 1)
        finally:
            await private.stop()

    run(scenario())
