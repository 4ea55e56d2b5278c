"""Streamable HTTP on the node's HTTP listener (``p2pnode.runtime.http`` hands ``/mcp`` requests here): the
bytes of one request in, the JSON body or SSE stream ``p2pnode.mcp.streamable`` decided on out.

Limits: the body must have a Content-Length of at most ``[mcp] max_body_bytes`` (checked before it is
read) and arrive within ``BODY_TIMEOUT``; the tool-call limits are the server's. A JSON answer is
sent with its length and the connection kept for the next request; an SSE stream ends with the
connection. A client that closes the connection before its answer cancels a 2026-07-28 request.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from p2pnode.mcp import jsonrpc
from p2pnode.mcp.streamable import HttpExchange, HttpReply, HttpRequest, StreamableHttp, refuse

BODY_TIMEOUT = 10.0


def head(reply: HttpReply, streaming: bool, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}"]
    lines += [f"{name}: {value}" for name, value in reply.headers]
    if not streaming:
        lines.append(f"content-length: {len(reply.body)}")
    lines.append("connection: keep-alive" if keep_alive and not streaming else "connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class McpEndpoint:
    def __init__(self, transport: StreamableHttp):
        self.transport = transport

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str,
                    headers: list[tuple[str, str]], keep_alive: bool) -> bool:
        """Answer one request; True if the connection may carry another."""
        request = HttpRequest(method, path, headers)
        length_text = request.header("content-length")
        try:
            length = int(length_text) if length_text is not None else None
            if length is not None and length < 0:
                raise ValueError
        except ValueError:
            return self._write(writer, refuse(400, jsonrpc.INVALID_REQUEST, "Bad Content-Length"), False)
        refusal = self.transport.check_head(request, length)
        if refusal is not None:
            # the body of a refused request is not read: the connection cannot carry another one
            return self._write(writer, refusal, False)
        if method == "DELETE":
            return self._write(writer, self.transport.delete(request), keep_alive)
        async with asyncio.timeout(BODY_TIMEOUT):
            request.body = await reader.readexactly(length)
        done = asyncio.Event()
        state = {"streaming": False}

        def start(reply: HttpReply, streaming: bool) -> None:
            state["streaming"] = streaming
            writer.write(head(reply, streaming, keep_alive) + reply.body)

        exchanges: list[HttpExchange] = []

        def factory(modern: bool) -> HttpExchange:
            exchange = HttpExchange(start, writer.write, done.set, modern)
            exchanges.append(exchange)
            return exchange

        reply = self.transport.open(request, factory)
        if reply is not None:
            return self._write(writer, reply, keep_alive)
        if not done.is_set():
            # wait for the answer; the client closing its side first is a cancellation
            closed = asyncio.ensure_future(reader.read(1))
            finished = asyncio.ensure_future(done.wait())
            await asyncio.wait([closed, finished], return_when=asyncio.FIRST_COMPLETED)
            if not done.is_set():
                self.transport.cancel(exchanges[0])
                finished.cancel()
                return False
            closed.cancel()
            keep_alive = False  # the read may have taken a byte of the next request
        await writer.drain()
        return keep_alive and not state["streaming"]

    @staticmethod
    def _write(writer: asyncio.StreamWriter, reply: HttpReply, keep_alive: bool) -> bool:
        writer.write(head(reply, False, keep_alive) + reply.body)
        return keep_alive
