"""Our node against js-libp2p 3.x (tests/interop/js), over TCP + Noise + Yamux, for what a new user of both
found broken: the signed peer record in Identify (each side takes the other's), ``/pk/`` records each way
(js-libp2p validates them; our signed envelope failed there with "Invalid enum value"), and a quiet GossipSub
topic whose mesh must hold (a topic without score parameters does not count towards a score: our node used to
prune js-libp2p 10 s after the GRAFT). About 25 s; skipped when the npm packages are not installed.
"""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest
from multiaddr import Multiaddr

from p2pnode.identity import Keypair, PeerId, encode_public_key
from p2pnode.runtime.node import Node
from tests.interop.jslibp2p import JS_DIR, JsLibp2pPeer, node_binary

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(node_binary() is None,
                       reason=f"no js-libp2p packages in {JS_DIR} (run scripts/setup-interop.sh)"),
]

QUIET = "quiet"
P3_ACTIVATION = 10.0  # seconds in the mesh before a scored topic's delivery deficit (P3) would count


async def call(js: JsLibp2pPeer, cmd: str, **args):
    return await asyncio.to_thread(lambda: js.call(cmd, **args))


async def until(predicate, timeout: float, what: str):
    """Wait until ``predicate()`` (a plain or an async function) is true."""
    try:
        async with asyncio.timeout(timeout):
            while not (await result if inspect.isawaitable(result := predicate()) else result):
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def bare(addr: str) -> bytes:
    """A multiaddr's binary form without its /p2p part, as peer records carry addresses."""
    return Multiaddr(addr.split("/p2p/")[0]).to_bytes()


@pytest.fixture
def js():
    peer = JsLibp2pPeer()
    peer.start()
    yield peer
    peer.close()


def test_js_libp2p_signed_records_pk_records_and_a_quiet_mesh(js):
    js_id = PeerId.from_base58(js.peer_id)

    async def scenario():
        ours = Node(Keypair.from_seed(b"j" * 32), listen=["/ip4/127.0.0.1/tcp/0"], transports=["tcp"],
                    bootstrap=[js.addrs[0]], peers=2, seed=7)
        await ours.start()
        try:
            await call(js, "subscribe", topic=QUIET)
            ours.pubsub.subscribe(QUIET)
            await ours.wait_bootstrapped(20)

            # Identify: js-libp2p's signed peer record verifies here, and its addresses are the ones we use
            await until(lambda: js_id in ours.identified, 10, "identify of js-libp2p")
            record = ours.identified[js_id].peer_record
            assert record is not None, ours.identified[js_id].peer_record_error
            assert record.peer_id == js_id and set(record.addrs) == {bare(a) for a in js.addrs}
            # ... and ours verifies there: js-libp2p marks our addresses certified
            seen = await call(js, "peer_info", peer=str(ours.peer_id))
            assert seen["signed_record"] and all(a["certified"] for a in seen["addrs"]), seen

            # /pk/ records each way, in the namespace's own form
            key, value = b"/pk/" + ours.peer_id.raw, encode_public_key(ours.keypair.public_key)
            put = await ours.dht.put(key, value)
            assert put.replicas >= 1  # js-libp2p's /pk/ validator took it
            got = await call(js, "get_value", key_hex=key.hex())
            assert bytes.fromhex(got["value_hex"]) == value
            js_key, js_value = b"/pk/" + js_id.raw, encode_public_key(js_id.public_key())
            await call(js, "put_value", key_hex=js_key.hex(), value_hex=js_value.hex())
            stored = ours.host.dht.records.get(js_key, ours.host.runtime.now())
            assert stored is not None and (stored.value, stored.publisher) == (js_value, js_id)

            # a quiet topic: the mesh holds past the time P3 would have activated
            async def meshed() -> bool:
                js_mesh = (await call(js, "mesh", topic=QUIET))["peers"]
                return js_id in ours.pubsub.mesh(QUIET) and str(ours.peer_id) in js_mesh

            await until(meshed, 15, "a mesh between our node and js-libp2p")
            deadline = time.monotonic() + P3_ACTIVATION + 4
            while time.monotonic() < deadline:
                assert js_id in ours.pubsub.mesh(QUIET), "our node pruned js-libp2p from a quiet topic's mesh"
                await asyncio.sleep(0.5)
            assert await meshed()
            ours.pubsub.publish(QUIET, b"still meshed")
            event = await asyncio.to_thread(js.wait_message, QUIET, b"still meshed", None, 10)
            assert event["from"] == str(ours.peer_id)
        finally:
            await ours.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))
