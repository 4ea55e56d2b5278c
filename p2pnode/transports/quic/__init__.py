"""The libp2p QUIC-v1 transport (libp2p specs ``quic/README.md``) on aioquic's sans-IO ``QuicConnection``.

Multiaddrs are ``/ip4|ip6/<addr>/udp/<port>/quic-v1``, optionally ending ``/p2p/<peer ID>``. The handshake
is TLS 1.3 with ALPN ``libp2p`` and the libp2p certificates of ``tls.py``: both sides send one, both sides
check it. The server requires a client certificate and learns the client's peer ID from it; the client
checks that the server is the peer it dialled (``HandshakeError`` otherwise). Each QUIC bidirectional stream
is one ``Stream``; libp2p does not use unidirectional streams, so those a peer opens are refused with
STOP_SENDING and their data dropped.

I/O: this module drives aioquic itself rather than through ``aioquic.asyncio.serve``/``connect``, because

* one UDP socket per listen address serves every connection through it and is also the socket outbound
  connections are dialled from (same family, compatible address), as libp2p wants for hole punching later;
  ``connect`` opens a socket per connection;
* the socket is read with ``loop.add_reader`` in batches (up to ``RECV_BATCH`` datagrams per wake-up) and
  each connection touched by a batch handles its events and sends once per batch, where asyncio's datagram
  transport (and so aioquic's protocol class) costs a loop iteration, an event pass and a send pass per
  datagram;
* the TLS checks and the flow control need our own subclass of aioquic's ``QuicConnection``
  (``aioquic_patches.py``, which says what it changes and why), which ``serve`` cannot be told to create.

As TLS 1.3 has it, a client's handshake is complete once it has sent its certificate, before the server has
checked it: a server that refuses our certificate shows as the connection closing right after ``dial``.

Writes apply backpressure: ``Stream.write`` returns once the data is in aioquic's send buffer, but waits
while that buffer holds more than ``SEND_BUFFER_HIGH`` bytes (unsent or unacknowledged), until it drains
to ``SEND_BUFFER_LOW``.

Opening a stream beyond the peer's stream limit waits (``open_stream`` blocks until the peer lets one more
stream open, or the connection closes); it does not fail.

Session resumption and 0-RTT: servers issue TLS session tickets, single-use (a ticket is forgotten once
presented, so 0-RTT data cannot be replayed to this process) and remembered with the peer ID they were
issued to, because a resumed handshake carries no certificates. A client that holds a ticket for the
address (and the expected peer) resumes: ``connection.resumed``, no certificates signed or checked. With
``zero_rtt=True`` it also sends its first stream data as 0-RTT, and ``dial`` returns at once, before the
server has answered (``connection.early_data``): the peer is authenticated by the ticket, but whether it is
there at all shows only later: if the handshake fails or does not finish within ``handshake_timeout``, the
connection closes and its streams are reset. That bends the ``Transport.dial`` contract ("connect and
authenticate"), so it is off by default. If the server does not accept the ticket, the handshake falls back
to a full one (0-RTT data is then retransmitted). Tickets live in memory only.

Connections idle out after ``idle_timeout`` (30 s) and send a PING when nothing was received for
``keep_alive`` seconds (15 s), so an open connection stays open (and NAT bindings stay alive).

The package, one concern a module: ``aioquic_patches`` (what aioquic lacks for libp2p), ``stream``
(``QuicStream``), ``connection`` (``QuicPeerConnection``: our ``Connection`` over one aioquic connection),
``endpoint`` (``UdpEndpoint``: a UDP socket and the connections through it), ``transport`` (``QuicTransport``),
``constants`` (limits and defaults).
"""

from p2pnode.transports.quic.connection import QuicPeerConnection
from p2pnode.transports.quic.constants import ALPN
from p2pnode.transports.quic.stream import QuicStream
from p2pnode.transports.quic.transport import QuicTransport

__all__ = ["ALPN", "QuicPeerConnection", "QuicStream", "QuicTransport"]
