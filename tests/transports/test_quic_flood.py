"""A flood of QUIC Initials that never become handshakes (undecryptable, from fresh connection IDs) no
longer locks real clients out: once handshakes pile up, new clients prove their address with a Retry
(RFC 9000 §8.1), which costs the node no state, and each source holds a bounded number of slots."""

from __future__ import annotations

import asyncio
import os
import socket

from multiaddr import Multiaddr

from p2pnode.identity import Keypair
from p2pnode.resources import ResourceLimits, ResourceManager
from p2pnode.transports.quic import QuicTransport
from tests.transports.test_large_frames import run


def fake_initial(token: bytes = b"") -> bytes:
    """A 1,200-byte QUIC v1 Initial from fresh connection IDs whose payload decrypts to nothing."""
    header = (b"\xc3" + (1).to_bytes(4, "big") + b"\x08" + os.urandom(8) + b"\x08" + os.urandom(8)
              + bytes([len(token)]) + token)
    length = 1200 - len(header) - 2
    return header + (0x4000 | length).to_bytes(2, "big") + os.urandom(length)


def test_a_real_dial_succeeds_during_an_initial_flood_from_the_same_host():
    async def scenario():
        resources = ResourceManager(ResourceLimits())
        server = QuicTransport(Keypair.generate(), resources=resources)
        client = QuicTransport(Keypair.generate())
        addr = await server.listen(Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1"), lambda conn: None)
        port = int(addr.value_for_protocol("udp"))
        flooder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flooder.setblocking(False)
        try:
            for _ in range(300):
                flooder.sendto(fake_initial(), ("127.0.0.1", port))
            await asyncio.sleep(0.3)  # the node has read them all
            pending = len(server._pending_inbound)
            assert pending <= resources.limits.retry_after
            assert resources.refusals["retry"] >= 300 - resources.limits.retry_after
            async with asyncio.timeout(5):  # (the handshake slots were full for 10 s before)
                conn = await client.dial(addr, server.keypair.peer_id)
            assert conn.remote_peer == server.keypair.peer_id
            assert conn._quic._retry_source_connection_id is not None  # it went through a Retry
        finally:
            flooder.close()
            await client.close()
            await server.close()

    run(scenario())


def test_a_forged_token_is_refused_and_takes_no_slot():
    async def scenario():
        server = QuicTransport(Keypair.generate())
        addr = await server.listen(Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1"), lambda conn: None)
        port = int(addr.value_for_protocol("udp"))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.sendto(fake_initial(token=os.urandom(40)), ("127.0.0.1", port))
            await asyncio.sleep(0.3)
            assert not server._pending_inbound
            assert server.resources.refusals["invalid_token"] == 1
            reply, _ = sock.recvfrom(2048)  # the INVALID_TOKEN close
            assert reply[0] & 0xF0 == 0xC0  # a long-header Initial
        finally:
            sock.close()
            await server.close()

    run(scenario())
