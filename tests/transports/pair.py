"""Two transports of one kind on loopback and a connection between them, for tests that run on both
TCP+Noise+Yamux and QUIC."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from multiaddr import Multiaddr

from p2pnode.identity import Keypair
from p2pnode.transports.base import Connection, Transport

KINDS = ("tcp", "quic")
LISTEN = {"tcp": "/ip4/127.0.0.1/tcp/0", "quic": "/ip4/127.0.0.1/udp/0/quic-v1"}


def make_transport(kind: str, keypair: Keypair | None = None, **options) -> Transport:
    keypair = keypair or Keypair.generate()
    if kind == "tcp":
        from p2pnode.transports.tcp import TcpTransport

        return TcpTransport(keypair, **options)
    from p2pnode.transports.quic import QuicTransport

    return QuicTransport(keypair, **options)


@contextlib.asynccontextmanager
async def connection_pair(kind: str, *, server_options: dict | None = None,
                          client_options: dict | None = None) -> AsyncIterator[tuple[Connection, Connection]]:
    """``(dialled, accepted)``: the client's connection and the server's, both closed at the end."""
    server = make_transport(kind, **(server_options or {}))
    client = make_transport(kind, **(client_options or {}))
    accepted: asyncio.Queue[Connection] = asyncio.Queue()
    addr = await server.listen(Multiaddr(LISTEN[kind]), accepted.put_nowait)
    try:
        dialled = await client.dial(addr, server.keypair.peer_id)
        yield dialled, await asyncio.wait_for(accepted.get(), 5)
    finally:
        await client.close()
        await server.close()
