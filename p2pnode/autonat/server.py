"""The AutoNAT server's decisions, sans-IO: which address to dial back, at what cost, and whom to refuse.

v2: the server dials exactly one address, the first of the request it is willing and able to dial: a direct
(not circuit) address of a public IP, of a family and transport it has (``can_dial``). An address of an IP
other than the one the request came from costs the client ``NatConfig.autonat_dial_data`` bytes first (the
spec's amplification attack prevention). Requests beyond a peer's rate (12 a minute, go-libp2p's) or the
server's total (one a second) are ``E_REQUEST_REJECTED``; nothing to dial is ``E_DIAL_REFUSED``.

v1: dial only addresses on the requester's observed IP (the spec's MUST, against RFC 3489's attack), never for
a request over a relayed connection; a request with nothing left to dial is ``E_DIAL_REFUSED``.

The runtime does the dial (a new connection, never an existing one, from a port other than its listening
one so that no NAT lets it in by accident) and reports the outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from p2pnode.autonat.addresses import IpNetwork, ip_of, public_addr
from p2pnode.autonat.messages import (
    DialRequest,
    DialResponse,
    DialStatus,
    ResponseStatus,
    V1Dial,
    V1DialResponse,
    V1Status,
)
from p2pnode.config import NatConfig
from p2pnode.identity import PeerId
from p2pnode.security.ratelimit import TokenBucket

PER_PEER = (12 / 60.0, 12)  # requests a second, burst: go-libp2p's 12 a minute
TOTAL = (1.0, 30)
MAX_TRACKED = 10_000


@dataclass(frozen=True, slots=True)
class DialChoice:
    index: int
    addr: bytes
    dial_data: int  # bytes the client must send first (0: none)


class AutoNatServer:
    def __init__(self, config: NatConfig, can_dial: Callable[[bytes], bool],
                 public_ranges: Iterable[IpNetwork] = ()):
        self.config = config
        self.can_dial = can_dial
        self.public_ranges = tuple(public_ranges)
        self._peers: dict[PeerId, TokenBucket] = {}
        self._total = TokenBucket(*TOTAL)
        self.served = 0
        self.refused = 0

    def _admit(self, peer: PeerId, now: float) -> bool:
        bucket = self._peers.get(peer)
        if bucket is None:
            if len(self._peers) >= MAX_TRACKED:
                self._peers = {p: b for p, b in self._peers.items() if b.available(now) < b.burst}
            bucket = self._peers[peer] = TokenBucket(*PER_PEER, now=now)
        if bucket.available(now) < 1.0 or not self._total.take(now):
            return False
        return bucket.take(now)

    def _dialable(self, addr: bytes) -> bool:
        return public_addr(addr, self.public_ranges) and self.can_dial(addr)

    def choose(self, peer: PeerId, request: DialRequest, observed_ip: str | None, now: float,
               relayed: bool = False) -> DialChoice | DialResponse:
        """The address to dial for a v2 request, or the response refusing it."""
        if relayed or not self._admit(peer, now):
            self.refused += 1
            return DialResponse(ResponseStatus.E_REQUEST_REJECTED)
        for index, addr in enumerate(request.addrs):
            if self._dialable(addr):
                self.served += 1
                cost = 0 if ip_of(addr) == observed_ip else self.config.autonat_dial_data
                return DialChoice(index, addr, cost)
        self.refused += 1
        return DialResponse(ResponseStatus.E_DIAL_REFUSED)

    @staticmethod
    def outcome(choice: DialChoice, connected: bool, nonce_delivered: bool) -> DialResponse:
        if not connected:
            status = DialStatus.E_DIAL_ERROR
        else:
            status = DialStatus.OK if nonce_delivered else DialStatus.E_DIAL_BACK_ERROR
        return DialResponse(ResponseStatus.OK, choice.index, status)

    def choose_v1(self, peer: PeerId, request: V1Dial, observed_ip: str | None, now: float,
                  relayed: bool = False) -> list[bytes] | V1DialResponse:
        """The addresses to dial for a v1 request, or the response refusing it."""
        if request.peer != peer:
            self.refused += 1
            return V1DialResponse(V1Status.E_BAD_REQUEST, "peer ID is not the requester's")
        if relayed or observed_ip is None:
            self.refused += 1
            return V1DialResponse(V1Status.E_DIAL_REFUSED, "not over a relayed connection")
        if not self._admit(peer, now):
            self.refused += 1
            return V1DialResponse(V1Status.E_DIAL_REFUSED, "rate limited")
        addrs = [a for a in dict.fromkeys(request.addrs) if ip_of(a) == observed_ip and self._dialable(a)]
        if not addrs:
            self.refused += 1
            return V1DialResponse(V1Status.E_DIAL_REFUSED, "no public address on the observed IP")
        self.served += 1
        return addrs[:8]
