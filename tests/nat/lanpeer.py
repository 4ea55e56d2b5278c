"""One real node in a network namespace for the LAN tests (tests/nat/test_lan_root.py): started with mDNS
and/or port mapping as its argument (JSON) says, it prints one JSON line when it is up and one line of its
status (mDNS, port mapping, connected peers) each time it is asked on stdin ("status"), then stops at EOF.

    ip netns exec NS python -m tests.nat.lanpeer '{"mdns": true, "seed": 3}'
"""

from __future__ import annotations

import asyncio
import json
import sys

from p2pnode.identity import Keypair
from p2pnode.runtime.http import HttpServer, NodeCollector
from p2pnode.runtime.node import Node


def status(node: Node) -> dict:
    """What the node's /debug/peers says, and its metrics (name and labels -> value), as the HTTP server
    would serve them."""
    _, _, body = HttpServer(node, "127.0.0.1", 0).peers()
    peers = json.loads(body)
    metrics = {f"{s.name}{json.dumps(s.labels, sort_keys=True) if s.labels else ''}": s.value
               for family in NodeCollector(node).collect() for s in family.samples}
    return {"peer_id": str(node.peer_id), "listen": [str(a) for a in node.listen_addrs],
            "connected": sorted(str(p) for p in node.connected_peers()),
            "routing_table": len(node.host.dht.table), "mdns": peers["mdns"], "port_mapping": peers["port_mapping"],
            "metrics": metrics}


async def main(args: dict) -> None:
    keypair = Keypair.from_seed(int(args.get("seed", 1)).to_bytes(32, "big"))
    node = Node(keypair, listen=args.get("listen", ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"]),
                bootstrap=args.get("bootstrap", ()), seed=int(args.get("seed", 1)), pubsub=False,
                mdns=bool(args.get("mdns")), port_mapping=args.get("port_mapping", ()))
    await node.start()
    print(json.dumps({"ready": True, **status(node)}), flush=True)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "status":
                print(json.dumps(status(node)), flush=True)
    finally:
        await node.stop()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
