"""The resource manager: what one peer, one connection and the whole node may make this node hold.

The libp2p concept (go-libp2p's ``p2p/host/resource-manager``): resources are reserved in scopes before
they are used (the node, a peer, a connection, a stream), and a reservation over a scope's limit fails; the
component that asked refuses cleanly (a stream or connection reset, a dropped handshake) and the refusal
is counted by reason (``refusals``, exported in ``/metrics`` as ``p2p_resource_refusals_total``). It has
no notion of good or bad peers: the limits alone bound what any one of them costs.

What is accounted, and by whom (both transports call the same methods):

* bytes buffered on inbound streams, not yet read by the application (``transports.base.Stream``, shared
  by Yamux and QUIC streams): per stream, per peer and in total; the total comes from
  ``[resources] max_memory_mb`` (half of it; the rest is the process itself);
* inbound streams per peer (the swarm, for every stream it serves; each connection also caps its own:
  Yamux 1,000 and QUIC 100 bidirectional);
* handshakes in progress, in total and per source address (TCP upgrades, QUIC Initials); QUIC asks a
  client to prove its address with a Retry (RFC 9000 §8.1) once ``retry_after`` are in progress, so
  Initials from spoofed or never-answering sources cost a stateless reply, not a handshake slot;
* a frame whose length was announced must keep arriving: a read that waits ``frame_idle_timeout``
  seconds for more of a started frame resets its stream (a peer cannot park half a megabyte per stream);
* Yamux control replies (PING answers) owed while the connection's writes are blocked.

Sans-IO: no clock, no I/O; callers pass what they have.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from p2pnode.identity import PeerId

MIB = 1 << 20


@dataclass(frozen=True)
class ResourceLimits:
    """Limits of one node. ``memory`` is the bytes peers may make the node buffer in total."""

    memory: int = 250 * MIB  # half of the default max_memory_mb = 500
    connections: int = 1000
    peer_memory: int = 32 * MIB  # room for a few 1 MiB messages on each of many streams of one peer
    stream_memory: int = 4 * MIB  # one maximal frame (1 MiB) plus a window, with room to spare
    peer_streams: int = 512  # inbound streams one peer may have open at once, over all its connections
    pending_handshakes: int = 256  # inbound handshakes in progress, per transport
    source_handshakes: int = 32  # of them from one source address
    retry_after: int = 16  # QUIC: with this many in progress, a new client first proves its address (Retry)
    frame_idle_timeout: float = 10.0  # seconds a started frame may go without a byte
    control_backlog: int = 256  # Yamux PING answers owed while writes are blocked, before reading pauses

    def __post_init__(self) -> None:
        for field in fields(self):
            if getattr(self, field.name) <= 0:
                raise ValueError(f"resource limit {field.name} must be positive")

    @classmethod
    def from_config(cls, resources: Any, **overrides: Any) -> ResourceLimits:
        """From a node config's ``[resources]`` section (``nodeconfig.Resources``): ``max_memory_mb`` sets
        the total (half of it is for buffers), a peer may take at most a quarter of that, and
        ``max_connections`` the connections."""
        memory = resources.max_memory_mb * MIB // 2
        peer_memory = min(cls.peer_memory, max(memory // 4, 2 * MIB))
        values: dict[str, Any] = dict(memory=memory, peer_memory=peer_memory,
                                      stream_memory=min(cls.stream_memory, peer_memory),
                                      connections=resources.max_connections)
        values.update(overrides)
        return cls(**values)


class ResourceManager:
    """Reservations against ``limits``; ``refusals`` counts what was refused, by reason."""

    def __init__(self, limits: ResourceLimits | None = None):
        self.limits = limits or ResourceLimits()
        self.buffered = 0  # bytes buffered on inbound streams, all peers
        self.peak_buffered = 0
        self.refusals: Counter[str] = Counter()
        self._peer_buffered: Counter[PeerId] = Counter()
        self._peer_streams: Counter[PeerId] = Counter()

    # ---- buffered bytes ----------------------------------------------------------------------------

    def reserve_buffer(self, peer: PeerId | None, stream_buffered: int, size: int) -> str | None:
        """Reserve ``size`` more bytes for a stream of ``peer`` that already buffers ``stream_buffered``;
        None if granted, else the scope whose limit refused it (the refusal is counted)."""
        limits = self.limits
        if stream_buffered + size > limits.stream_memory:
            return self.refuse("stream_memory")
        if self._peer_buffered[peer] + size > limits.peer_memory:
            return self.refuse("peer_memory")
        if self.buffered + size > limits.memory:
            return self.refuse("memory")
        self._peer_buffered[peer] += size
        self.buffered += size
        if self.buffered > self.peak_buffered:
            self.peak_buffered = self.buffered
        return None

    def release_buffer(self, peer: PeerId | None, size: int) -> None:
        if size <= 0:
            return
        self.buffered -= size
        left = self._peer_buffered[peer] - size
        if left > 0:
            self._peer_buffered[peer] = left
        else:
            del self._peer_buffered[peer]

    def peer_buffered(self, peer: PeerId | None) -> int:
        return self._peer_buffered.get(peer, 0)

    # ---- streams -----------------------------------------------------------------------------------

    def open_stream(self, peer: PeerId) -> bool:
        """An inbound stream of ``peer`` starts being served (False: over the peer's limit, counted)."""
        if self._peer_streams[peer] >= self.limits.peer_streams:
            self.refuse("peer_streams")
            return False
        self._peer_streams[peer] += 1
        return True

    def close_stream(self, peer: PeerId) -> None:
        left = self._peer_streams[peer] - 1
        if left > 0:
            self._peer_streams[peer] = left
        else:
            del self._peer_streams[peer]

    def peer_streams(self, peer: PeerId) -> int:
        return self._peer_streams.get(peer, 0)

    @property
    def streams(self) -> int:
        return sum(self._peer_streams.values())

    # ---- handshakes --------------------------------------------------------------------------------

    def admit_handshake(self, pending: int, from_source: int) -> bool:
        """Whether an inbound handshake may start when ``pending`` are in progress on its transport,
        ``from_source`` of them from its source address (a refusal is counted)."""
        if pending >= self.limits.pending_handshakes:
            self.refuse("pending_handshakes")
            return False
        if from_source >= self.limits.source_handshakes:
            self.refuse("source_handshakes")
            return False
        return True

    # ---- refusals ----------------------------------------------------------------------------------

    def refuse(self, reason: str) -> str:
        """Count a refusal; returns ``reason`` (for callers that report it)."""
        self.refusals[reason] += 1
        return reason

    def snapshot(self) -> dict[str, Any]:
        """What is held and what was refused, for ``/metrics`` and ``/debug``."""
        return {"buffered_bytes": self.buffered, "peak_buffered_bytes": self.peak_buffered,
                "buffer_limit_bytes": self.limits.memory, "inbound_streams": self.streams,
                "refusals": dict(self.refusals)}


__all__ = ["ResourceLimits", "ResourceManager", "MIB"]
