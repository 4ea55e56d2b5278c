"""Circuit Relay v2 (libp2p/specs ``relay/circuit-v2.md``): messages and codec (``messages``), reservation
vouchers (``voucher``), ``/p2p-circuit`` addresses (``addrs``), the relay's bookkeeping (``service``) and the
reserving client (``client``). All sans-IO: the asyncio runtime carries the hop and stop streams
(``p2pnode.runtime.nat``, ``p2pnode.transports.circuit``), the simulator models them (``sim.nat``)."""
