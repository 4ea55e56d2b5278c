"""The measured events of a run (``events.csv``, docs/results.md): the columns and every kind of row.

The columns are those a real node writes (``p2pnode.eventlog``, which cannot import this layer); the kinds are
all the rows a driver or a node writes. `analysis/` reads files with these names.
"""

from __future__ import annotations

from p2pnode.eventlog import COLUMNS

__all__ = ["COLUMNS", "KINDS", "NAT_KINDS", "PUBSUB_KINDS", "USER_LOOKUPS"]

KINDS = ("up", "down", "lookup", "put", "get", "find_peer", "provide", "find_providers", "live", "traffic",
         "formation", "mcp", "mcp_discovery",
         "publish", "deliver", "delivery", "ps_data", "ps_control", "ps_recv", "mesh", "records",
         "reachability", "reservation", "connection", "hole_punch", "relay_load", "relay_bytes")
PUBSUB_KINDS = KINDS[KINDS.index("publish"):KINDS.index("mesh") + 1]
NAT_KINDS = KINDS[KINDS.index("reachability"):]  # NAT traversal (docs/nat.md)
USER_LOOKUPS = ("get", "find_peer", "find_providers")  # the user-facing lookups lookup_p99 judges (docs/results.md)
