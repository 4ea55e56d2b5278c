"""multistream-select 1.0 over an in-memory stream pair: selection, lazy proposal, refusals and garbage."""

from __future__ import annotations

import asyncio

import pytest

from p2pnode.framing import encode_uvarint
from p2pnode.transports import multistream
from p2pnode.transports.base import Stream
from p2pnode.transports.multistream import NegotiationError, encode_message


class _Conn:
    bytes_in = bytes_out = 0
    resources = None  # no resource manager: nothing is accounted


class Pipe(Stream):
    def __init__(self):
        super().__init__(_Conn())
        self.peer: Pipe | None = None

    async def _send(self, data: bytes) -> None:
        self.peer._feed(data)

    async def _send_fin(self) -> None:
        self.peer._feed_eof()

    def _send_reset(self) -> None:
        self.peer._feed_reset()


def pair() -> tuple[Pipe, Pipe]:
    a, b = Pipe(), Pipe()
    a.peer, b.peer = b, a
    return a, b


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 5))


def test_wire_format_of_a_message():
    assert encode_message("na") == b"\x03na\n"
    assert encode_message("/multistream/1.0.0") == b"\x13/multistream/1.0.0\n"


def test_select_falls_back_to_the_next_proposal():
    async def go():
        a, b = pair()
        return await asyncio.gather(multistream.select(a, ["/new/2", "/old/1"]), multistream.handle(b, {"/old/1"}))

    assert run(go()) == ["/old/1", "/old/1"]


def test_no_common_protocol():
    async def go():
        a, b = pair()
        responder = asyncio.ensure_future(multistream.handle(b, {"/x"}))
        with pytest.raises(NegotiationError, match="none of"):
            await multistream.select(a, ["/y", "/z"])
        responder.cancel()

    run(go())


def test_lazy_proposal_carries_the_first_message():
    async def go():
        a, b = pair()
        await multistream.propose(a, "/echo/1")
        await a.write(b"hello")  # sent before any answer came back
        assert await multistream.handle(b, {"/echo/1"}) == "/echo/1"
        assert await b.readexactly(5) == b"hello"
        await multistream.confirm(a, "/echo/1")

    run(go())


def test_lazy_proposal_refused():
    async def go():
        a, b = pair()
        await multistream.propose(a, "/nope/1")
        responder = asyncio.ensure_future(multistream.handle(b, {"/echo/1"}))
        with pytest.raises(NegotiationError, match="does not support"):
            await multistream.confirm(a, "/nope/1")
        responder.cancel()

    run(go())


@pytest.mark.parametrize("garbage, complaint", [
    (b"\x13/multistream/2.0.0\n", "not /multistream/1.0.0"),
    (encode_uvarint(5000) + b"x", "over the"),
    (b"\x05hello", "newline"),
    (b"\x03\xff\xfe\n", "UTF-8"),
    (b"\xff" * 12, "varint"),
])
def test_garbage_is_a_negotiation_error(garbage, complaint):
    async def go():
        a, b = pair()
        await a.write(garbage)
        await a.close()
        with pytest.raises(NegotiationError, match=complaint):
            await multistream.handle(b, {"/x"})

    run(go())
