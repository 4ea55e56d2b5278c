"""The official MCP Python SDK client against real nodes: ``p2pnode run`` over Streamable HTTP and
``p2pnode mcp --stdio``, in the 2025-11-25 handshake mode and the 2026-07-28 stateless mode. It lists the
nine tools, calls each, and (the SDK does this itself) validates structuredContent against each tool's
output schema; the test checks it too."""

from __future__ import annotations

import asyncio
import sys

import pytest
from jsonschema import Draft202012Validator
from mcp import Client, StdioServerParameters

from p2pnode.nodeconfig import MCP_TOOLS
from tests.mcp.procs import start_network, wait_registered, write_config

MODES = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    nodes = start_network(tmp_path_factory.mktemp("sdk"), 3)
    wait_registered(nodes[1], 2)  # joined and registered: the descriptors are in the DHT
    yield nodes
    for node in nodes:
        node.stop()


def arguments(other_peer: str) -> dict[str, dict]:
    return {
        "query_network": {"operation": "closest_peers", "key": "anything"},
        "find_peers": {"capability": "run_inference"},
        "relay_message": {"peer": other_peer, "message": "hello from the SDK"},
        "run_inference": {"input": "#!/bin/bash\nfor f in *.txt; do\n  echo \"$f\"\ndone\n"},
        "forward_to_peer": {"input": "<?xml version=\"1.0\"?>\n<root><a>1</a><b>2</b></root>\n"},
        "aggregate_results": {"input": "name,age\nalice,30\nbob,25\ncarol,41\n", "count": 2, "timeout": 10},
        "get_status": {},
        "list_connections": {},
        "configure": {"changes": {"mcp": {"request_timeout": 30}}, "dry_run": True},
    }


async def exercise(client: Client, other_peer: str) -> dict[str, dict]:
    listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert sorted(tools) == sorted(MCP_TOOLS)
    out = {}
    for name, args in arguments(other_peer).items():
        result = await client.call_tool(name, args)
        assert not result.is_error, (name, result.content)
        Draft202012Validator(tools[name].output_schema).validate(result.structured_content)
        out[name] = result.structured_content
    resources = await client.list_resources()
    assert "p2pnode://node/status" in [str(r.uri) for r in resources.resources]
    read = await client.read_resource("p2pnode://node/routing-table")
    assert '"buckets"' in read.contents[0].text
    return out


@pytest.mark.parametrize("mode", [*MODES, "auto"])
def test_sdk_client_over_streamable_http(network, mode):
    node, other = network[1], network[2]

    async def main():
        async with Client(node.url, mode=mode) as client:  # "auto": server/discover, then 2026-07-28
            expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
            assert client.protocol_version == expected
            return await exercise(client, other.peer_id)

    results = asyncio.run(main())
    assert results["run_inference"]["output"] == "shell"
    assert results["forward_to_peer"]["result"]["output"] == "xml"
    assert results["aggregate_results"]["answered"] == 2
    assert results["aggregate_results"]["combined"]["output"] == "csv"


@pytest.mark.parametrize("mode", MODES)
def test_sdk_client_over_stdio(network, tmp_path, mode):
    config = write_config(tmp_path / "stdio", network[0].addr)
    params = StdioServerParameters(command=sys.executable, args=["-m", "p2pnode.cli", "mcp", "--stdio",
                                                                 "--config", str(config)])

    async def main():
        async with Client(params, mode=mode) as client:
            await asyncio.sleep(1.0)  # the stdio node joins the network
            return await exercise(client, network[1].peer_id)

    results = asyncio.run(main())
    assert results["relay_message"]["delivered"]
    assert results["get_status"]["peers_connected"] >= 1
