"""Real nodes on loopback doing NAT traversal: a private node reserves a slot at a relay, a third node reaches
it through a circuit (Noise over the relay's streams, so the relay carries only ciphertext), and DCUtR
replaces the relayed connection with a direct one, by connection reversal or by the RTT-timed QUIC punch."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from multiaddr import Multiaddr

from p2pnode.config import NatConfig
from p2pnode.identity import Keypair
from p2pnode.relay.addrs import dial_addr
from p2pnode.runtime.http import HttpServer, NodeCollector
from p2pnode.runtime.node import Node
from p2pnode.transports.base import TransportError

LISTEN = ["/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"]
LOOPBACK = ["127.0.0.0/8"]
_seeds = itertools.count(101)


def run(coro, timeout: float = 60.0):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def node(reachability: str, bootstrap=(), relay: bool = False, public_ranges=LOOPBACK, **nat) -> Node:
    keypair = Keypair.from_seed(next(_seeds).to_bytes(32, "big"))
    config = NatConfig(reachability=reachability, relay_service=relay, **nat)
    return Node(keypair, listen=LISTEN, bootstrap=bootstrap, seed=1, pubsub=False, nat=config,
                public_ranges=public_ranges)


async def until(condition, timeout: float = 20.0, step: float = 0.05) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(step)


async def relay_and_private(public_ranges=LOOPBACK):
    relay = node("public", relay=True)
    await relay.start()
    boot = [str(relay.listen_addrs[0])]
    private = node("private", bootstrap=boot, public_ranges=public_ranges)
    await private.start()
    await until(lambda: private.nat.traversal.client.slots)
    return relay, private, boot


def test_private_node_reserves_and_advertises_its_circuit_address():
    async def scenario():
        relay, private, _ = await relay_and_private()
        try:
            (slot,) = private.nat.traversal.client.slots.values()
            assert slot.reservation.voucher  # checked by the client before it took the slot
            advertised = [str(a) for a in private.listen_addrs]
            assert advertised and all("/p2p-circuit" in a for a in advertised)
            assert str(relay.peer_id) in advertised[0]
            assert relay.nat.traversal.service.stats()["reservations"] == 1
            assert "/ipfs/kad/1.0.0" not in private.swarm.protocols  # DHT client mode while private
            # shown in /debug/peers and the metrics
            status, _, body = HttpServer(private, "127.0.0.1", 0).peers()
            nat = json.loads(body)["nat"]
            assert nat["reachability"] == "private" and nat["relays"] == [str(relay.peer_id)]
            metrics = {m.name: m for m in NodeCollector(private).collect()}
            held = metrics["p2p_relay_reservations_held"].samples[0].value
            private_flag = [s.value for s in metrics["p2p_nat_reachability"].samples if s.labels["status"] == "private"]
            assert held == 1 and private_flag == [1]
            relay_metrics = {m.name: m for m in NodeCollector(relay).collect()}
            assert relay_metrics["p2p_relay_service_reservations"].samples[0].value == 1
        finally:
            await asyncio.gather(private.stop(), relay.stop())

    run(scenario())


@pytest.mark.parametrize("dialler_public, how", [(True, "reversal_ok"), (False, "ok")])
def test_relayed_connection_is_upgraded_to_a_direct_one(dialler_public, how):
    """Whether the dialler's addresses look public to the private node decides between a direct dial back
    and a hole punch (on loopback the punch's QUIC dial gets through at once: no NAT in the way)."""
    async def scenario():
        relay, private, boot = await relay_and_private(public_ranges=LOOPBACK if dialler_public else ())
        dialler = node("public", bootstrap=boot)
        await dialler.start()
        try:
            relay_addr = Multiaddr(relay.listen_addrs[0])
            circuit = dial_addr(relay_addr, private.peer_id)
            rtts = await dialler.ping(private.peer_id, count=3, addrs=[circuit])
            assert len(rtts) == 3
            conns = dialler.swarm.connections[private.peer_id]
            assert conns[0].transport == "circuit"
            service = relay.nat.traversal.service
            assert service.stats()["bytes_relayed"] > 0 or service.circuits  # the pings went through it
            await until(lambda: private.nat.punches[how] >= 1)
            assert dialler.swarm.connection(private.peer_id).transport != "circuit"
            # new streams take the direct connection
            assert len(await dialler.ping(private.peer_id, count=2)) == 2
        finally:
            await asyncio.gather(dialler.stop(), private.stop(), relay.stop())

    run(scenario())


def test_forged_voucher_is_refused_by_name():
    async def scenario():
        relay = node("public", relay=True)
        await relay.start()
        # the relay signs its vouchers with a key that is not its own: a forgery, as far as clients can tell
        relay.nat.traversal.service.keypair = Keypair.from_seed(b"f" * 32)
        failures = []
        private = node("private", bootstrap=[str(relay.listen_addrs[0])])
        await private.start()
        original = private.nat.traversal.client.on_event
        private.nat.traversal.client.on_event = lambda e: (failures.append(e), original(e))
        try:
            await until(lambda: failures)
            assert "voucher" in failures[0].reason and not private.nat.traversal.client.slots
        finally:
            await asyncio.gather(private.stop(), relay.stop())

    run(scenario())


def test_circuit_past_its_data_limit_is_reset_and_the_relay_serves_on():
    async def scenario():
        relay = node("public", relay=True, circuit_data=2048)
        await relay.start()
        boot = [str(relay.listen_addrs[0])]
        private = node("private", bootstrap=boot, hole_punching=False)
        await private.start()
        await until(lambda: private.nat.traversal.client.slots)
        dialler = node("public", bootstrap=boot)
        await dialler.start()
        try:
            circuit = dial_addr(Multiaddr(relay.listen_addrs[0]), private.peer_id)
            with pytest.raises((TransportError, asyncio.IncompleteReadError)):
                await dialler.ping(private.peer_id, count=200, addrs=[circuit], timeout=10.0)
            await until(lambda: not relay.nat.traversal.service.circuits)
            # the relay keeps serving: a new circuit for the same pair works within the limit
            assert len(await dialler.ping(private.peer_id, count=2, addrs=[circuit])) == 2
        finally:
            await asyncio.gather(dialler.stop(), private.stop(), relay.stop())

    run(scenario())


def test_a_reservation_beyond_the_relays_limit_is_refused_by_name_and_the_relay_serves_on():
    async def scenario():
        relay = node("public", relay=True, max_reservations=1)
        await relay.start()
        boot = [str(relay.listen_addrs[0])]
        first = node("private", bootstrap=boot, hole_punching=False)
        await first.start()
        await until(lambda: first.nat.traversal.client.slots)
        failures = []
        second = node("private", bootstrap=boot)
        await second.start()
        original = second.nat.traversal.client.on_event
        second.nat.traversal.client.on_event = lambda e: (failures.append(e), original(e))
        dialler = node("public", bootstrap=boot)
        await dialler.start()
        try:
            await until(lambda: failures)
            assert failures[0].reason == "RESERVATION_REFUSED" and not second.nat.traversal.client.slots
            assert relay.nat.traversal.service.refused["RESERVATION_REFUSED"] >= 1
            # the relay goes on serving the peer it holds a slot for
            circuit = dial_addr(Multiaddr(relay.listen_addrs[0]), first.peer_id)
            assert len(await dialler.ping(first.peer_id, count=2, addrs=[circuit])) == 2
        finally:
            await asyncio.gather(dialler.stop(), second.stop(), first.stop(), relay.stop())

    run(scenario())
