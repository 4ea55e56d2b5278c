"""Messages up to the configured maximum flow between real nodes on loopback, over TCP+Noise+Yamux and
QUIC: pub-sub messages up to ``GossipConfig.max_message_size`` (1 MiB) and DHT records up to
``KadConfig.max_record_size`` (64 KiB); one byte more is refused cleanly, by the sender and by a receiver."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from p2pnode.config import GossipConfig, KadConfig
from tests.runtime.test_nodes import make_node, run, stop_all

MAX_MESSAGE = GossipConfig().max_message_size
MAX_RECORD = KadConfig().max_record_size


async def two_nodes(transport: str, **kwargs):
    a = make_node(transport, peers=1, **kwargs)
    await a.start()
    b = make_node(transport, bootstrap=[str(a.listen_addrs[0])], peers=1)
    await b.start()
    await b.wait_bootstrapped(10)
    return a, b


@pytest.mark.parametrize("transport", ["tcp", "quic"])
def test_pubsub_messages_up_to_the_maximum_arrive_and_one_byte_more_is_refused(transport):
    async def scenario():
        a, b = await two_nodes(transport)
        try:
            a.pubsub.subscribe("big")
            got = b.pubsub.subscribe("big")
            await asyncio.sleep(2.5)  # subscriptions exchanged, mesh formed at the first heartbeat
            for size in (MAX_MESSAGE - 1, MAX_MESSAGE, 999):  # the small one after: the stream goes on
                a.pubsub.publish("big", bytes([size & 0xFF]) * size)
                message = await asyncio.wait_for(got.get(), 10)
                assert message.data == bytes([size & 0xFF]) * size
            with pytest.raises(ValueError, match="exceeds the 1048576-byte limit"):
                a.pubsub.publish("big", b"x" * (MAX_MESSAGE + 1))
            # a sender configured for larger messages: the receiver drops the message, not the stream
            router = a.host.pubsub
            router.config = dataclasses.replace(router.config, max_message_size=2 * MAX_MESSAGE)
            invalid = b.host.pubsub.invalid
            a.pubsub.publish("big", b"x" * (MAX_MESSAGE + 1))
            a.pubsub.publish("big", b"after")
            assert (await asyncio.wait_for(got.get(), 10)).data == b"after"
            assert b.host.pubsub.invalid == invalid + 1
        finally:
            await stop_all([a, b])

    run(scenario())


@pytest.mark.parametrize("transport", ["tcp", "quic"])
def test_dht_records_up_to_the_maximum_travel_both_ways_and_one_byte_more_is_refused(transport):
    async def scenario():
        a, b = await two_nodes(transport)
        try:
            for size in (MAX_RECORD - 1, MAX_RECORD):
                key = b"/p2pnode/big-%d" % size
                put = await a.dht.put(key, b"v" * size)
                assert put.replicas == 1  # the PutValue frame reached b
                a.host.dht.records._records.clear()
                assert await a.dht.get(key) == b"v" * size  # and b's GetValue answer reached a
            with pytest.raises(ValueError, match="exceeds the 65536-byte record limit"):
                await a.dht.put(b"/p2pnode/too-big", b"v" * (MAX_RECORD + 1))
        finally:
            await stop_all([a, b])

    run(scenario())
