"""The sans-IO MCP server: both revisions' lifecycle, JSON-RPC errors, tools, resources, progress,
cancellation, limits. Results are checked against the official per-revision schemas (mcp_types)."""

from __future__ import annotations

import json

import pytest
from mcp_types import methods as mcp_methods

from p2pnode.mcp import jsonrpc
from p2pnode.mcp.server import Channel, McpServer, Resource
from p2pnode.mcp.tools import Tool
from p2pnode.security.access import AccessPolicy
from p2pnode.security.ratelimit import RateLimiter
from tests.mcp.clock import Clock

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"}}


def add(call):
    call.finish({"sum": call.arguments["a"] + call.arguments["b"]})


def slow(call):
    pending.append(call)


pending: list = []
SUM = Tool("add", "Adds two integers", {"type": "object", "properties": {"a": {"type": "integer"},
           "b": {"type": "integer"}}, "required": ["a", "b"], "additionalProperties": False},
           {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}, add)
SLOW = Tool("slow", "Finishes when the test says so", {"type": "object"},
            {"type": "object", "properties": {"n": {"type": "integer"}}}, slow)


class Client:
    """One channel to the server, remembering everything it was sent."""

    def __init__(self, server: McpServer, caller: str | None = None):
        self.server = server
        self.out: list[dict] = []
        self.channel = Channel(self.out.append, caller=caller)
        self.ids = iter(range(1, 10**6))

    def request(self, method: str, params: dict | None = None, modern: bool = True) -> dict:
        params = dict(params or {})
        if modern:
            params["_meta"] = {**META, **params.get("_meta", {})}
        self.server.receive_bytes(json.dumps(jsonrpc.request(next(self.ids), method, params)), self.channel)
        return self.out[-1] if self.out else {}

    def notify(self, method: str, params: dict | None = None) -> None:
        self.server.receive_bytes(json.dumps(jsonrpc.notification(method, params)), self.channel)


@pytest.fixture
def clock():
    pending.clear()
    return Clock()


@pytest.fixture
def server(clock):
    status = Resource("p2pnode://node/status", "status", "node status", lambda: json.dumps({"ok": True}))
    return McpServer(clock, [SUM, SLOW], [status], name="p2pnode", version="0.1.0", page_size=1,
                     max_concurrent=2, request_timeout=5.0)


def check(method: str, version: str, response: dict) -> dict:
    assert "result" in response, response
    mcp_methods.validate_server_result(method, version, response["result"])
    return response["result"]


def test_modern_discover_and_list_pages(server):
    client = Client(server)
    discovered = check("server/discover", MODERN, client.request("server/discover"))
    assert discovered["supportedVersions"] == [MODERN] and discovered["resultType"] == "complete"
    assert discovered["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "p2pnode"
    first = check("tools/list", MODERN, client.request("tools/list"))
    assert [t["name"] for t in first["tools"]] == ["add"] and first["ttlMs"] >= 0 and first["cacheScope"]
    second = check("tools/list", MODERN, client.request("tools/list", {"cursor": first["nextCursor"]}))
    assert [t["name"] for t in second["tools"]] == ["slow"] and "nextCursor" not in second
    bad = client.request("tools/list", {"cursor": "nonsense!"})
    assert bad["error"]["code"] == jsonrpc.INVALID_PARAMS


def test_modern_tool_call_and_tool_errors(server):
    client = Client(server)
    result = check("tools/call", MODERN, client.request("tools/call", {"name": "add", "arguments": {"a": 2, "b": 3}}))
    assert result["structuredContent"] == {"sum": 5} and result["isError"] is False
    assert json.loads(result["content"][0]["text"]) == {"sum": 5}
    wrong = check("tools/call", MODERN, client.request("tools/call", {"name": "add", "arguments": {"a": "x"}}))
    assert wrong["isError"] and "a: 'x' is not of type 'integer'" in wrong["content"][0]["text"]
    assert "'b' is a required property" in wrong["content"][0]["text"]
    unknown = client.request("tools/call", {"name": "nope", "arguments": {}})
    assert unknown["error"]["code"] == jsonrpc.INVALID_PARAMS and "nope" in unknown["error"]["message"]
    assert server.metrics.requests[("add", "ok")] == 1 and server.metrics.requests[("add", "invalid")] == 1


def test_modern_envelope_rules(server):
    client = Client(server)
    missing = client.request("tools/list", {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}},
                             modern=False)
    assert missing["error"]["code"] == jsonrpc.INVALID_PARAMS
    old = client.request("tools/list", {"_meta": {"io.modelcontextprotocol/protocolVersion": "1900-01-01"}})
    assert old["error"]["code"] == jsonrpc.UNSUPPORTED_PROTOCOL_VERSION
    assert old["error"]["data"] == {"supported": [MODERN], "requested": "1900-01-01"}
    assert client.request("ping")["error"]["code"] == jsonrpc.METHOD_NOT_FOUND
    assert client.request("logging/setLevel", {"level": "info"})["error"]["code"] == jsonrpc.METHOD_NOT_FOUND
    assert client.request("no/such")["error"]["code"] == jsonrpc.METHOD_NOT_FOUND
    nameless = client.request("tools/call", {"arguments": {}})
    assert nameless["error"]["code"] == jsonrpc.INVALID_PARAMS and "name" in nameless["error"]["message"]


