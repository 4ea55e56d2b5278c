"""The MCP workload both drivers run (docs/mcp.md): what a node's local agent asks for, and how the answer
becomes rows.

Every live node's agent makes ``mcp.rate`` calls a minute (``Operations``, as the DHT workload); a share
``mcp.aggregate`` of them are ``aggregate_results`` fan-outs over ``mcp.fanout`` providers, the rest
``forward_to_peer`` calls to the closest provider with failover. The simulator hands the request to the
node's sans-IO server, the emulator to the real node's server over its control pipe; either way the node's
answer (its JSON-RPC response, timed by the node's own clock) goes through ``McpWorkload.answered``, which
writes the ``mcp`` row (latency end to end, ``hops`` = attempts or peers asked, ``ok``, ``value`` =
failovers, ``count`` = answers of a fan-out) and, when the call had to wait for a discovery, an
``mcp_discovery`` row with its time.
"""

from __future__ import annotations

import random
from typing import Any

from experiment.workload import Operations


def node_section(scenario: Any, provider: bool) -> dict[str, Any]:
    """The ``[mcp]`` section of a node in the run (as the node's TOML file says it): the scenario's TTL and
    timeout, every tool open to peers, and ``run_inference`` only on the nodes that offer it."""
    from p2pnode.nodeconfig import MCP_TOOLS

    mcp = scenario.mcp
    section: dict[str, Any] = {"service_ttl": mcp.service_ttl, "request_timeout": mcp.request_timeout,
                               "max_concurrent_requests": 1000, "peer_tools": {"*": ["*"]}}
    if not provider:
        section["available_tools"] = [t for t in MCP_TOOLS if t != "run_inference"]
    return section


class McpWorkload:
    def __init__(self, scenario: Any, n: int, rng: random.Random, events: Any):
        self.mcp = scenario.mcp
        self.rng = rng
        self.events = events
        self.operations = Operations(self.mcp.rate, n, rng) if self.mcp is not None and self.mcp.rate > 0 else None
        self._ids = 0

    def request(self) -> dict[str, Any]:
        """The next call's JSON-RPC ``tools/call`` request (the latest revision: stateless, no session)."""
        from p2pnode.mcp.server import META_CAPABILITIES, META_VERSION, MODERN_VERSIONS  # loads the MCP schemas

        mcp, rng = self.mcp, self.rng
        text = rng.randbytes(24).hex()
        if rng.random() < mcp.aggregate:
            tool, arguments = "aggregate_results", {"input": text, "count": mcp.fanout, "timeout": mcp.timeout}
        else:
            tool, arguments = "forward_to_peer", {"input": text, "attempt_timeout": mcp.attempt_timeout}
        self._ids += 1
        meta = {META_VERSION: MODERN_VERSIONS[0], META_CAPABILITIES: {}}
        return {"jsonrpc": "2.0", "id": self._ids, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments, "_meta": meta}}

    def answered(self, now: float, node: int, latency: float, response: dict[str, Any]) -> None:
        """Rows for one call's response (``latency``: from the request reaching the node to its answer)."""
        result = response.get("result") or {}
        ok = "result" in response and not result.get("isError")
        structured = result.get("structuredContent") or {}
        attempts = len(structured.get("attempts", [])) or structured.get("requested")
        self.events.write(now, "mcp", node, latency, attempts, ok, structured.get("failovers", 0),
                          structured.get("answered"))
        if structured.get("discovery_ms") is not None and not structured.get("discovery_cached"):
            self.events.write(now, "mcp_discovery", node, structured["discovery_ms"] / 1000, None, True)
