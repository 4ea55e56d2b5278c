"""MCP's Streamable HTTP transport, sans-IO: what to answer to one HTTP request on the MCP endpoint.

``StreamableHttp.open(request)`` checks the request (method, Origin against DNS rebinding, Host when the
listener is on loopback, content type, Accept, body size, the headers each revision requires) and either
refuses it at once (``HttpReply``) or hands the JSON-RPC message to the server; the messages the server
sends back arrive at the returned ``HttpExchange``, which says whether they go out as one JSON body or as
an SSE stream (the first message decides: a final response is sent as JSON; a notification ahead of it
opens a ``text/event-stream``). The asyncio side (``p2pnode.mcp.http``) only moves the bytes.

Revision rules: a request with ``_meta.io.modelcontextprotocol/protocolVersion`` is served statelessly
(2026-07-28): ``MCP-Protocol-Version``, ``Mcp-Method`` and, for ``tools/call``/``resources/read``/``prompts/get``,
``Mcp-Name`` must match the body (else -32020 HeaderMismatch, HTTP 400), and ``Mcp-Session-Id`` is
ignored. ``initialize`` opens a 2025-11-25 session whose ID the response carries in ``Mcp-Session-Id``;
later requests of that session must send it (missing: 400; unknown or closed: 404), and DELETE closes it.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from p2pnode.mcp import jsonrpc
from p2pnode.mcp.jsonrpc import Notification, Request, Response, RpcError
from p2pnode.mcp.server import LEGACY_VERSIONS, META_VERSION, MODERN_VERSIONS, Channel, McpServer

PATH = "/mcp"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
NAME_PARAMS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
# JSON-RPC error code -> HTTP status for 2026-07-28 requests (its transport text maps error classes to statuses;
# unlisted codes: 200). A rate limit is 429 and an overloaded server 503 (RFC 9110 / RFC 6585), each with
# Retry-After, so that HTTP intermediaries see them too; the body keeps the JSON-RPC error with the request's id.
# 2025-11-25 requests get these errors in a 200 (that revision maps only its session rules to statuses).
STATUS = {jsonrpc.PARSE_ERROR: 400, jsonrpc.INVALID_REQUEST: 400, jsonrpc.INVALID_PARAMS: 400,
          jsonrpc.HEADER_MISMATCH: 400, jsonrpc.MISSING_CLIENT_CAPABILITY: 400,
          jsonrpc.UNSUPPORTED_PROTOCOL_VERSION: 400, jsonrpc.METHOD_NOT_FOUND: 404,
          jsonrpc.RATE_LIMITED: 429, jsonrpc.SERVER_BUSY: 503}


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]  # names in lower case, in arrival order (duplicates kept)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def count(self, name: str) -> int:
        return sum(1 for k, _ in self.headers if k == name)


@dataclass
class HttpReply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def json_reply(status: int, message: dict[str, Any] | None, headers: Iterable[tuple[str, str]] = ()) -> HttpReply:
    body = jsonrpc.encode(message) if message is not None else b""
    hdrs = [("content-type", "application/json")] if message is not None else []
    return HttpReply(status, hdrs + list(headers), body)


def refuse(status: int, code: int, message: str, id: Any = None) -> HttpReply:
    return json_reply(status, jsonrpc.error(id, code, message))


def retry_after(error: dict[str, Any]) -> int:
    """Whole seconds for Retry-After: the error's ``retryAfterMs`` rounded up, else one."""
    data = error.get("data")
    wait = data.get("retryAfterMs") if isinstance(data, dict) else None
    return max(1, math.ceil(wait / 1000)) if isinstance(wait, int | float) and wait > 0 else 1


