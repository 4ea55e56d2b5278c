"""Fuzz target: MCP's JSON-RPC messages, as a peer or an HTTP client sends them.

Contract: any bytes parse to a request, a notification or a response, or raise ``RpcError`` with a
JSON-RPC error code; the error object made from it encodes as JSON.
"""

from __future__ import annotations

import json

from fuzz._runner import target
from p2pnode.mcp import jsonrpc


def _seeds() -> list[bytes]:
    messages = [jsonrpc.request(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}}),
                jsonrpc.notification("notifications/initialized"),
                jsonrpc.request("a", "tools/call", {"name": "dht_get", "arguments": {"key": "/p2pnode/x"}}),
                jsonrpc.result(1, {"tools": []}),
                jsonrpc.error(2, jsonrpc.METHOD_NOT_FOUND, "Method not found", {"method": "x"})]
    return [json.dumps(m).encode() for m in messages]


@target("jsonrpc", seeds=_seeds)
def check(data: bytes) -> None:
    try:
        message = jsonrpc.parse(data)
    except jsonrpc.RpcError as exc:
        assert isinstance(exc.code, int)
        jsonrpc.encode(jsonrpc.error(None, exc.code, exc.message, exc.data))
        return
    assert isinstance(message, (jsonrpc.Request, jsonrpc.Notification, jsonrpc.Response))
