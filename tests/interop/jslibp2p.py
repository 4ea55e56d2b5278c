"""Drive a js-libp2p 3.x peer (tests/interop/js/peer.mjs) as a subprocess, with the same JSON-line commands and
the same client as the py-libp2p peer (``tests.interop.pylibp2p.PyLibp2pPeer``).

js-libp2p 3.x needs Node.js 22; ``tests/interop/js/package.json`` brings it as the npm package ``node@22``, so
``scripts/setup-interop.sh`` (``npm ci`` in that folder) installs everything the peer needs, Node included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.interop.pylibp2p import PyLibp2pPeer

JS_DIR = Path(__file__).resolve().with_name("js")
PEER_SCRIPT = JS_DIR / "peer.mjs"


def node_binary() -> Path | None:
    """The Node.js 22 that ``npm ci`` put in tests/interop/js, or None when the packages are not installed."""
    node = JS_DIR / "node_modules" / ".bin" / "node"
    return node if node.exists() and (JS_DIR / "node_modules" / "libp2p").is_dir() else None


class JsLibp2pPeer(PyLibp2pPeer):
    """One js-libp2p peer process (TCP + Noise + Yamux, Identify, Ping, Kademlia server, GossipSub)."""

    def __init__(self, name: str = "jslibp2p") -> None:
        node = node_binary()
        if node is None:
            raise FileNotFoundError(f"no js-libp2p packages in {JS_DIR} (run scripts/setup-interop.sh)")
        super().__init__(python=node, name=name)

    def start(self, listen: str = "/ip4/127.0.0.1/tcp/0", ready_timeout: float = 30.0,
              roles: str = "") -> dict[str, Any]:
        """``roles``: "client", "hop", "dcutr", comma-separated (tests/interop/js/peer.mjs)."""
        return self.launch([self.python, str(PEER_SCRIPT), listen, *([roles] if roles else [])], ready_timeout)
