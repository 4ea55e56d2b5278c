"""The MCP server, sans-IO: JSON-RPC messages in, JSON-RPC messages out through the channel they came on.

Both protocol revisions in use are served side by side, chosen per request by what the client sends, as
the 2026-07-28 text describes for a "dual-era" server:

- **2025-11-25** (and 2025-06-18, 2025-03-26): ``initialize`` opens a session (its ID travels in
  ``Mcp-Session-Id`` on HTTP; on stdio and peer streams the session is the connection), then
  ``notifications/initialized``; ``ping`` and ``logging/setLevel`` exist; results carry no ``resultType``.
- **2026-07-28**: stateless. Every request carries ``_meta`` with ``io.modelcontextprotocol/protocolVersion``
  and ``.../clientCapabilities``; ``server/discover`` says what the server speaks; there is no handshake,
  ``ping`` nor ``logging/setLevel``; every result has ``resultType`` and names the server in ``_meta``;
  list and read results carry ``ttlMs``/``cacheScope``.

Request parameters are checked against the official per-revision schemas (``mcp_types``, the SDK's pure
pydantic models). The server bounds what a client can claim: tool calls run at most
``max_concurrent`` at a time (a bounded queue waits behind them; beyond it the answer is "busy"), each for
at most ``request_timeout`` seconds; rate limits and tool permissions apply per calling peer.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mcp_types import methods as mcp_methods
from pydantic import ValidationError

from p2pnode.interface import Runtime, Timer
from p2pnode.mcp import jsonrpc
from p2pnode.mcp.jsonrpc import Notification, Request, RpcError
from p2pnode.mcp.metrics import McpMetrics
from p2pnode.mcp.tools import Tool, ToolCall
from p2pnode.security.access import AccessPolicy
from p2pnode.security.ratelimit import RateLimiter

log = logging.getLogger("p2pnode.mcp")

MODERN_VERSIONS = ("2026-07-28",)
LEGACY_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
LATEST_LEGACY = LEGACY_VERSIONS[0]
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_TOKEN = "p2pnode/capability"  # a peer's signed capability token (p2pnode.security.capability)
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
META_HOPS = "io.p2pnode/hops"  # ours: how many nodes a forwarded call already passed
CACHEABLE = {"server/discover", "tools/list", "resources/list", "resources/read", "resources/templates/list"}
REMOVED_IN_MODERN = {"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"}
QUEUE_FACTOR = 4  # tool calls that may wait behind the running ones, per allowed concurrent call


@dataclass(frozen=True)
class Resource:
    uri: str
    name: str
    description: str
    read: Callable[[], str]
    mime_type: str = "application/json"
    ttl_ms: int = 1000  # how long a client may cache what it read (node facts change)

    def definition(self) -> dict[str, Any]:
        return {"uri": self.uri, "name": self.name, "description": self.description, "mimeType": self.mime_type}


@dataclass
class Session:
    """A 2025-11-25 session, opened by ``initialize``."""

    id: str
    version: str
    client_info: dict[str, Any]
    capabilities: dict[str, Any]
    opened: float
    initialized: bool = False
    log_level: str = "info"
    in_flight: dict[Any, Exchange] = field(default_factory=dict)


class Channel:
    """Where one client's messages come from and answers go: an HTTP request, a stdio process, a peer stream.

    ``caller`` is the peer ID (base58) of a remote peer, None for a local client. ``session`` is the legacy
    session the messages belong to (the HTTP layer sets it from ``Mcp-Session-Id``; ``initialize`` sets it
    on connection-scoped channels). ``send`` is given each outgoing message (progress notifications first,
    the final response last)."""

    def __init__(self, send: Callable[[dict[str, Any]], None], caller: str | None = None,
                 session: Session | None = None, headers_version: str | None = None):
        self.send = send
        self.caller = caller
        self.session = session
        self.headers_version = headers_version  # HTTP: the MCP-Protocol-Version header, if any
        self.in_flight: dict[Any, Exchange] = {}


class Exchange:
    """One request being answered."""

    def __init__(self, server: McpServer, channel: Channel, request: Request, version: str, modern: bool):
        self.server = server
        self.channel = channel
        self.request = request
        self.version = version
        self.modern = modern
        self.started = server.runtime.now()
        meta = request.params.get("_meta")
        meta = meta if isinstance(meta, dict) else {}
        token = meta.get("progressToken")
        self.progress_token = token if jsonrpc.valid_id(token) else None
        hops = meta.get(META_HOPS, 0)
        self.hops = hops if isinstance(hops, int) and not isinstance(hops, bool) else 0
        self.label = request.method  # the metric label: the tool's name for tools/call
        self.active = True
        self.running = False  # counted among the server's running tool calls
        self.call: ToolCall | None = None
        self.timer: Timer | None = None
        self._progress = 0.0
        self._scope: dict[Any, Exchange] | None = None

    # ---- what handlers call ----------------------------------------------------------------------

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """``notifications/progress``, if the client asked for it; progress only ever increases."""
        if not self.active or self.progress_token is None or done <= self._progress:
            return
        self._progress = done
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": done}
        if total is not None:
            params["total"] = total
        if message:
            params["message"] = message
        self.channel.send(jsonrpc.notification("notifications/progress", params))

    def reply(self, value: dict[str, Any], outcome: str = "ok") -> None:
        if not self.active:
            return
        if self.modern:
            value = {**value, "resultType": "complete",
                     "_meta": {**value.get("_meta", {}), META_SERVER_INFO: self.server.info}}
        self._end(outcome)
        self.channel.send(jsonrpc.result(self.request.id, value))

    def fail(self, code: int, message: str, data: Any = None, outcome: str = "error") -> None:
        if not self.active:
            return
        self._end(outcome)
        self.channel.send(jsonrpc.error(self.request.id, code, message, data))

    def tool_result(self, structured: dict[str, Any] | None, text: str, is_error: bool,
                    outcome: str | None = None) -> None:
        result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": is_error}
        if structured is not None:
            result["structuredContent"] = structured
        self.reply(result, outcome or ("tool_error" if is_error else "ok"))

    def cancel(self, reason: str = "") -> None:
        """The client gave up on the request: stop its work and send nothing more for it."""
        if not self.active:
            return
        log.debug("request %r (%s) cancelled: %s", self.request.id, self.label, reason or "no reason given")
        self._end("cancelled")

    # ---- internals -------------------------------------------------------------------------------

    def _end(self, outcome: str) -> None:
        self.active = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self._scope is not None:
            self._scope.pop(self.request.id, None)
        if self.call is not None and outcome in ("cancelled", "timeout"):
            self.call.cancelled()
        self.server._ended(self, outcome)


class McpServer:
    def __init__(
        self,
        runtime: Runtime,
        tools: Iterable[Tool] = (),
        resources: Iterable[Resource] = (),
        *,
        name: str = "p2pnode",
        version: str = "0",
        instructions: str = "",
        available_tools: Iterable[str] | None = None,
        max_concurrent: int = 100,
        request_timeout: float = 30.0,
        page_size: int = 50,
        access: AccessPolicy | None = None,
        limiter: RateLimiter | None = None,
        session_id: Callable[[], str] = lambda: secrets.token_hex(16),
        extra_methods: dict[str, Callable[[Exchange], None]] | None = None,
    ):
        self.runtime = runtime
        self.tools = {tool.name: tool for tool in tools}
        self.resources = {resource.uri: resource for resource in resources}
        self.info = {"name": name, "version": version}
        self.instructions = instructions
        self.available = set(self.tools) if available_tools is None else set(available_tools) & set(self.tools)
        self.max_concurrent = max_concurrent
        self.request_timeout = request_timeout
        self.page_size = page_size
        self.access = access or AccessPolicy({"*": ["*"]})
        self.limiter = limiter
        self.new_session_id = session_id
        self.sessions: dict[str, Session] = {}
        self.metrics = McpMetrics()
        self.running = 0  # tool calls executing now
        self.waiting: deque[Exchange] = deque()
        # methods beyond MCP's, for peers (routing through the overlay): not schema-checked by mcp_types
        self.extra_methods = extra_methods or {}
        self.handlers: dict[str, Callable[[Exchange], None]] = {
            "tools/list": self._tools_list,
            "tools/call": self._tools_call,
            "resources/list": self._resources_list,
            "resources/read": self._resources_read,
            "resources/templates/list": lambda ex: ex.reply({"resourceTemplates": []}),
            "server/discover": self._discover,
            "ping": lambda ex: ex.reply({}),
            "logging/setLevel": self._set_level,
        }

    # ---- input -----------------------------------------------------------------------------------

    def receive_bytes(self, data: bytes | str, channel: Channel) -> None:
        """Parse one JSON-RPC message and handle it; a parse failure is answered on ``channel``."""
        try:
            message = jsonrpc.parse(data)
        except RpcError as exc:
            self.metrics.count("(invalid)", "invalid", 0.0)
            channel.send(jsonrpc.error(exc.data, exc.code, exc.message))
            return
        self.receive(message, channel)

    def receive(self, message: jsonrpc.Message, channel: Channel) -> None:
        if isinstance(message, Notification):
            self._notification(message, channel)
        elif isinstance(message, Request):
            self._request(message, channel)
        # a Response: the server sends no requests of its own, so there is nothing it answers; dropped

    def _notification(self, message: Notification, channel: Channel) -> None:
        params = message.params
        if message.method == "notifications/initialized":
            if channel.session is not None:
                channel.session.initialized = True
        elif message.method == "notifications/cancelled":
            wanted = params.get("requestId")
            exchange = channel.in_flight.get(wanted)
            if exchange is None and channel.session is not None:
                exchange = channel.session.in_flight.get(wanted)
            if exchange is not None:
                exchange.cancel(str(params.get("reason", "")))
        # others (progress, roots/list_changed): nothing to do; unknown notifications are ignored

    def _request(self, request: Request, channel: Channel) -> None:
        now = self.runtime.now()
        method, params = request.method, request.params
        meta = params.get("_meta")
        try:
            if self.limiter is not None and (refusal := self.limiter.admit(channel.caller, now)) is not None:
                raise RpcError(jsonrpc.RATE_LIMITED,
                               f"Rate limit exceeded: {refusal.limit:g} requests/s ({refusal.scope} limit)",
                               {"scope": refusal.scope, "limit": refusal.limit,
                                "retryAfterMs": int(refusal.retry_after * 1000) + 1})
            if isinstance(meta, dict) and META_TOKEN in meta and channel.caller is not None:
                problem = self.access.present(channel.caller, meta[META_TOKEN])
                if problem is not None:
                    log.warning("capability token from peer %s refused: %s", channel.caller, problem)
                    raise RpcError(jsonrpc.ACCESS_DENIED, f"Capability token refused: {problem}")
            if method == "initialize":
                exchange = self._initialize(request, channel)
            elif isinstance(meta, dict) and META_VERSION in meta:
                exchange = self._modern(request, channel, meta)
            elif channel.session is not None:
                exchange = Exchange(self, channel, request, channel.session.version, modern=False)
            elif channel.headers_version in MODERN_VERSIONS or method == "server/discover":
                raise RpcError(jsonrpc.INVALID_PARAMS, f"params._meta must carry {META_VERSION} and "
                               f"{META_CAPABILITIES} (protocol 2026-07-28)")
            elif method == "ping":
                exchange = Exchange(self, channel, request, LATEST_LEGACY, modern=False)
            else:
                raise RpcError(jsonrpc.INVALID_PARAMS,
                               f"no session: send initialize first (protocol {LATEST_LEGACY}), or carry "
                               f"{META_VERSION} in params._meta (protocol {MODERN_VERSIONS[0]})")
        except RpcError as exc:
            label = "(rate limited)" if exc.code == jsonrpc.RATE_LIMITED else method
            self.metrics.count(label, "rate_limited" if exc.code == jsonrpc.RATE_LIMITED else "invalid", 0.0)
            channel.send(jsonrpc.error(request.id, exc.code, exc.message, exc.data))
            return
        if exchange is None:  # initialize answered already
            return
        self._dispatch(exchange)

    def _modern(self, request: Request, channel: Channel, meta: dict[str, Any]) -> Exchange:
        if META_CAPABILITIES not in meta:
            raise RpcError(jsonrpc.INVALID_PARAMS, f"params._meta lacks {META_CAPABILITIES}")
        version = meta[META_VERSION]
        if not isinstance(version, str):
            raise RpcError(jsonrpc.INVALID_PARAMS, f"params._meta {META_VERSION} must be a string")
        if version not in MODERN_VERSIONS:
            if version in LEGACY_VERSIONS and channel.session is not None:
                return Exchange(self, channel, request, channel.session.version, modern=False)
            raise RpcError(jsonrpc.UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version",
                           {"supported": list(MODERN_VERSIONS), "requested": version})
        if request.method in REMOVED_IN_MODERN:
            raise RpcError(jsonrpc.METHOD_NOT_FOUND, f"Method not found: {request.method} is not part of "
                           f"protocol {version}")
        return Exchange(self, channel, request, version, modern=True)

    def _initialize(self, request: Request, channel: Channel) -> None:
        self._check_params(request.method, LATEST_LEGACY, request.params)
        params = request.params
        requested = params.get("protocolVersion")
        version = requested if requested in LEGACY_VERSIONS else LATEST_LEGACY
        session = Session(self.new_session_id(), version, params.get("clientInfo") or {},
                          params.get("capabilities") or {}, self.runtime.now())
        self.sessions[session.id] = session
        channel.session = session
        result = {
            "protocolVersion": version,
            "capabilities": self.capabilities(legacy=True),
            "serverInfo": self.info,
        }
        if self.instructions:
            result["instructions"] = self.instructions
        self.metrics.count("initialize", "ok", 0.0)
        channel.send(jsonrpc.result(request.id, result))

    def close_session(self, session_id: str) -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        for exchange in list(session.in_flight.values()):
            exchange.cancel("session closed")
        return True

    def _check_params(self, method: str, version: str, params: dict[str, Any]) -> None:
        try:
            mcp_methods.validate_client_request(method, version, params)
        except KeyError:
            raise RpcError(jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"] if p not in ("params",)) or "params"
            raise RpcError(jsonrpc.INVALID_PARAMS, f"Invalid params: {where}: {first['msg']}") from None

    def _dispatch(self, exchange: Exchange) -> None:
        request = exchange.request
        scope = exchange.channel.session.in_flight if not exchange.modern and exchange.channel.session \
            else exchange.channel.in_flight
        if request.id in scope:
            exchange.active = False
            exchange.channel.send(jsonrpc.error(request.id, jsonrpc.INVALID_REQUEST,
                                                f"Invalid request: id {request.id!r} is already in flight"))
            return
        extra = self.extra_methods.get(request.method)
        handler = extra or self.handlers.get(request.method)
        try:
            if handler is None:
                raise RpcError(jsonrpc.METHOD_NOT_FOUND, f"Method not found: {request.method}")
            if extra is None:
                self._check_params(request.method, exchange.version, request.params)
        except RpcError as exc:
            exchange.fail(exc.code, exc.message, exc.data, outcome="invalid")
            return
        scope[request.id] = exchange
        exchange._scope = scope
        try:
            handler(exchange)
        except RpcError as exc:
            exchange.fail(exc.code, exc.message, exc.data, outcome="invalid")
        except Exception as exc:  # a bug in a handler: the client gets an internal error, the log the trace
            log.exception("MCP %s failed", request.method)
            exchange.fail(jsonrpc.INTERNAL_ERROR, f"Internal error: {type(exc).__name__}")

    def _ended(self, exchange: Exchange, outcome: str) -> None:
        self.metrics.count(exchange.label, outcome, self.runtime.now() - exchange.started)
        if exchange.running:
            exchange.running = False
            self.running -= 1
            self._start_waiting()

    # ---- lifecycle methods -----------------------------------------------------------------------

    def capabilities(self, legacy: bool = False) -> dict[str, Any]:
        caps: dict[str, Any] = {"tools": {"listChanged": False}, "resources": {"listChanged": False}}
        if legacy:
            caps["logging"] = {}
        return caps

    def _discover(self, exchange: Exchange) -> None:
        result = {"supportedVersions": list(MODERN_VERSIONS), "capabilities": self.capabilities(),
                  "ttlMs": 60_000, "cacheScope": "public"}
        if self.instructions:
            result["instructions"] = self.instructions
        exchange.reply(result)

    def _set_level(self, exchange: Exchange) -> None:
        exchange.channel.session.log_level = exchange.request.params.get("level", "info")
        exchange.reply({})

    # ---- tools -----------------------------------------------------------------------------------

    def visible_tools(self, caller: str | None) -> list[Tool]:
        """The tools ``caller`` may use, in a fixed order (the spec asks for a deterministic one)."""
        return [self.tools[name] for name in sorted(self.available) if self.access.allows(caller, name)]

    def _page(self, exchange: Exchange, items: list[Any]) -> tuple[list[Any], str | None]:
        cursor = exchange.request.params.get("cursor")
        start = 0
        if cursor is not None:
            try:
                start = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("offset:"))
            except (ValueError, UnicodeDecodeError):
                raise RpcError(jsonrpc.INVALID_PARAMS, f"Invalid params: cursor {cursor!r} is not one this "
                               "server gave out") from None
            if not 0 <= start <= len(items):
                raise RpcError(jsonrpc.INVALID_PARAMS, f"Invalid params: cursor {cursor!r} is out of range")
        end = start + self.page_size
        following = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode() if end < len(items) else None
        return items[start:end], following

    def _tools_list(self, exchange: Exchange) -> None:
        page, following = self._page(exchange, self.visible_tools(exchange.channel.caller))
        result: dict[str, Any] = {"tools": [tool.definition() for tool in page]}
        if following is not None:
            result["nextCursor"] = following
        if exchange.modern:
            result.update(ttlMs=10_000, cacheScope="private" if exchange.channel.caller else "public")
        exchange.reply(result)

    def _tools_call(self, exchange: Exchange) -> None:
        params = exchange.request.params
        name = params["name"]
        tool = self.tools.get(name) if name in self.available else None
        if tool is None:
            raise RpcError(jsonrpc.INVALID_PARAMS, f"Unknown tool: {name}")
        exchange.label = name
        caller = exchange.channel.caller
        if not self.access.check(caller, name):
            log.warning("denied %s to peer %s (not among the tools it may call)", name, caller)
            exchange.fail(jsonrpc.ACCESS_DENIED, f"Access denied: peer {caller} may not call {name}",
                          {"tool": name}, outcome="denied")
            return
        arguments = params.get("arguments") or {}
        errors = tool.argument_errors(arguments)
        if errors:
            exchange.tool_result(None, "Invalid arguments: " + "; ".join(errors), True, outcome="invalid")
            return
        exchange.call = ToolCall(tool, arguments, exchange)
        if self.running < self.max_concurrent:
            self._run(exchange)
        elif len(self.waiting) < self.max_concurrent * QUEUE_FACTOR:
            self.waiting.append(exchange)
        else:
            exchange.fail(jsonrpc.SERVER_BUSY, f"Server busy: {self.running} tool calls running and "
                          f"{len(self.waiting)} waiting", outcome="busy")

    def _run(self, exchange: Exchange) -> None:
        self.running += 1
        exchange.running = True
        call = exchange.call
        exchange.timer = self.runtime.call_later(self.request_timeout, lambda: self._timed_out(exchange))
        try:
            call.tool.run(call)
        except Exception as exc:
            log.exception("tool %s failed", call.tool.name)
            exchange.tool_result(None, f"{call.tool.name} failed: {type(exc).__name__}: {exc}", True)

    def _start_waiting(self) -> None:
        while self.waiting and self.running < self.max_concurrent:
            exchange = self.waiting.popleft()
            if exchange.active:
                self._run(exchange)

    def _timed_out(self, exchange: Exchange) -> None:
        exchange.timer = None
        exchange.tool_result(None, f"{exchange.label} did not finish within the {self.request_timeout:g} s "
                             "request timeout", True, outcome="timeout")

    # ---- resources -------------------------------------------------------------------------------

    def _resources_list(self, exchange: Exchange) -> None:
        page, following = self._page(exchange, list(self.resources.values()))
        result: dict[str, Any] = {"resources": [r.definition() for r in page]}
        if following is not None:
            result["nextCursor"] = following
        if exchange.modern:
            result.update(ttlMs=60_000, cacheScope="public")
        exchange.reply(result)

    def _resources_read(self, exchange: Exchange) -> None:
        uri = exchange.request.params["uri"]
        resource = self.resources.get(uri)
        if resource is None:
            # 2026-07-28 moved "resource not found" to -32602; 2025-11-25 used -32002
            code = jsonrpc.INVALID_PARAMS if exchange.modern else jsonrpc.RESOURCE_NOT_FOUND_LEGACY
            exchange.fail(code, f"Resource not found: {uri}", {"uri": uri}, outcome="invalid")
            return
        result: dict[str, Any] = {"contents": [{"uri": uri, "mimeType": resource.mime_type, "text": resource.read()}]}
        if exchange.modern:
            result.update(ttlMs=resource.ttl_ms, cacheScope="private")
        exchange.reply(result)
