"""Bad input on /mcp of a real node: each gets the right HTTP status and JSON-RPC error, and the node keeps
serving. Plus 100+ concurrent requests on one node, and the MCP metrics."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.mcp.procs import NodeProcess, write_config

MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    proc = NodeProcess(write_config(tmp_path_factory.mktemp("http"), extra="max_body_bytes = 65536"))
    yield proc
    assert proc.proc.poll() is None, "the node died"
    proc.stop()


def post(node, body, headers=None, method="POST", path="/mcp"):
    parts = urlsplit(node.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", "Accept": ACCEPT, **(headers or {})}
    conn.request(method, path, data if method == "POST" else None, hdrs)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode()
    return response.status, dict((k.lower(), v) for k, v in response.getheaders()), parsed


def modern(method, params=None, id=1, **headers):
    body = {"jsonrpc": "2.0", "id": id, "method": method, "params": {**(params or {}), "_meta": dict(META)}}
    hdrs = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if method == "tools/call":
        hdrs["Mcp-Name"] = (params or {}).get("name", "")
    hdrs.update(headers)
    return body, {k: v for k, v in hdrs.items() if v is not None}


def serving(node) -> bool:
    status, _, body = post(node, *modern("tools/call", {"name": "get_status", "arguments": {}}))
    return status == 200 and body["result"]["structuredContent"]["peer_id"] == node.peer_id


@pytest.mark.parametrize("case, status, code", [
    ("malformed JSON", 400, -32700),
    ("batch", 400, -32600),
    ("id null", 400, -32600),
    ("params wrong type", 400, -32600),
    ("unknown method", 404, -32601),
    ("unknown tool", 400, -32602),
    ("tool call without name", 400, -32602),
    ("missing _meta capabilities", 400, -32602),
    ("unsupported version in _meta", 400, -32022),
    ("version header mismatch", 400, -32020),
    ("version header missing", 400, -32020),
    ("Mcp-Method mismatch", 400, -32020),
    ("Mcp-Name mismatch", 400, -32020),
    ("no session (2025-11-25)", 400, -32600),
    ("unknown session", 404, -32600),
    ("bad legacy version header", 400, -32600),
    ("foreign Origin", 403, -32600),
    ("foreign Host", 421, -32600),
    ("oversized body", 413, -32600),
    ("wrong content type", 415, -32600),
    ("Accept without SSE", 406, -32600),
])
def test_bad_requests(node, case, status, code):
    body, headers = modern("tools/list")
    if case == "malformed JSON":
        body = b'{"jsonrpc": "2.0", "id": 1, "method": '
    elif case == "batch":
        body = [body]
    elif case == "id null":
        body["id"] = None
    elif case == "params wrong type":
        body["params"] = ["x"]
    elif case == "unknown method":
        body, headers = modern("tools/frobnicate")
    elif case == "unknown tool":
        body, headers = modern("tools/call", {"name": "teleport", "arguments": {}})
    elif case == "tool call without name":
        body, headers = modern("tools/call", {"arguments": {}})
    elif case == "missing _meta capabilities":
        del body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]
    elif case == "unsupported version in _meta":
        body["params"]["_meta"] = {**META, "io.modelcontextprotocol/protocolVersion": "1999-01-01"}
        headers["MCP-Protocol-Version"] = "1999-01-01"
    elif case == "version header mismatch":
        headers["MCP-Protocol-Version"] = "2025-11-25"
    elif case == "version header missing":
        del headers["MCP-Protocol-Version"]
    elif case == "Mcp-Method mismatch":
        headers["Mcp-Method"] = "tools/call"
    elif case == "Mcp-Name mismatch":
        body, headers = modern("tools/call", {"name": "get_status", "arguments": {}}, **{"Mcp-Name": "configure"})
    elif case == "no session (2025-11-25)":
        body, headers = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, {"MCP-Protocol-Version": "2025-11-25"}
    elif case == "unknown session":
        body, headers = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, {"Mcp-Session-Id": "deadbeef"}
    elif case == "bad legacy version header":
        body, headers = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, {"MCP-Protocol-Version": "1.0"}
    elif case == "foreign Origin":
        headers["Origin"] = "http://evil.example"
    elif case == "foreign Host":
        headers["Host"] = "evil.example:8545"
    elif case == "oversized body":
        body["params"]["padding"] = "x" * 70_000
    elif case == "wrong content type":
        headers["Content-Type"] = "text/plain"
    elif case == "Accept without SSE":
        headers["Accept"] = "application/json"
    got_status, _, got = post(node, body, headers)
    assert (got_status, got["error"]["code"]) == (status, code), got
    assert serving(node)


def test_origin_and_methods(node):
    body, headers = modern("tools/list")
    for origin in (None, "http://localhost:3000", "http://127.0.0.1", "http://[::1]:8080"):
        status, _, got = post(node, body, {**headers, **({"Origin": origin} if origin else {})})
        assert status == 200 and "tools" in got["result"], origin
    assert post(node, b"", method="GET")[0] == 405
    assert post(node, b"", method="DELETE")[0] == 405  # no session named
    assert post(node, b"", {"Mcp-Session-Id": "nope"}, method="DELETE")[0] == 404


def test_legacy_session_over_http(node):
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    status, headers, got = post(node, init)
    assert status == 200 and got["result"]["protocolVersion"] == "2025-11-25"
    session = headers["mcp-session-id"]
    legacy = {"MCP-Protocol-Version": "2025-11-25", "Mcp-Session-Id": session}
    assert post(node, {"jsonrpc": "2.0", "method": "notifications/initialized"}, legacy)[0] == 202
    status, _, got = post(node, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, legacy)
    assert status == 200 and got["result"] == {}
    assert post(node, b"", legacy, method="DELETE")[0] == 200
    assert post(node, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, legacy)[0] == 404


def test_progress_arrives_as_sse(node):
    body, headers = modern("tools/call", {"name": "aggregate_results", "arguments": {
        "input": "hello", "peers": [node.peer_id], "timeout": 2}})
    body["params"]["_meta"]["progressToken"] = "tok"
    status, response_headers, raw = post(node, body, headers)
    # asking only itself: the node is not its own peer, so the one answer is a failure; the result (an
    # isError) still comes back, as JSON or, after progress, as SSE
    assert status == 200
    if response_headers["content-type"].startswith("text/event-stream"):
        events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]
        assert events[0]["method"] == "notifications/progress" and events[-1]["id"] == 1
    else:
        assert raw["id"] == 1


def test_a_hundred_and_twenty_concurrent_requests(node):
    parts = urlsplit(node.url)

    async def one(i: int) -> dict:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        body, headers = modern("tools/call", {"name": "run_inference", "arguments": {
            "input": f"import os\nimport sys\n\n\ndef main(argv):\n    for name in os.listdir(argv[1]):\n"
                     f"        print(name, {i})\n    return 0\n\n\nif __name__ == '__main__':\n"
                     "    sys.exit(main(sys.argv))\n"}}, id=i)
        data = json.dumps(body).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Host": f"127.0.0.1:{parts.port}",
                       "Content-Type": "application/json", "Accept": ACCEPT, "Content-Length": len(data),
                       "Connection": "close"}.items())
        writer.write(f"POST /mcp HTTP/1.1\r\n{head}\r\n".encode() + data)
        raw = await reader.read()
        writer.close()
        return json.loads(raw.split(b"\r\n\r\n", 1)[1])

    async def main():
        return await asyncio.gather(*(one(i) for i in range(120)))

    started = time.perf_counter()
    answers = asyncio.run(main())
    elapsed = time.perf_counter() - started
    assert [a["id"] for a in answers] == list(range(120))
    assert all(not a["result"]["isError"] and a["result"]["structuredContent"]["output"] == "python"
               for a in answers), [a for a in answers if a["result"]["isError"]][:2]
    status, _, metrics = post(node, b"", method="GET", path="/metrics")
    assert status == 200
    assert 'mcp_requests_total{outcome="ok",tool="run_inference"} 120.0' in metrics
    assert 'mcp_request_duration_seconds_count{tool="run_inference"} 120.0' in metrics
    assert elapsed < 120


@pytest.mark.slow
def test_rate_limit_and_overload_have_http_statuses(tmp_path):
    """2026-07-28: 429 / 503 with Retry-After and the JSON-RPC error (its id kept); 2025-11-25: the error in a 200."""
    mute = socket.create_server(("127.0.0.1", 0))  # an inference endpoint that accepts and never answers
    endpoint = f"http://127.0.0.1:{mute.getsockname()[1]}/v1"
    limited = NodeProcess(write_config(tmp_path, extra=f"max_concurrent_requests = 1\nrequest_timeout = 0.5\n"
                                       f'[mcp.inference]\nbackend = "openai"\nendpoint = "{endpoint}"\ntimeout = 1\n'
                                       "[security]\ntotal_rate_limit = 6"))
    try:
        statuses = [post(limited, *modern("tools/call", {"name": "get_status", "arguments": {}}, id=i))
                    for i in range(10)]
        refused = [(h, b) for s, h, b in statuses if s == 429]
        assert refused and all(s in (200, 429) for s, _, _ in statuses)
        headers, body = refused[0]
        assert body["error"]["code"] == -31001 and body["id"] in range(10)
        assert int(headers["retry-after"]) >= 1 and body["error"]["data"]["scope"] == "total"
        time.sleep(1.5)  # the bucket refills
        status, headers, body = post(limited, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        session = {"Mcp-Session-Id": headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
        legacy = [post(limited, {"jsonrpc": "2.0", "id": i, "method": "tools/list"}, session) for i in range(10)]
        assert all(s == 200 for s, _, _ in legacy)
        assert any(b.get("error", {}).get("code") == -31001 for _, _, b in legacy)
        time.sleep(1.5)  # six tokens again
        # one tool call at a time with four queued (each waits out its 0.5 s): of six at once, one is refused

        async def calls() -> list[tuple[int, dict, dict]]:
            return await asyncio.gather(*(asyncio.to_thread(post, limited, *modern(
                "tools/call", {"name": "run_inference", "arguments": {"input": "x"}}, id=i)) for i in range(6)))

        answers = asyncio.run(calls())
        busy = [(h, b) for s, h, b in answers if s == 503]
        assert len(busy) == 1, [s for s, _, _ in answers]
        assert busy[0][1]["error"]["code"] == -31003 and busy[0][0]["retry-after"] == "1"
        assert all(b["result"]["isError"] for s, _, b in answers if s == 200)  # timed out, answered
        assert serving(limited)
    finally:
        limited.stop()
        mute.close()
