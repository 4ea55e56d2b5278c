"""The reserving side of Circuit Relay v2, sans-IO: a private node keeps reservations at ``NatConfig.relays``
relays and advertises its ``/p2p-circuit`` addresses through them.

While ``wanted`` (AutoNAT said the node is private), the client picks relays among the candidates its
``discover()`` returns (peers that speak the hop protocol: Identify tells real nodes, the simulator knows),
never one that failed or refused it in the last ``relay_backoff`` seconds, and sends each a RESERVE over the
runtime's request primitive. An answer is taken only if its voucher verifies (signed by that relay, for us,
not expired: ``relay.voucher.consume``) and its expiry lies ahead; the reservation is renewed
``refresh_before`` seconds before it expires. When the connection to a relay closes (the relay died or left),
the reservation is gone and another relay is asked at once: ``connection_closed``.

A STOP from a relay (someone dialling us through it) is accepted only from a relay we hold a reservation at
(``accept_stop``). What happens is told to ``on_event`` as ``ReservationMade``/``ReservationFailed``/
``ReservationLost``, so the node can log it, count it and re-advertise its addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from p2pnode.config import NatConfig
from p2pnode.envelope import EnvelopeError
from p2pnode.identity import Keypair, PeerId
from p2pnode.interface import Runtime, Timer
from p2pnode.kad.messages import PeerInfo
from p2pnode.relay import addrs as circuit_addrs
from p2pnode.relay import voucher
from p2pnode.relay.messages import HopStatus, Limit, Reservation, Reserve, Status, StopConnect, StopStatus


@dataclass(frozen=True, slots=True)
class ReservationMade:
    relay: PeerId
    expires: float  # runtime clock
    renewal: bool


@dataclass(frozen=True, slots=True)
class ReservationFailed:
    relay: PeerId
    reason: str  # a status name, "timeout", or why the voucher was refused


@dataclass(frozen=True, slots=True)
class ReservationLost:
    relay: PeerId
    reason: str  # "connection closed", "expired"


@dataclass(slots=True)
class Slot:
    relay: PeerInfo
    reservation: Reservation
    limit: Limit | None
    expires: float  # runtime clock
    renew_at: float
    addrs: tuple[bytes, ...]  # our circuit addresses through this relay


class RelayClient:
    def __init__(self, keypair: Keypair, runtime: Runtime, config: NatConfig, epoch: float,
                 discover: Callable[[], Iterable[PeerInfo]], on_event: Callable[[Any], None] = lambda e: None):
        self.keypair = keypair
        self.runtime = runtime
        self.config = config
        self.epoch = epoch
        self.discover = discover
        self.on_event = on_event
        self.slots: dict[PeerId, Slot] = {}
        self.pending: set[PeerId] = set()
        self.avoid: dict[PeerId, float] = {}  # relay -> until when it is not asked again
        self.wanted = False
        self.running = False
        self._timer: Timer | None = None
        self._timer_at = float("inf")

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.running = True
        self._maintain()

    def stop(self) -> None:
        self.running = False
        self.slots.clear()
        self.pending.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def want(self, wanted: bool) -> None:
        """Hold reservations (a private node) or let them lapse (a public one)."""
        if wanted != self.wanted:
            self.wanted = wanted
            if not wanted:
                self.slots.clear()
            self._maintain()

    # ---- facts -----------------------------------------------------------------------------------

    def circuit_addrs(self) -> tuple[bytes, ...]:
        """Our ``/p2p-circuit`` addresses through every relay we hold a reservation at."""
        return tuple(a for slot in self.slots.values() for a in slot.addrs)

    def relays(self) -> list[PeerId]:
        return list(self.slots)

    def accept_stop(self, relay: PeerId, message: StopConnect) -> StopStatus:
        """Answer a relay's STOP CONNECT: only relays we hold a reservation at may connect others to us."""
        if relay not in self.slots:
            return StopStatus(Status.PERMISSION_DENIED)
        return StopStatus(Status.OK)

    # ---- runtime callbacks -----------------------------------------------------------------------

    def recheck(self) -> None:
        """New relay candidates may be known (a peer's Identify listed the hop protocol): reserve if short."""
        if self.running and self.wanted and len(self.slots) + len(self.pending) < self.config.relays:
            self._maintain()

    def connection_closed(self, peer: PeerId) -> None:
        if self.slots.pop(peer, None) is not None:
            self.on_event(ReservationLost(peer, "connection closed"))
            self._maintain()

    # ---- choosing and asking relays --------------------------------------------------------------

    def _maintain(self) -> None:
        if not self.running:
            return
        now = self.runtime.now()
        for peer, slot in list(self.slots.items()):
            if slot.expires <= now:
                del self.slots[peer]
                self.on_event(ReservationLost(peer, "expired"))
            elif slot.renew_at <= now and peer not in self.pending:
                self._ask(slot.relay, renewal=True)
        if self.wanted:
            missing = self.config.relays - len(self.slots) - len(self.pending)
            if missing > 0:
                for relay in self._choose(missing, now):
                    self._ask(relay, renewal=False)
        self._arm(now)

    def _choose(self, count: int, now: float) -> list[PeerInfo]:
        for peer in [p for p, until in self.avoid.items() if until <= now]:
            del self.avoid[peer]
        own = self.keypair.peer_id
        pool = [info for info in dict.fromkeys(self.discover())
                if info.peer_id != own and info.peer_id not in self.slots and info.peer_id not in self.pending
                and info.peer_id not in self.avoid]
        if len(pool) > count:
            pool = self.runtime.rng.sample(pool, count)
        return pool

    def _ask(self, relay: PeerInfo, renewal: bool) -> None:
        peer = relay.peer_id
        self.pending.add(peer)
        self.runtime.request(relay, Reserve(), self.config.reserve_timeout,
                             lambda answer: self._answered(relay, answer, renewal),
                             lambda reason: self._failed(relay, reason))

    def _answered(self, relay: PeerInfo, answer: Any, renewal: bool) -> None:
        peer = relay.peer_id
        self.pending.discard(peer)
        if not self.running:
            return
        now = self.runtime.now()
        reason = self._check(peer, answer, now)
        if reason:
            self._failed(relay, reason)
            return
        if not self.wanted and not renewal:
            self._maintain()
            return
        reservation = answer.reservation
        expires = reservation.expire - self.epoch
        life = expires - now
        self.slots[peer] = Slot(relay, reservation, answer.limit, expires,
                                expires - min(self.config.refresh_before, life / 2),
                                circuit_addrs.advertised(reservation.addrs))
        self.on_event(ReservationMade(peer, expires, renewal))
        self._maintain()

    def _check(self, relay: PeerId, answer: Any, now: float) -> str:
        """Why ``answer`` is not a reservation we take ("" when it is)."""
        if not isinstance(answer, HopStatus):
            return f"unexpected answer {type(answer).__name__}"
        if answer.status != Status.OK:
            return answer.status.name
        reservation = answer.reservation
        if reservation is None:
            return "OK without a reservation"
        if reservation.expire - self.epoch <= now:
            return f"reservation expired at {reservation.expire}"
        if reservation.voucher:
            try:
                voucher.consume(reservation.voucher, relay=relay, peer=self.keypair.peer_id,
                                now=self.epoch + now)
            except EnvelopeError as exc:
                return str(exc)
        return ""

    def _failed(self, relay: PeerInfo, reason: str) -> None:
        peer = relay.peer_id
        self.pending.discard(peer)
        if not self.running:
            return
        self.avoid[peer] = self.runtime.now() + self.config.relay_backoff
        if self.slots.pop(peer, None) is not None:
            self.on_event(ReservationLost(peer, f"renewal failed: {reason}"))
        self.on_event(ReservationFailed(peer, reason))
        self._maintain()

    # ---- the clock -------------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        times = [s.renew_at for p, s in self.slots.items() if p not in self.pending]
        if self.wanted and len(self.slots) + len(self.pending) < self.config.relays:
            # no candidate now: look again when the first avoided relay may be asked, or in a while
            times.append(min(self.avoid.values(), default=self.runtime.now() + self.config.relay_backoff))
        return min(times, default=None)

    def _arm(self, now: float) -> None:
        at = self.next_timer()
        if at is None or at >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.runtime.call_later(max(0.0, at - now), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self._maintain()
