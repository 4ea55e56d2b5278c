"""Several real nodes on loopback: forward_to_peer and aggregate_results across /p2pnode/mcp/1.0.0, and
failover when the first provider is killed in the middle of a request. The providers run the
OpenAI-compatible backend against a test server that answers slowly, so that a request is known to be
in flight at a provider when the test kills it."""

from __future__ import annotations

import json
import threading

import pytest

from tests.mcp.openai_server import OpenAIServer
from tests.mcp.procs import NodeProcess, wait_registered, write_config
from tests.mcp.test_http import modern, post


@pytest.fixture(scope="module")
def llm():
    with OpenAIServer(delay=1.0) as server:
        yield server


@pytest.fixture(scope="module")
def network(tmp_path_factory, llm):
    root = tmp_path_factory.mktemp("multi")
    client = NodeProcess(write_config(root / "client"))
    providers = []
    try:
        for i in range(3):
            extra = f'[mcp.inference]\nbackend = "openai"\nendpoint = "{llm.url}"\nmodel = "model-{i}"\n'
            providers.append(NodeProcess(write_config(root / f"p{i}", client.addr, extra=extra)))
        wait_registered(client, 3)  # joined and registered
        yield client, providers
    finally:
        for node in [client, *providers]:
            if node.proc.poll() is None:
                node.stop()


def call(node, tool, arguments, id=1):
    status, _, body = post(node, *modern("tools/call", {"name": tool, "arguments": arguments}, id=id))
    assert status == 200, body
    return body["result"]


def test_forward_and_aggregate_across_peers(network, llm):
    client, providers = network
    found = call(client, "find_peers", {"capability": "run_inference"})["structuredContent"]
    assert sorted(p["peer_id"] for p in found["peers"]) == sorted(p.peer_id for p in providers)
    named = call(client, "forward_to_peer", {"input": "alpha beta gamma", "peer": providers[1].peer_id})
    assert not named["isError"], named["content"]
    assert named["structuredContent"]["result"]["output"] == "gamma beta alpha"
    assert named["structuredContent"]["result"]["model"] == "model-1"
    together = call(client, "aggregate_results", {"input": "left right", "count": 3, "timeout": 10})
    assert not together["isError"], together["content"]
    result = together["structuredContent"]
    assert result["answered"] == 3 and not result["partial"]
    assert result["combined"] == {"votes": {"right left": 3}, "output": "right left", "agreement": 1.0}
    assert sorted(r["model"] for r in result["results"]) == ["model-0", "model-1", "model-2"]


def test_failover_when_the_first_provider_is_killed_mid_request(network, llm):
    client, providers = network
    while not llm.arrivals.empty():
        llm.arrivals.get_nowait()
    answer: dict = {}

    def ask():
        answer.update(call(client, "forward_to_peer", {"input": "one two", "attempt_timeout": 8}, id=7))

    asker = threading.Thread(target=ask)
    asker.start()
    first_model = llm.arrivals.get(timeout=20)  # the closest provider has the request, and is answering
    victim = providers[int(first_model.rsplit("-", 1)[1])]
    victim.kill()
    asker.join(30)
    assert answer and not answer["isError"], answer.get("content")
    result = answer["structuredContent"]
    assert result["attempts"][0]["peer"] == victim.peer_id and result["attempts"][0]["outcome"] != "ok"
    assert result["peer"] != victim.peer_id and result["failovers"] == 1
    assert result["result"]["output"] == "two one"
    status = call(client, "get_status", {})["structuredContent"]
    assert status["mcp"]["failovers"] >= 1
    _, _, metrics = post(client, b"", method="GET", path="/metrics")
    assert 'mcp_requests_total{outcome="ok",tool="forward_to_peer"}' in metrics
    assert json.loads(json.dumps(result))  # plain JSON all the way
