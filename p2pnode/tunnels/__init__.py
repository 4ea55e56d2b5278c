"""User-space data planes for the IPv6 transition mechanisms: TUN devices and raw or UDP sockets
around the sans-IO endpoints of ``p2pnode.transition`` (this machine's kernel has no sit, ip6tnl or
Jool; ``kernel.probe()`` says what a kernel offers and each plane records which it used).

``python -m p2pnode.tunnels SPEC`` runs one endpoint (a JSON spec, see ``spec.build``) in the current
network namespace until SIGTERM, printing one JSON line when it is ready and one with its counters
when it stops.
"""
