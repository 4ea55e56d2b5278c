"""The two sides of a DCUtR hole punch (libp2p/specs ``relay/DCUtR.md``), sans-IO.

Over a relayed connection from A to B, B (the inbound side) drives: ``Initiator.start`` sends a CONNECT with
B's observed addresses and notes the time; A's ``Responder`` answers with its own; on that answer B knows the
relayed round trip, sends a SYNC and dials A's addresses half a round trip later, when the SYNC reaches A and A
dials B's at once (``Dial.at``). For TCP both dials make a simultaneous open; for QUIC A dials and B sprays
UDP packets at A's addresses to open its own NAT (the runtime does either). The first connection that comes up
replaces the relayed one. If the attempt fails (``dial_done(False)``) B starts over with a new CONNECT, the spec's
retry, for three attempts in all (``attempts``); a fresh exchange each time so one bad RTT sample does not
spoil the retries.

Methods return the actions the runtime must take, in order: ``Send`` a message on the DCUtR stream, ``Dial``
at a time, or ``Finished``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2pnode.dcutr.messages import HolePunchConnect, HolePunchSync


@dataclass(frozen=True, slots=True)
class Send:
    message: HolePunchConnect | HolePunchSync
    new_stream: bool = False  # a retry's CONNECT goes on a stream of its own


@dataclass(frozen=True, slots=True)
class Dial:
    addrs: tuple[bytes, ...]  # the other side's addresses to punch towards
    at: float  # runtime clock
    attempt: int


@dataclass(frozen=True, slots=True)
class Finished:
    ok: bool
    attempts: int
    rtt: float | None  # the last relayed round trip measured
    reason: str = ""


Action = Send | Dial | Finished


class Initiator:
    """B, the relayed connection's inbound peer."""

    def __init__(self, own_addrs: tuple[bytes, ...], attempts: int = 3):
        self.own_addrs = own_addrs
        self.attempts = attempts
        self.attempt = 0
        self.rtt: float | None = None
        self.done = False
        self._sent_at: float | None = None

    def start(self, now: float) -> list[Action]:
        self.attempt += 1
        self._sent_at = now
        return [Send(HolePunchConnect(self.own_addrs), new_stream=self.attempt > 1)]

    def receive(self, message: Any, now: float) -> list[Action]:
        if self.done:
            return []
        if not isinstance(message, HolePunchConnect) or self._sent_at is None:
            return self._fail(now, f"unexpected {type(message).__name__}")
        self.rtt = now - self._sent_at
        self._sent_at = None
        if not message.addrs:
            return self._fail(now, "the peer sent no address to punch towards")
        return [Send(HolePunchSync()), Dial(message.addrs, now + self.rtt / 2, self.attempt)]

    def dial_done(self, ok: bool, now: float, reason: str = "") -> list[Action]:
        if self.done:
            return []
        if ok:
            self.done = True
            return [Finished(True, self.attempt, self.rtt)]
        return self._fail(now, reason or "no direct connection")

    def abort(self, reason: str) -> list[Action]:
        """The relayed connection or the stream is gone: no retry can be coordinated."""
        if self.done:
            return []
        self.done = True
        return [Finished(False, self.attempt, self.rtt, reason)]

    def _fail(self, now: float, reason: str) -> list[Action]:
        if self.attempt < self.attempts:
            return self.start(now)
        self.done = True
        return [Finished(False, self.attempt, self.rtt, reason)]


class Responder:
    """A, the relayed connection's outbound peer: answers CONNECT with its addresses, dials on SYNC."""

    def __init__(self, own_addrs: tuple[bytes, ...]):
        self.own_addrs = own_addrs
        self.remote: tuple[bytes, ...] = ()
        self.attempt = 0

    def receive(self, message: Any, now: float) -> list[Action]:
        if isinstance(message, HolePunchConnect):
            self.attempt += 1
            self.remote = message.addrs
            return [Send(HolePunchConnect(self.own_addrs))]
        if isinstance(message, HolePunchSync) and self.remote:
            return [Dial(self.remote, now, self.attempt)]
        return []
