"""The success criteria a scenario can ask to judge, and the target each has when the scenario gives none.

`analysis.criteria` judges them (descriptions, units, comparisons); the scenario schema checks targets and
what each criterion needs. Targets come from the spec's success criteria.
"""

from __future__ import annotations

CRITERIA = (
    "formation_time",
    "lookup_p99",
    "lookup_success",
    "put_get_success",
    "delivery_rate",
    "delivery_p99",
    "scaling",
    "mcp_request_p99",
    "mcp_success",
)
# Targets used when a criterion is listed without one ({} or null).
DEFAULT_TARGETS: dict[str, float] = {
    "formation_time": 30.0,  # seconds until the network is formed (<)
    "lookup_p99": 0.5,  # seconds, 99th percentile lookup latency (<)
    "lookup_success": 0.99,  # share of lookups that find the closest live peer (>=)
    "put_get_success": 0.99,  # share of gets that return the newest stored version (>=)
    "delivery_rate": 0.999,  # share of (message, live subscriber) pairs delivered within the deadline (>=)
    "delivery_p99": 1.0,  # seconds, 99th percentile publish-to-delivery latency (<)
    "scaling": 1.5,  # wall-clock seconds per message, largest sweep point / smallest (<=)
    "mcp_request_p99": 1.0,  # seconds, 99th percentile end-to-end MCP request latency (<)
    "mcp_success": 0.99,  # share of MCP requests answered without error (>=)
}
SHARE_CRITERIA = ("lookup_success", "put_get_success", "delivery_rate", "mcp_success")  # targets in (0, 1]
PUBSUB_CRITERIA = ("delivery_rate", "delivery_p99")  # need a pubsub section
MCP_CRITERIA = ("mcp_request_p99", "mcp_success")  # need an mcp section
