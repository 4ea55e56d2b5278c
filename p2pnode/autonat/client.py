"""The AutoNAT client, sans-IO: which of our addresses are reachable from outside, and so whether we are a
public or a private node.

Each probe asks one server (a peer that speaks AutoNAT; never one asked in this round) to dial one of our
candidate addresses (``candidates()``: what peers observe us at, and our public listen addresses), the ones
without a settled verdict first. v2 servers report the outcome per address and prove the dial with our
nonce; v1 servers only say yes or no. Each address keeps its last ``2n-1`` results from distinct servers and
is reachable (or not) once ``n`` of them agree (``NatConfig.autonat_confidence``, 3 by default: the spec's
suggestion). The node is ``PUBLIC`` once an address is reachable, ``PRIVATE`` once some are not and none
is, ``UNKNOWN`` before. Probes run back to back until every candidate is settled, then every
``autonat_interval`` (so a NAT that appears or a mapping that expires is noticed), and every
``autonat_retry`` while no server or no candidate is known.

``probe(server, addrs, done)`` is the runtime's: the asyncio one runs the v2 (or v1) exchange on streams, the
simulator models the dial back through its NAT model; either reports a ``ProbeResult``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from p2pnode.config import NatConfig
from p2pnode.identity import PeerId
from p2pnode.interface import Runtime, Timer
from p2pnode.kad.messages import PeerInfo

UNKNOWN, PUBLIC, PRIVATE = "unknown", "public", "private"
MAX_ADDRS = 4  # addresses offered per request


@dataclass(frozen=True, slots=True)
class ProbeResult:
    server: PeerId
    addr: bytes | None  # the address the server dialled (None: it dialled none)
    reachable: bool | None  # None: no verdict (refused, rate limited, dial-back error, timeout)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReachabilityChanged:
    status: str
    addrs: tuple[bytes, ...]  # the reachable ones


class _Verdict:
    __slots__ = ("results", "needed")

    def __init__(self, needed: int):
        self.needed = needed
        self.results: deque[tuple[PeerId, bool]] = deque(maxlen=2 * needed - 1)

    def add(self, server: PeerId, ok: bool) -> None:
        for i, (s, _) in enumerate(self.results):
            if s == server:  # one vote per server: its newer answer replaces the old
                del self.results[i]
                break
        self.results.append((server, ok))

    @property
    def reachable(self) -> bool | None:
        yes = sum(1 for _, ok in self.results if ok)
        if yes >= self.needed:
            return True
        if len(self.results) - yes >= self.needed:
            return False
        return None


ProbeFn = Callable[[PeerInfo, tuple[bytes, ...], Callable[[ProbeResult], None]], None]


class AutoNatClient:
    def __init__(self, runtime: Runtime, config: NatConfig, servers: Callable[[], Iterable[PeerInfo]],
                 candidates: Callable[[], Iterable[bytes]], probe: ProbeFn,
                 on_change: Callable[[ReachabilityChanged], None] = lambda e: None):
        self.runtime = runtime
        self.config = config
        self.servers = servers
        self.candidates = candidates
        self.probe = probe
        self.on_change = on_change
        self.status = UNKNOWN
        self.verdicts: dict[bytes, _Verdict] = {}
        self.asked: set[PeerId] = set()  # servers asked in this round
        self.probes = 0
        self.in_flight = False
        self.running = False
        self._timer: Timer | None = None

    def start(self, forced: str | None = None) -> None:
        """Start probing; with ``forced`` (``PUBLIC``/``PRIVATE``) take that verdict and probe nothing."""
        self.running = True
        if forced is not None:
            self.status = forced
            self.on_change(ReachabilityChanged(forced, ()))
            return
        self._later(0.0)

    def stop(self) -> None:
        self.running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def reachable_addrs(self) -> tuple[bytes, ...]:
        return tuple(a for a, v in self.verdicts.items() if v.reachable)

    def recheck(self) -> None:
        """Our addresses changed (a new observed address, a port mapping): probe again soon."""
        if self.running and not self.in_flight and self._timer is not None:
            self._later(0.0)

    # ---- probing ---------------------------------------------------------------------------------

    def _later(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.runtime.call_later(delay, self._tick)

    def _order(self) -> tuple[bytes, ...]:
        addrs = list(dict.fromkeys(self.candidates()))
        # unsettled first, then the settled ones (their re-check), each group in the candidates' order
        addrs.sort(key=lambda a: a in self.verdicts and self.verdicts[a].reachable is not None)
        return tuple(addrs[:MAX_ADDRS])

    def _settled(self) -> bool:
        addrs = list(dict.fromkeys(self.candidates()))
        return bool(addrs) and all(a in self.verdicts and self.verdicts[a].reachable is not None for a in addrs)

    def _tick(self) -> None:
        self._timer = None
        if not self.running or self.in_flight:
            return
        addrs = self._order()
        pool = [s for s in dict.fromkeys(self.servers()) if s.peer_id not in self.asked]
        if not pool:
            self.asked.clear()  # every server of this round answered: a new round, after a pause
        if not addrs or not pool:
            self._later(self.config.autonat_retry)
            return
        server = self.runtime.rng.choice(pool)
        self.asked.add(server.peer_id)
        self.in_flight = True
        self.probes += 1
        self.probe(server, addrs, self._result)

    def _result(self, result: ProbeResult) -> None:
        self.in_flight = False
        if not self.running:
            return
        if result.addr is not None and result.reachable is not None:
            verdict = self.verdicts.get(result.addr)
            if verdict is None:
                verdict = self.verdicts[result.addr] = _Verdict(self.config.autonat_confidence)
            verdict.add(result.server, result.reachable)
        self._update()
        if self._settled():
            self.asked.clear()
            self._later(self.config.autonat_interval)
        else:
            self._later(0.0 if result.reachable is not None else 1.0)

    def _update(self) -> None:
        current = set(dict.fromkeys(self.candidates()))
        # verdicts of addresses we no longer have (an expired mapping's old port) stop counting
        for addr in [a for a in self.verdicts if a not in current]:
            del self.verdicts[addr]
        outcomes = [v.reachable for v in self.verdicts.values()]
        status = PUBLIC if True in outcomes else PRIVATE if False in outcomes else UNKNOWN
        if status != self.status:
            self.status = status
            self.on_change(ReachabilityChanged(status, self.reachable_addrs()))
