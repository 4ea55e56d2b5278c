"""Fuzz target: MCP's JSON-RPC messages, as a peer or an HTTP client sends them — parsed alone, and handled by
a sans-IO MCP server (schema checks of both protocol revisions, dispatch, a tool call).

Contract: any bytes parse to a request, a notification or a response, or raise ``RpcError`` with a JSON-RPC
error code; the server raises nothing, and what it sends back encodes as JSON-RPC. The first byte picks
parsing alone or the server.
"""

from __future__ import annotations

import json

from fuzz._keys import first_byte_picks
from fuzz._runner import target
from p2pnode.mcp import jsonrpc
from p2pnode.mcp.server import Channel, McpServer
from p2pnode.mcp.tools import Tool

MODERN_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
               "io.modelcontextprotocol/clientCapabilities": {},
               "io.modelcontextprotocol/clientInfo": {"name": "fuzz", "version": "1"}}


class _Timer:
    def cancel(self) -> None:
        pass


class _Clock:
    """Time stands still: no timeout fires during one input."""

    def now(self) -> float:
        return 0.0

    def call_later(self, delay, callback) -> _Timer:
        return _Timer()


ECHO = Tool("echo", "Gives back its text", {"type": "object", "properties": {"text": {"type": "string"}},
            "required": ["text"], "additionalProperties": False},
            {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            lambda call: call.finish({"text": call.arguments["text"]}))


def _seeds() -> list[bytes]:
    messages = [jsonrpc.request(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                                  "clientInfo": {"name": "fuzz", "version": "1"}}),
                jsonrpc.notification("notifications/initialized"),
                jsonrpc.request("a", "tools/call", {"name": "echo", "arguments": {"text": "hi"}, "_meta": MODERN_META}),
                jsonrpc.request(2, "tools/list", {"_meta": MODERN_META}),
                jsonrpc.request(3, "server/discover", {"_meta": MODERN_META}),
                jsonrpc.result(1, {"tools": []}),
                jsonrpc.error(2, jsonrpc.METHOD_NOT_FOUND, "Method not found", {"method": "x"})]
    return [bytes([which]) + json.dumps(m).encode() for m in messages for which in (0, 1)]


@target("jsonrpc", seeds=_seeds)
def check(data: bytes) -> None:
    which, rest = first_byte_picks(data, 2)
    if which == 1:
        sent: list[dict] = []
        McpServer(_Clock(), [ECHO], page_size=1).receive_bytes(rest, Channel(sent.append))
        for message in sent:
            assert isinstance(jsonrpc.parse(jsonrpc.encode(message)), jsonrpc.Response), message
        return
    try:
        message = jsonrpc.parse(rest)
    except jsonrpc.RpcError as exc:
        assert isinstance(exc.code, int)
        jsonrpc.encode(jsonrpc.error(None, exc.code, exc.message, exc.data))
        return
    assert isinstance(message, (jsonrpc.Request, jsonrpc.Notification, jsonrpc.Response))
