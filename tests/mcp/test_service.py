"""The MCP service on several sans-IO nodes: registration and discovery through the DHT, the nine tools,
routing with relay and failover, partial aggregation, access control."""

from __future__ import annotations

import json

import pytest
from mcp_types import methods as mcp_methods

from p2pnode.mcp import jsonrpc
from p2pnode.mcp.server import META_CAPABILITIES, META_VERSION, MODERN_VERSIONS, Channel
from p2pnode.mcp.services import descriptor_key, index_key
from p2pnode.nodeconfig import MCP_TOOLS, validate_config
from tests.mcp.net import McpMesh


def structured(response: dict) -> dict:
    assert "result" in response, response
    mcp_methods.validate_server_result("tools/call", "2026-07-28", response["result"])
    assert not response["result"]["isError"], response["result"]["content"]
    return response["result"]["structuredContent"]


def output_schema(service, tool: str) -> dict:
    return service.server.tools[tool].output_schema


def conforms(service, tool: str, value: dict) -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator(output_schema(service, tool)).validate(value)


@pytest.fixture
def mesh(make_net):
    return McpMesh(make_net, seed=3)


def test_descriptors_and_provider_records_in_the_dht(mesh):
    nodes = mesh.populate(6)
    a = nodes[0]
    key = descriptor_key("p2pnode", nodes[3].host.peer_id)
    stored = [n.host.dht.records.get(key, mesh.net.time) for n in nodes]
    assert [r for r in stored if r is not None]
    assert all(r.publisher == nodes[3].host.peer_id for r in stored if r is not None)
    providers = [n for n in nodes if n.host.dht.providers.get(index_key("p2pnode"), mesh.net.time)]
    assert providers
    found = structured(mesh.call(a, "find_peers", {"capability": "model:magika"}))
    conforms(a, "find_peers", found)
    ids = [p["peer_id"] for p in found["peers"]]
    assert sorted(ids) == sorted(n.host.peer_id.to_base58() for n in nodes[1:])
    assert [p["distance_bits"] for p in found["peers"]] == sorted(p["distance_bits"] for p in found["peers"])
    again = structured(mesh.call(a, "find_peers", {"capability": "model:magika"}))  # from the list kept
    assert again["cached"] and again["peers"] == found["peers"]
    nothing = structured(mesh.call(a, "find_peers", {"capability": "teleport"}))
    assert nothing["peers"] == []


def test_a_stopped_node_drops_out_of_discovery_after_its_ttl(mesh):
    nodes = mesh.populate(5)
    mesh.crash(nodes[2])
    mesh.run_for(61)  # the descriptor TTL (60 s) passes; the provider entry stays
    found = structured(mesh.call(nodes[0], "find_peers", {"fresh": True}))
    assert nodes[2].host.peer_id.to_base58() not in [p["peer_id"] for p in found["peers"]]
    assert len(found["peers"]) == 3


def test_the_first_call_finds_its_providers_discovered_already(mesh):
    nodes = mesh.populate(5)  # each node discovers its own service once it has registered
    result = structured(mesh.call(nodes[0], "forward_to_peer", {"input": "print('hi')"}))
    assert result["discovery_cached"] and result["discovery_ms"] == 0


def test_discoveries_under_way_are_shared_and_descriptors_come_from_the_providers(mesh):
    nodes = mesh.populate(6)
    a = nodes[0]
    dht = a.host.dht
    lookups = {"find_providers": 0, "get_value": 0}

    def counting(name: str):
        real = getattr(dht, name)

        def counted(*args, **kwargs):
            lookups[name] += 1
            return real(*args, **kwargs)
        return counted

    for name in lookups:
        setattr(dht, name, counting(name))
    out: list[dict] = []
    for limit in (1, 5):
        mesh_call = jsonrpc.request(limit, "tools/call", {"name": "find_peers", "arguments": {
            "fresh": True, "limit": limit}, "_meta": {META_VERSION: MODERN_VERSIONS[0], META_CAPABILITIES: {}}})
        a.server.receive(jsonrpc.parse_object(mesh_call), Channel(out.append))
    mesh.net.run_until(lambda: len([m for m in out if "id" in m]) == 2, 30, "find_peers never answered")
    found = {m["id"]: m["result"]["structuredContent"] for m in out if "id" in m}
    assert lookups == {"find_providers": 1, "get_value": 0}  # one discovery; no DHT lookup per descriptor
    assert len(found[1]["peers"]) == 1 and len(found[5]["peers"]) == 5
    assert found[1]["peers"][0] == found[5]["peers"][0]
    assert found[1]["discovery_ms"] <= found[5]["discovery_ms"]