def test_legacy_lifecycle(server):
    client = Client(server)
    before = client.request("tools/list", modern=False)
    assert before["error"]["code"] == jsonrpc.INVALID_PARAMS and "initialize" in before["error"]["message"]
    assert "result" in client.request("ping", modern=False)  # ping may come before initialize
    init = client.request("initialize", {"protocolVersion": LEGACY, "capabilities": {},
                                         "clientInfo": {"name": "t", "version": "1"}}, modern=False)
    result = check("initialize", LEGACY, init)
    assert result["protocolVersion"] == LEGACY and "tools" in result["capabilities"]
    assert client.channel.session is not None and client.channel.session.id in server.sessions
    client.notify("notifications/initialized")
    assert client.channel.session.initialized
    listed = check("tools/list", LEGACY, client.request("tools/list", modern=False))
    assert "resultType" not in listed and "ttlMs" not in listed
    assert check("ping", LEGACY, client.request("ping", modern=False)) == {}
    assert check("logging/setLevel", LEGACY, client.request("logging/setLevel", {"level": "debug"}, modern=False)) == {}
    # an unknown version is answered with the newest one the server speaks
    other = Client(server)
    init = other.request("initialize", {"protocolVersion": "2024-01-01", "capabilities": {},
                                        "clientInfo": {"name": "t", "version": "1"}}, modern=False)
    assert init["result"]["protocolVersion"] == LEGACY


def test_resources_in_both_revisions(server):
    client = Client(server)
    listed = check("resources/list", MODERN, client.request("resources/list"))
    assert listed["resources"][0]["uri"] == "p2pnode://node/status"
    read = check("resources/read", MODERN, client.request("resources/read", {"uri": "p2pnode://node/status"}))
    assert json.loads(read["contents"][0]["text"]) == {"ok": True}
    assert client.request("resources/read", {"uri": "p2pnode://nope"})["error"]["code"] == jsonrpc.INVALID_PARAMS
    client.request("initialize", {"protocolVersion": LEGACY, "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}}, modern=False)
    missing = client.request("resources/read", {"uri": "p2pnode://nope"}, modern=False)
    assert missing["error"]["code"] == jsonrpc.RESOURCE_NOT_FOUND_LEGACY


@pytest.mark.parametrize("data, code", [
    (b"{not json", jsonrpc.PARSE_ERROR),
    (b"[]", jsonrpc.INVALID_REQUEST),
    (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', jsonrpc.INVALID_REQUEST),
    (b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}', jsonrpc.INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": null, "method": "ping"}', jsonrpc.INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}', jsonrpc.INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 1, "method": 7}', jsonrpc.INVALID_REQUEST),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]}', jsonrpc.INVALID_REQUEST),
    (b'"hello"', jsonrpc.INVALID_REQUEST),
])
def test_bad_messages_get_the_json_rpc_error(server, data, code):
    client = Client(server)
    server.receive_bytes(data, client.channel)
    assert client.out[-1]["error"]["code"] == code
    assert check("tools/list", MODERN, client.request("tools/list"))  # still serving


