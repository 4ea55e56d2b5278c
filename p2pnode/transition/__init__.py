"""IPv6 transition mechanisms, sans-IO: address and port math (``addresses``, ``mapping``), provisioning
options (``options``), RFC 7915 header translation (``translate``), the mechanisms' link properties
(``profiles``) and the choice of a mechanism from what a host observes (``selection``).

The data planes that move real packets with this math live in ``p2pnode/tunnels/``.
"""