def decode_header_value(value: str) -> str | None:
    """``=?base64?...?=`` values decoded (None if malformed); others as they are."""
    if value.startswith("=?base64?") and value.endswith("?=") and len(value) >= 11:
        try:
            return base64.b64decode(value[9:-2], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    return value


def origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    if origin in allowed:
        return True
    try:
        parts = urlsplit(origin)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and host in LOOPBACK_HOSTS


def host_allowed(host: str) -> bool:
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:
        return False
    return name in LOOPBACK_HOSTS


class HttpExchange:
    """The answer to one POST as the server produces it: JSON, or SSE once a notification comes first."""

    def __init__(self, on_start: Callable[[HttpReply, bool], None], on_event: Callable[[bytes], None],
                 on_end: Callable[[], None], modern: bool):
        self.on_start = on_start   # (head and body-or-empty, streaming)
        self.on_event = on_event   # one SSE event
        self.on_end = on_end
        self.modern = modern
        self.streaming = False
        self.finished = False
        self.channel: Channel | None = None
        self.session_header: str | None = None

    def send(self, message: dict[str, Any]) -> None:
        if self.finished:
            return
        final = "id" in message and ("result" in message or "error" in message)
        headers = [("mcp-session-id", self.session_header)] if self.session_header else []
        if final and not self.streaming:
            self.finished = True
            status = 200
            error = message.get("error")
            if error is not None and (self.modern or error.get("code") in (jsonrpc.PARSE_ERROR,
                                                                           jsonrpc.INVALID_REQUEST)):
                status = STATUS.get(error.get("code"), 200)
            if status in (429, 503):
                headers.append(("retry-after", str(retry_after(error))))
            self.on_start(json_reply(status, message, headers), False)
            self.on_end()
            return
        if not self.streaming:
            self.streaming = True
            self.on_start(HttpReply(200, [("content-type", "text/event-stream"), ("cache-control", "no-cache"),
                                          ("x-accel-buffering", "no"), *headers]), True)
        self.on_event(b"event: message\r\ndata: " + jsonrpc.encode(message) + b"\r\n\r\n")
        if final:
            self.finished = True
            self.on_end()


class StreamableHttp:
    def __init__(self, server: McpServer, *, allowed_origins: Iterable[str] = (), check_host: bool = True,
                 max_body: int = 1 << 20):
        self.server = server
        self.allowed_origins = frozenset(allowed_origins)
        self.check_host = check_host  # on when the listener is on loopback (DNS-rebinding protection)
        self.max_body = max_body

    def check_head(self, request: HttpRequest, content_length: int | None) -> HttpReply | None:
        """Refusals that need no body (so an oversized or forbidden request is never read)."""
        origin = request.header("origin")
        if origin is not None and not origin_allowed(origin, self.allowed_origins):
            return refuse(403, jsonrpc.INVALID_REQUEST, f"Forbidden: Origin {origin} is not allowed")
        host = request.header("host")
        if self.check_host and (host is None or not host_allowed(host)):
            return refuse(421, jsonrpc.INVALID_REQUEST, f"Misdirected request: Host {host} is not this server")
        if request.method == "DELETE":
            return None
        if request.method != "POST":
            return HttpReply(405, [("allow", "POST, DELETE")])
        if content_length is None:
            return refuse(411, jsonrpc.INVALID_REQUEST, "Length required: send the body with Content-Length")
        if content_length > self.max_body:
            return refuse(413, jsonrpc.INVALID_REQUEST,
                          f"Request body of {content_length} bytes exceeds the {self.max_body}-byte limit")
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return refuse(415, jsonrpc.INVALID_REQUEST, "Unsupported media type: the body must be application/json")
        accept = (request.header("accept") or "").lower()
        if "*/*" not in accept and not ("application/json" in accept and "text/event-stream" in accept):
            return refuse(406, jsonrpc.INVALID_REQUEST,
                          "Not acceptable: Accept must list application/json and text/event-stream")
        return None

    def delete(self, request: HttpRequest) -> HttpReply:
        session_id = request.header("mcp-session-id")
        if session_id is None:
            return HttpReply(405, [("allow", "POST")])
        return HttpReply(200 if self.server.close_session(session_id) else 404)

    def open(self, request: HttpRequest, exchange_factory: Callable[[bool], HttpExchange]) -> HttpReply | None:
        """Hand the POST's message to the server; None when the answer comes through the exchange."""
        try:
            message = jsonrpc.parse(request.body)
        except RpcError as exc:
            return refuse(400, exc.code, exc.message, exc.data)
        version_header = request.header("mcp-protocol-version")
        for name in ("mcp-protocol-version", "mcp-method", "mcp-name"):
            if request.count(name) > 1:
                return refuse(400, jsonrpc.HEADER_MISMATCH, f"Header mismatch: {name} appears more than once",
                              getattr(message, "id", None))
        modern = isinstance(message, (Request, Notification)) and isinstance(message.params.get("_meta"), dict) \
            and META_VERSION in message.params["_meta"]
        if modern:
            mismatch = self._header_mismatch(request, message)
            if mismatch is not None:
                return refuse(400, jsonrpc.HEADER_MISMATCH, f"Header mismatch: {mismatch}",
                              getattr(message, "id", None))
            session = None
        else:
            if version_header is not None and version_header not in LEGACY_VERSIONS + MODERN_VERSIONS:
                return refuse(400, jsonrpc.INVALID_REQUEST, f"Bad request: unsupported MCP-Protocol-Version "
                              f"{version_header}", getattr(message, "id", None))
            session_id = request.header("mcp-session-id")
            session = self.server.sessions.get(session_id) if session_id is not None else None
            initializing = isinstance(message, Request) and message.method == "initialize"
            if session_id is not None and session is None and not initializing:
                return refuse(404, jsonrpc.INVALID_REQUEST, "Session not found: initialize a new one",
                              getattr(message, "id", None))
            if session is None and not initializing and version_header not in MODERN_VERSIONS \
                    and not (isinstance(message, Request) and message.method == "ping"):
                if isinstance(message, Request) or version_header is not None:
                    return refuse(400, jsonrpc.INVALID_REQUEST, "Bad request: no Mcp-Session-Id; send initialize "
                                  f"first (protocol {LEGACY_VERSIONS[0]}) or carry {META_VERSION} in params._meta "
                                  f"(protocol {MODERN_VERSIONS[0]})", getattr(message, "id", None))
        if isinstance(message, (Notification, Response)):
            channel = Channel(lambda m: None, session=session, headers_version=version_header)
            self.server.receive(message, channel)
            return HttpReply(202)
        exchange = exchange_factory(modern)
        channel = Channel(exchange.send, session=session, headers_version=version_header)
        exchange.channel = channel
        if message.method == "initialize":
            def send(reply: dict[str, Any]) -> None:
                if channel.session is not None and "result" in reply:
                    exchange.session_header = channel.session.id
                exchange.send(reply)
            channel.send = send
        self.server.receive(message, channel)
        return None

    def _header_mismatch(self, request: HttpRequest, message: Request | Notification) -> str | None:
        body_version = message.params["_meta"].get(META_VERSION)
        header = request.header("mcp-protocol-version")
        if header is None or header != body_version:
            return f"MCP-Protocol-Version {header!r} does not match the body's {body_version!r}"
        if isinstance(message, Notification):
            return None
        if request.header("mcp-method") != message.method:
            return f"Mcp-Method {request.header('mcp-method')!r} does not match the body's {message.method!r}"
        name_param = NAME_PARAMS.get(message.method)
        if name_param is not None:
            body_value = message.params.get(name_param)
            raw = request.header("mcp-name")
            if body_value is not None and (raw is None or decode_header_value(raw) != body_value):
                return f"Mcp-Name {raw!r} does not match the body's {name_param} {body_value!r}"
        return None

    def cancel(self, exchange: HttpExchange) -> None:
        """The client closed the connection before the answer: for 2026-07-28 that cancels the request."""
        channel = exchange.channel
        if channel is None or exchange.finished:
            return
        exchange.finished = True
        for pending in list(channel.in_flight.values()):
            if pending.modern:
                pending.cancel("the HTTP client closed the connection")
