"""Frames larger than a transport's flow-control window arrive whole (a reader waiting for a whole frame
gives the sender credit for it), on TCP+Noise+Yamux (256 KiB windows) and QUIC (1 MiB)."""

from __future__ import annotations

import asyncio
import os

import pytest

from p2pnode.framing import CodecError, encode_uvarint
from p2pnode.transports.multistream import read_frame
from p2pnode.transports.yamux import INITIAL_WINDOW
from tests.transports.pair import KINDS, connection_pair

MAX = 1 << 20


def run(coro, timeout: float = 20.0):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [300_000, MAX - 1, MAX])
def test_a_frame_larger_than_the_window_arrives_and_the_stream_goes_on(kind, size):
    async def scenario():
        async with connection_pair(kind) as (dialled, accepted):
            big, small = os.urandom(size), os.urandom(999)
            stream = await dialled.open_stream()
            sending = asyncio.ensure_future(stream.write(encode_uvarint(len(big)) + big
                                                         + encode_uvarint(len(small)) + small))
            inbound = await accepted.accept_stream()
            assert await read_frame(inbound, MAX) == big
            assert await read_frame(inbound, MAX) == small
            await sending
            # the stream is still usable in both directions
            await inbound.write(b"ok")
            assert await stream.readexactly(2) == b"ok"

    run(scenario())


@pytest.mark.parametrize("kind", KINDS)
def test_a_frame_over_the_limit_is_refused_on_its_header(kind):
    async def scenario():
        async with connection_pair(kind) as (dialled, accepted):
            stream = await dialled.open_stream()
            await stream.write(encode_uvarint(MAX + 1) + b"x" * 1000)
            inbound = await accepted.accept_stream()
            with pytest.raises(CodecError, match="over the 1048576-byte limit"):
                await read_frame(inbound, MAX)

    run(scenario())


def test_a_waiting_reader_buffers_no_more_than_its_frame_and_one_window():
    """The credit a waiting read gives is what it asked for: a sender with more to send than that still
    waits for the application."""
    async def scenario():
        async with connection_pair("tcp") as (dialled, accepted):
            stream = await dialled.open_stream()
            payload = os.urandom(4 * MAX)
            sending = asyncio.ensure_future(stream.write(payload))
            inbound = await accepted.accept_stream()
            assert len(await inbound.readexactly(MAX)) == MAX
            await asyncio.sleep(0.3)  # the sender fills whatever window it has
            assert not sending.done()
            assert len(inbound._buffer) <= INITIAL_WINDOW
            received = MAX + len(inbound._buffer)
            while received < len(payload):
                received += len(await inbound.read(MAX))
            await sending

    run(scenario())
