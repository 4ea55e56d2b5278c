"""p2pnode: a libp2p-style peer-to-peer node whose protocol logic is sans-IO."""

__version__ = "0.1.0"