def test_an_error_response_with_a_null_id_is_read():
    # found by fuzzing: the server's own answer to an unparsable request ("id": null, as JSON-RPC 2.0 says)
    # was refused when read back
    answer = jsonrpc.error(None, jsonrpc.PARSE_ERROR, "Parse error")
    assert jsonrpc.parse(jsonrpc.encode(answer)) == jsonrpc.Response(None, None, answer["error"])
    for data in (b'{"jsonrpc": "2.0", "id": null, "result": {}}', b'{"jsonrpc": "2.0", "id": null, "method": "x"}'):
        with pytest.raises(jsonrpc.RpcError):
            jsonrpc.parse(data)


def test_progress_cancellation_and_timeout(server, clock):
    client = Client(server)
    client.request("tools/call", {"name": "slow", "arguments": {}, "_meta": {"progressToken": "p1"}})
    call = pending.pop()
    call.progress(1, 3, "one")
    call.progress(1, 3, "not again")  # progress must increase
    call.progress(2, 3)
    assert [m["params"]["progress"] for m in client.out] == [1, 2]
    call.finish({"n": 1})
    assert client.out[-1]["result"]["structuredContent"] == {"n": 1}
    # cancelled: the hook runs and nothing more is sent
    client.request("tools/call", {"name": "slow", "arguments": {}})
    call, stopped = pending.pop(), []
    call.on_cancel(lambda: stopped.append(True))
    sent = len(client.out)
    client.notify("notifications/cancelled", {"requestId": 2, "reason": "user"})
    call.finish({"n": 2})
    assert stopped == [True] and len(client.out) == sent and server.running == 0
    # timed out: an isError result after request_timeout
    client.request("tools/call", {"name": "slow", "arguments": {}})
    call = pending.pop()
    clock.advance(5.1)
    assert client.out[-1]["result"]["isError"] and "timeout" in client.out[-1]["result"]["content"][0]["text"]
    assert server.metrics.requests[("slow", "timeout")] == 1 and server.running == 0


def test_concurrency_limit_queues_then_refuses(server):
    client = Client(server)
    for _ in range(2 + 2 * 4):  # two run, eight wait
        client.request("tools/call", {"name": "slow", "arguments": {}})
    assert server.running == 2 and len(server.waiting) == 8 and len(pending) == 2
    busy = client.request("tools/call", {"name": "slow", "arguments": {}})
    assert busy["error"]["code"] == jsonrpc.SERVER_BUSY
    while pending:
        pending.pop(0).finish({"n": 0})
    answered = [m for m in client.out if "result" in m]
    assert len(answered) == 10 and server.running == 0 and not server.waiting


def test_rate_limit_and_access_control(clock):
    server = McpServer(clock, [SUM, SLOW], access=AccessPolicy({"*": ["add"]}), limiter=RateLimiter(2, 3))
    peer = Client(server, caller="12D3KooWpeer")
    assert [t["name"] for t in peer.request("tools/list")["result"]["tools"]] == ["add"]
    denied = peer.request("tools/call", {"name": "slow", "arguments": {}})
    assert denied["error"]["code"] == jsonrpc.ACCESS_DENIED
    assert server.access.denials[("12D3KooWpeer", "slow")] == 1
    limited = peer.request("tools/list")
    assert limited["error"]["code"] == jsonrpc.RATE_LIMITED and limited["error"]["data"]["scope"] == "peer"
    assert "result" in Client(server).request("tools/list")  # another caller: the total limit still has a token
    assert Client(server).request("tools/list")["error"]["data"]["scope"] == "total"
    clock.advance(1.0)
    assert "result" in peer.request("tools/list")