def test_every_tool_answers_with_its_output_schema(mesh):
    nodes = mesh.populate(4)
    a, b = nodes[0], nodes[1]
    mesh.connect(a, b)
    a.host.dht.put_value(b"greeting", b"hello", None)
    mesh.net.settle()
    calls = {
        "query_network": {"operation": "get", "key": "greeting"},
        "find_peers": {},
        "relay_message": {"peer": b.host.peer_id.to_base58(), "message": "hi", "topic": "t"},
        "run_inference": {"input": "import os\nprint(os.getcwd())\nfor i in range(3):\n    print(i)\n"},
        "forward_to_peer": {"input": "{\"a\": [1, 2, 3], \"b\": {\"c\": null}}"},
        "aggregate_results": {"input": "# Title\n\nSome *markdown* text with a [link](http://x).\n", "count": 3},
        "get_status": {},
        "list_connections": {},
        "configure": {"changes": {"mcp": {"request_timeout": 20}}, "dry_run": True},
    }
    assert set(calls) == set(MCP_TOOLS)
    results = {tool: structured(mesh.call(a, tool, args)) for tool, args in calls.items()}
    for tool, value in results.items():
        conforms(a, tool, value)
    assert results["query_network"]["value"] == "hello" and results["query_network"]["found"]
    assert results["run_inference"]["output"] == "python" and results["run_inference"]["score"] > 0.5
    assert results["forward_to_peer"]["result"]["output"] == "json"
    assert results["aggregate_results"]["answered"] == 3 and not results["aggregate_results"]["partial"]
    assert results["relay_message"]["route"] == "direct"
    assert b.inbox[-1]["message"] == "hi" and b.inbox[-1]["from"] == a.host.peer_id.to_base58()
    assert results["configure"]["applied"] == ["mcp.request_timeout"] and a.server.request_timeout == 30
    peers = structured(mesh.call(a, "query_network", {"operation": "find_peer", "key": b.host.peer_id.to_base58()}))
    assert peers["found"] and peers["peers"][0]["peer_id"] == b.host.peer_id.to_base58()


def test_relay_through_the_closest_connected_peer(mesh):
    nodes = mesh.populate(4)
    a, relay, target = nodes[0], nodes[1], nodes[2]
    mesh.connect(a, relay)
    mesh.cut(a, target)  # a cannot reach the target directly
    result = structured(mesh.call(a, "relay_message", {"peer": target.host.peer_id.to_base58(), "message": "via"}))
    assert result["route"] == "relay" and result["via"] == relay.host.peer_id.to_base58()
    assert target.inbox[-1]["message"] == "via" and target.inbox[-1]["from"] == relay.host.peer_id.to_base58()
    assert [a["outcome"] for a in result["attempts"]] == ["failed", "ok"]


def test_failover_when_the_closest_provider_fails(mesh):
    nodes = mesh.populate(5)
    a = nodes[0]
    first = structured(mesh.call(a, "find_peers", {"capability": "run_inference"}))["peers"][0]["peer_id"]
    failing = next(n for n in nodes if n.host.peer_id.to_base58() == first)
    failing.server.available.discard("run_inference")  # it still advertises the tool, but refuses the call
    result = structured(mesh.call(a, "forward_to_peer", {"input": "<html><body><p>hi</p></body></html>"}))
    assert result["failovers"] == 1 and result["hedged"] == 0 and a.router.failovers == 1
    assert result["attempts"][0]["peer"] == first and result["attempts"][0]["outcome"] == "error"
    assert result["peer"] != first and result["result"]["output"] == "html"


