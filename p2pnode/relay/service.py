"""The relay's side of Circuit Relay v2 (the hop protocol), sans-IO: who holds a reservation, which circuits are
open, and what each may still carry.

``reserve`` answers a RESERVE: a slot for an hour (``NatConfig.reservation_ttl``) with a voucher signed by the
relay, or ``RESERVATION_REFUSED`` when the relay is full (``max_reservations``, ``max_reservations_per_ip``) and
``PERMISSION_DENIED`` for a reservation over a relayed connection (the spec: implementations should not
accept those). ``open_circuit`` decides a CONNECT: ``NO_RESERVATION`` when the target holds none,
``RESOURCE_LIMIT_EXCEEDED`` past ``max_circuits`` per peer or ``max_circuits_total``; otherwise a ``Circuit``
whose ``carry`` counts the bytes relayed each way and says when the data limit is reached, and whose
``deadline`` is when its duration limit ends it. The runtime does the streams (the asyncio one bridges the
hop and stop streams; the simulator models the two legs) and resets both when a limit is hit.

A reservation lasts as long as the reserving peer's connection to the relay (``connection_closed`` ends it)
or until it expires. Times are the runtime's clock; vouchers carry UNIX seconds, ``epoch + now``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from p2pnode.config import NatConfig
from p2pnode.identity import Keypair, PeerId
from p2pnode.kad.messages import PeerInfo
from p2pnode.relay import voucher
from p2pnode.relay.messages import HopStatus, Limit, Reservation, Reserve, Status


@dataclass(slots=True)
class Held:
    peer: PeerId
    expires: float  # runtime clock
    ip: str


@dataclass(slots=True, eq=False)
class Circuit:
    source: PeerId
    target: PeerId
    opened: float
    limit: Limit
    carried: list[int] = field(default_factory=lambda: [0, 0])  # bytes source->target, target->source

    @property
    def deadline(self) -> float | None:
        return self.opened + self.limit.duration if self.limit.duration else None

    def carry(self, to_target: bool, size: int) -> bool:
        """Count ``size`` bytes relayed one way; False once that way is past the data limit (the relay then
        resets the circuit)."""
        way = 0 if to_target else 1
        self.carried[way] += size
        return not self.limit.data or self.carried[way] <= self.limit.data


class RelayService:
    def __init__(self, keypair: Keypair, config: NatConfig, clock: Callable[[], float], epoch: float,
                 public_addrs: Callable[[], tuple[bytes, ...]]):
        """``clock()``: the runtime's now; ``public_addrs()``: the relay's own public addresses, each ending in
        /p2p/<relay>."""
        self.keypair = keypair
        self.clock = clock
        self.config = config
        self.epoch = epoch
        self.public_addrs = public_addrs
        self.reservations: dict[PeerId, Held] = {}
        self.circuits: set[Circuit] = set()
        self._per_peer: Counter[PeerId] = Counter()  # open circuits each peer is an end of
        self.refused: Counter[str] = Counter()  # status name -> count, for metrics
        self.reserved = 0  # reservations granted (renewals too)
        self.bytes_relayed = 0
        self.limit = Limit(config.circuit_duration, config.circuit_data)

    # ---- reservations ----------------------------------------------------------------------------

    def reserve(self, peer: PeerId, now: float, ip: str = "", relayed: bool = False) -> HopStatus:
        self._expire(now)
        config = self.config
        if relayed:
            return self._refuse(Status.PERMISSION_DENIED)
        held = self.reservations.get(peer)
        if held is None:
            if len(self.reservations) >= config.max_reservations:
                return self._refuse(Status.RESERVATION_REFUSED)
            if ip and sum(1 for h in self.reservations.values() if h.ip == ip) >= config.max_reservations_per_ip:
                return self._refuse(Status.RESERVATION_REFUSED)
        expires = now + config.reservation_ttl
        self.reservations[peer] = Held(peer, expires, ip)
        self.reserved += 1
        expire = int(self.epoch + expires)
        return HopStatus(Status.OK, Reservation(expire, self.public_addrs(), voucher.seal(self.keypair, peer, expire)),
                         self.limit if self.limit.duration or self.limit.data else None)

    def handle_request(self, sender: PeerInfo, message: Reserve) -> HopStatus:
        """A RESERVE arriving as a request (the simulator's path; real nodes call ``reserve`` from the hop
        stream, where they know the connection's address)."""
        return self.reserve(sender.peer_id, self.clock())

    def connection_closed(self, peer: PeerId) -> None:
        self.reservations.pop(peer, None)

    def has_reservation(self, peer: PeerId, now: float) -> bool:
        held = self.reservations.get(peer)
        return held is not None and held.expires > now

    def _expire(self, now: float) -> None:
        for peer in [p for p, h in self.reservations.items() if h.expires <= now]:
            del self.reservations[peer]

    def _refuse(self, status: Status) -> HopStatus:
        self.refused[status.name] += 1
        return HopStatus(status)

    # ---- circuits --------------------------------------------------------------------------------

    def open_circuit(self, source: PeerId, target: PeerId, now: float) -> Circuit | Status:
        """A circuit from ``source`` to ``target``, or the status refusing it."""
        config = self.config
        if not self.has_reservation(target, now):
            status = Status.NO_RESERVATION
        elif (len(self.circuits) >= config.max_circuits_total or self._per_peer[source] >= config.max_circuits
              or self._per_peer[target] >= config.max_circuits):
            status = Status.RESOURCE_LIMIT_EXCEEDED
        else:
            circuit = Circuit(source, target, now, self.limit)
            self.circuits.add(circuit)
            self._per_peer[source] += 1
            self._per_peer[target] += 1
            return circuit
        self.refused[status.name] += 1
        return status

    def circuit_closed(self, circuit: Circuit) -> None:
        if circuit in self.circuits:
            self.circuits.discard(circuit)
            self.bytes_relayed += sum(circuit.carried)
            for peer in (circuit.source, circuit.target):
                self._per_peer[peer] -= 1
                if self._per_peer[peer] <= 0:
                    del self._per_peer[peer]

    def stats(self) -> dict[str, int]:
        return {"reservations": len(self.reservations), "circuits": len(self.circuits),
                "reserved": self.reserved, "bytes_relayed": self.bytes_relayed + sum(
                    sum(c.carried) for c in self.circuits), **{f"refused_{k}": v for k, v in self.refused.items()}}
