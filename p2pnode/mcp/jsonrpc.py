"""JSON-RPC 2.0 as MCP uses it: one message per frame (no batches), request IDs that are strings or integers
(never null), and the error codes of JSON-RPC, of MCP 2026-07-28, and of this node.

``parse`` turns bytes into a ``Request``, ``Notification`` or ``Response`` or raises ``RpcError`` with the
code the sender should get back (-32700 for bytes that are not JSON, -32600 for JSON that is not a message).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# JSON-RPC 2.0
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# MCP (2026-07-28: the -32020..-32099 range is the specification's; 2025-11-25 and earlier used -32002)
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
RESOURCE_NOT_FOUND_LEGACY = -32002
# This node's own, outside the range JSON-RPC reserves (-32768..-32000), as the 2026-07-28 allocation policy asks
RATE_LIMITED = -31001
ACCESS_DENIED = -31002
SERVER_BUSY = -31003
SERVER_NOT_INITIALIZED = -31004
PEER_UNREACHABLE = -31005

RequestId = str | int


class RpcError(Exception):
    """A failure that goes back to the client as a JSON-RPC error response."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True, slots=True)
class Request:
    id: RequestId
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Response:
    """A result or an error: what a peer answers to a request we sent."""

    id: RequestId | None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


Message = Request | Notification | Response


def valid_id(value: Any) -> bool:
    # bool is an int in Python, but true/false are not JSON-RPC IDs
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def parse(data: bytes | str) -> Message:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RpcError(PARSE_ERROR, f"Parse error: not JSON ({exc})") from None
    return parse_object(obj)


def parse_object(obj: Any) -> Message:
    if isinstance(obj, list):
        raise RpcError(INVALID_REQUEST, "Invalid request: batches are not allowed on MCP endpoints")
    if not isinstance(obj, dict):
        raise RpcError(INVALID_REQUEST, "Invalid request: a JSON-RPC message is a JSON object")
    if obj.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0"', None)
    has_id = "id" in obj
    # the error answering a request whose id could not be read has "id": null (JSON-RPC 2.0, section 5)
    unread_id_error = has_id and obj["id"] is None and "error" in obj and "method" not in obj
    if has_id and not valid_id(obj["id"]) and not unread_id_error:
        raise RpcError(INVALID_REQUEST, 'Invalid request: "id" must be a string or an integer (not null)')
    if "method" in obj:
        method, params = obj["method"], obj.get("params", {})
        if not isinstance(method, str) or not method:
            raise RpcError(INVALID_REQUEST, 'Invalid request: "method" must be a non-empty string', _id(obj))
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise RpcError(INVALID_REQUEST, 'Invalid request: "params" must be an object', _id(obj))
        return Request(obj["id"], method, params) if has_id else Notification(method, params)
    if "result" in obj or "error" in obj:
        result, error = obj.get("result"), obj.get("error")
        if ("result" in obj) == ("error" in obj) or (result is not None and not isinstance(result, dict)) \
                or (error is not None and not _valid_error(error)):
            raise RpcError(INVALID_REQUEST, "Invalid response: exactly one of a result object or an error object")
        return Response(obj.get("id"), result, error)
    raise RpcError(INVALID_REQUEST, 'Invalid request: no "method"', _id(obj))


def _valid_error(error: Any) -> bool:
    return isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str)


def _id(obj: dict) -> RequestId | None:
    value = obj.get("id")
    return value if valid_id(value) else None


def request(id: RequestId, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def result(id: RequestId, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "result": value}


def error(id: RequestId | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "id": id, "error": body}


def encode(message: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON without newlines (stdio frames end at one)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