def test_a_silent_provider_is_hedged_not_waited_for(mesh):
    nodes = mesh.populate(5)
    a = nodes[0]
    first = structured(mesh.call(a, "find_peers", {"capability": "run_inference"}))["peers"][0]["peer_id"]
    dead = next(n for n in nodes if n.host.peer_id.to_base58() == first)
    mesh.crash(dead)  # its descriptor is still in the DHT and in a's list
    result = structured(mesh.call(a, "forward_to_peer", {"input": "<html><body><p>hi</p></body></html>",
                                                        "attempt_timeout": 2}))
    # no answer after half the attempt timeout (too few answers seen for a percentile): the next one is asked
    assert result["hedged"] == 1 and result["failovers"] == 0 and a.router.hedges == 1
    assert result["attempts"][0]["peer"] == first and result["attempts"][0]["outcome"] == "superseded"
    assert result["peer"] != first and result["result"]["output"] == "html" and result["latency_ms"] < 2000
    mesh.run_for(2)  # the abandoned attempt times out: the dead provider leaves the list
    again = structured(mesh.call(a, "find_peers", {"capability": "run_inference"}))
    assert again["cached"] and first not in [p["peer_id"] for p in again["peers"]]


def test_hedge_delay_follows_the_answers_seen(mesh):
    router = mesh.populate(2)[0].router
    assert router.hedge_delay(2.0) == 1.0
    router.answer_times.extend([0.1] * 95 + [0.9] * 5)
    assert router.hedge_delay(2.0) == 0.9 and router.hedge_delay(0.5) == 0.5
    router.answer_times.extend([0.1] * 100)
    assert router.hedge_delay(2.0) == 0.1


def test_aggregate_returns_partial_results_on_timeout(mesh):
    nodes = mesh.populate(4)
    a = nodes[0]
    mesh.crash(nodes[3])
    peers = [n.host.peer_id.to_base58() for n in nodes[1:]]
    result = structured(mesh.call(a, "aggregate_results", {"input": "SELECT * FROM t WHERE x = 1;",
                                                           "peers": peers, "timeout": 1.5}))
    assert result["partial"] and result["answered"] == 2 and result["requested"] == 3
    assert result["failures"][0]["peer"] == nodes[3].host.peer_id.to_base58()
    assert result["combined"]["votes"] and result["combined"]["output"] == result["results"][0]["output"]


def test_peer_access_control_and_configure_rules(mesh):
    nodes = mesh.populate(3)
    a, b = nodes[0], nodes[1]
    denied = mesh.call(b, "configure", {"changes": {"mcp": {"request_timeout": 5}}},
                       caller=a.host.peer_id.to_base58())
    assert denied["error"]["code"] == jsonrpc.ACCESS_DENIED
    assert b.server.access.denials[(a.host.peer_id.to_base58(), "configure")] == 1
    assert b.server.metrics.requests[("configure", "denied")] == 1
    bad = mesh.call(b, "configure", {"changes": {"mcp": {"request_timeout": -1, "nope": 1}}})
    assert bad["result"]["isError"]
    text = bad["result"]["content"][0]["text"]
    assert "mcp.request_timeout: must be > 0 (got -1)" in text and "mcp.nope: unknown key" in text
    restart = structured(mesh.call(b, "configure", {"changes": {"mcp": {"available_tools": ["get_status"],
                                                                        "server_address": "127.0.0.1:9999"}}}))
    assert restart["applied"] == ["mcp.available_tools"] and restart["restart_required"] == ["mcp.server_address"]
    assert b.server.available == {"get_status"} and b.config.mcp.server_address == "127.0.0.1:8545"
    gone = mesh.call(b, "run_inference", {"input": "x"})
    assert gone["error"]["code"] == jsonrpc.INVALID_PARAMS


def test_config_limits_peer_tools(mesh):
    config = validate_config({"mcp": {"peer_tools": {"*": ["get_status"]}}})
    server_node = mesh.add(config)
    client = mesh.add(bootstrap=server_node)
    mesh.net.settle()
    listed = []
    from p2pnode.mcp.server import Channel

    server_node.server.receive(jsonrpc.parse_object(jsonrpc.request(1, "tools/list", {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}})),
        Channel(listed.append, caller=client.host.peer_id.to_base58()))
    assert [t["name"] for t in listed[0]["result"]["tools"]] == ["get_status"]
    status = json.loads(server_node.server.resources["p2pnode://node/status"].read())
    assert status["peer_id"] == server_node.host.peer_id.to_base58()
