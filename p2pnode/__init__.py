"""p2pnode: a libp2p-style peer-to-peer node whose protocol logic is sans-IO.

``from p2pnode import Node`` gives the asyncio node (``p2pnode.runtime.node``); it is imported on first
use, so the simulator, which needs only the sans-IO protocol code, never loads the network stack.
"""

from p2pnode import native

__version__ = "0.1.0"
native.install()  # the compiled hot paths, when built from the current source (p2pnode/native.py)


def __getattr__(name: str):
    if name in ("Node", "Keypair"):
        from p2pnode.identity import Keypair
        from p2pnode.runtime.node import Node

        return {"Node": Node, "Keypair": Keypair}[name]
    raise AttributeError(f"module 'p2pnode' has no attribute {name!r}")
