"""The QUIC transport's protocol constants, limits and defaults, in one place."""

from __future__ import annotations

import datetime

from aioquic.quic.packet import QuicProtocolVersion

ALPN = "libp2p"
MAX_INCOMING_BIDI_STREAMS = 100
MAX_INCOMING_UNI_STREAMS = 1000
IDLE_TIMEOUT = 30.0
KEEP_ALIVE = 15.0
HANDSHAKE_TIMEOUT = 10.0
STREAM_WINDOW = 1 << 20  # receive window per stream, beyond what the application has read
CONNECTION_WINDOW = 4 << 20  # receive window per connection, likewise
SEND_BUFFER_HIGH = 1 << 20  # a write waits while a stream's send buffer holds more than this ...
SEND_BUFFER_LOW = 1 << 19  # ... until it is down to this
MAX_DATAGRAM_SIZE = 1350  # QUIC packet payload; fits the 1500-byte Ethernet MTU with room for tunnels
SOCKET_BUFFER = 4 << 20  # SO_RCVBUF / SO_SNDBUF asked for (the kernel caps it at net.core.[rw]mem_max)
RECV_BATCH = 256  # datagrams read per socket wake-up before the connections touched answer
CID_LENGTH = 8
TICKET_CACHE = 4096  # session tickets remembered (server: issued; client: received), oldest forgotten first
CERTIFICATE_RENEWAL = datetime.timedelta(days=1)  # make a new certificate when ours has less than this left
PACING_BURST = 0.002  # seconds of sending at the pacing rate that may go out at once (see Pacer)
SEND_QUEUE_LIMIT = 4096  # datagrams queued while the socket is not writable; beyond that they are dropped
ERROR_NO_ERROR = 0  # application error code for closing connections and resetting streams

SUPPORTED_VERSIONS = [QuicProtocolVersion.VERSION_1]
