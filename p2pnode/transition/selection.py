"""Which transition mechanism a host uses, from what it observes about its network, sans-IO.

A host needs IPv6 (the spec: every node has an IPv6 address, native or tunnelled) and wants IPv4 to
reach IPv4-only peers. With both natively it uses neither tunnel ("native"). Missing IPv6, it tries
the IPv6-over-IPv4 mechanisms its network allows (6rd when DHCPv4 option 212 offers it, ISATAP when
a potential-router list exists, 6to4 with a public IPv4 address, Teredo with a configured server,
6over4 on a multicast-capable IPv4 site); missing IPv4 on a native IPv6 network, the IPv4-over-IPv6
ones the operator provisions (MAP-E / MAP-T by DHCPv6 options 94 / 95, DS-Lite by option 64,
464XLAT when a Pref64 was learnt from ``ipv4only.arpa`` or an RA PREF64 option).

Candidates are tried in the ``[tunneling] preferred_protocols`` order, then (with
``fallback_cascade``) the others in ``profiles.DEFAULT_ORDER``. Probing follows Happy Eyeballs
(RFC 8305 §5): the first probe starts at once, the next after ``attempt_delay`` unless one
succeeded, a failed probe starts the next at once, a probe unanswered after ``probe_timeout`` has
failed (a blackhole). The first success wins. Every ``probe_interval`` the choice is probed again
from the top, so a better mechanism that appears is taken, and a failed active one is left.

The runtime runs the probes (a packet through the real data plane, or the simulator's model of the
node's network) and reports back with ``probe_result``; it asks ``next_timer()`` when to call
``handle_timer(now)`` and reads the ``events``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from p2pnode.transition import addresses
from p2pnode.transition.addresses import SixRdDomain
from p2pnode.transition.mapping import derive_ce
from p2pnode.transition.options import S46Config
from p2pnode.transition.profiles import DEFAULT_ORDER, MECHANISMS

ATTEMPT_DELAY = 0.25  # RFC 8305 §5: the recommended Connection Attempt Delay
PROBE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Observations:
    """What a host knows about its access network."""
    ipv6_global: tuple[IPv6Address, ...] = ()  # native global IPv6 addresses
    ipv4: IPv4Address | None = None  # the host's own IPv4 address
    nat_type: str = "none"  # between the host and the IPv4 Internet (profiles.NAT_TYPES, or "unknown")
    dhcpv4_6rd: SixRdDomain | None = None  # DHCPv4 option 212
    aftr_name: str | None = None  # DHCPv6 option 64
    map_e: S46Config | None = None  # DHCPv6 option 94
    map_t: S46Config | None = None  # DHCPv6 option 95
    delegated_prefix: IPv6Network | None = None  # the End-user prefix MAP derives from (DHCPv6-PD)
    pref64: IPv6Network | None = None  # from RFC 7050 or an RA PREF64 option (RFC 8781)
    isatap_prl: tuple[IPv4Address, ...] = ()  # potential router list
    isatap_prefix: IPv6Network | None = None  # the /64 the ISATAP router advertises, once known
    ipv4_multicast: bool = False
    teredo_servers: tuple[IPv4Address, ...] = ()

    @property
    def public_ipv4(self) -> bool:
        return self.ipv4 is not None and self.nat_type == "none" and addresses.is_globally_unique(self.ipv4)


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    endpoints: tuple[IPv6Address, ...]  # the IPv6 addresses it gives the host (beyond native ones)


def candidates(obs: Observations) -> list[Candidate]:
    """Every mechanism the observations allow, in ``DEFAULT_ORDER``; "native" when nothing is missing."""
    have6, have4 = bool(obs.ipv6_global), obs.ipv4 is not None
    if have6 and have4:
        return [Candidate("native", obs.ipv6_global)]
    found: list[Candidate] = []
    if have6:
        native = obs.ipv6_global
        if obs.map_e is not None and obs.delegated_prefix is not None and _map_ok(obs.map_e, obs.delegated_prefix):
            found.append(Candidate("map-e", native))
        if obs.map_t is not None and obs.delegated_prefix is not None and _map_ok(obs.map_t, obs.delegated_prefix):
            found.append(Candidate("map-t", native))
        if obs.aftr_name:
            found.append(Candidate("dslite", native))
        if obs.pref64 is not None:
            found.append(Candidate("464xlat", native))
    elif have4:
        v4 = obs.ipv4
        if obs.dhcpv4_6rd is not None:
            prefix = obs.dhcpv4_6rd.delegated_prefix(v4)
            found.append(Candidate("6rd", (prefix.network_address + 1,)))
        if obs.isatap_prl:
            prefix = obs.isatap_prefix or IPv6Network("fe80::/64")
            found.append(Candidate("isatap", (addresses.isatap_address(prefix, v4),)))
        if obs.public_ipv4:
            prefix = addresses.sixtofour_prefix(v4)
            found.append(Candidate("6to4", (IPv6Address(int(prefix.network_address) | int(v4)),)))
        if obs.teredo_servers:
            found.append(Candidate("teredo", ()))  # the address comes with qualification
        if obs.ipv4_multicast:
            found.append(Candidate("6over4", (addresses.sixover4_address("fe80::/64", v4),)))
    found.sort(key=lambda c: DEFAULT_ORDER.index(c.name))
    return found


def _map_ok(config: S46Config, prefix: IPv6Network) -> bool:
    try:
        derive_ce(config.bmr, prefix, psid=config.psid)
    except ValueError:
        return False
    return True


def order(found: list[Candidate], preferred: tuple[str, ...], cascade: bool) -> list[Candidate]:
    """The preferred mechanisms first, in their order; then, with ``cascade``, the rest by default order."""
    by_name = {c.name: c for c in found}
    out = [by_name[name] for name in preferred if name in by_name]
    if cascade:
        out += [c for c in found if c.name not in preferred]
    elif not out and "native" in by_name:
        out = [by_name["native"]]
    return out


# ---- events ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProbeStarted:
    name: str
    now: float


@dataclass(frozen=True, slots=True)
class ProbeFailed:
    name: str
    reason: str
    now: float


@dataclass(frozen=True, slots=True)
class MechanismSelected:
    name: str  # "none": nothing worked and the host lacks a family
    previous: str | None
    endpoints: tuple[IPv6Address, ...]
    fallbacks: int  # how many candidates ahead of it failed in this round
    now: float


@dataclass(slots=True)
class _Round:
    queue: list[Candidate]
    started: dict[str, float] = field(default_factory=dict)  # name -> when its probe started
    failed: int = 0
    next_start: float = 0.0


class Selector:
    """The selection state machine of one host."""

    def __init__(self, preferred: tuple[str, ...] = ("native", "dslite", "teredo"), *, cascade: bool = True,
                 probe_interval: float = 300.0, attempt_delay: float = ATTEMPT_DELAY,
                 probe_timeout: float = PROBE_TIMEOUT):
        unknown = [p for p in preferred if p not in MECHANISMS]
        if unknown:
            raise ValueError(f"unknown transition mechanisms: {', '.join(unknown)}")
        self.preferred, self.cascade = tuple(preferred), cascade
        self.probe_interval, self.attempt_delay, self.probe_timeout = probe_interval, attempt_delay, probe_timeout
        self.active: str | None = None
        self.endpoints: tuple[IPv6Address, ...] = ()
        self.events: list = []
        self.probes: list[str] = []  # probes the runtime should start now (drained by it)
        self.reprobes = 0
        self._obs = Observations()
        self._round: _Round | None = None
        self._reprobe_at: float | None = None

    @classmethod
    def from_config(cls, tunneling) -> Selector:
        """From a ``nodeconfig.Tunneling`` section."""
        return cls(tuple(tunneling.preferred_protocols), cascade=tunneling.fallback_cascade,
                   probe_interval=tunneling.probe_interval)

    def observe(self, obs: Observations, now: float) -> None:
        """New observations: start a selection round over what they allow."""
        self._obs = obs
        self._start_round(now)

    def _start_round(self, now: float) -> None:
        queue = order(candidates(self._obs), self.preferred, self.cascade)
        self._round = _Round(queue=queue, next_start=now)
        self._reprobe_at = None
        self._advance(now)

    def _advance(self, now: float) -> None:
        r = self._round
        if r is None:
            return
        for name, started in list(r.started.items()):
            if now - started >= self.probe_timeout:
                del r.started[name]
                self._failed(name, f"no answer in {self.probe_timeout:g} s", now)
                r = self._round
                if r is None:
                    return
        if r.queue and (now >= r.next_start or not r.started):
            candidate = r.queue.pop(0)
            if candidate.name == "native":
                self._select(candidate.name, candidate.endpoints, now)
                return
            r.started[candidate.name] = now
            r.next_start = now + self.attempt_delay
            self.probes.append(candidate.name)
            self.events.append(ProbeStarted(candidate.name, now))
        if not r.queue and not r.started:
            self._select("native" if self._obs.ipv6_global else "none", self._obs.ipv6_global, now)

    def _failed(self, name: str, reason: str, now: float) -> None:
        self.events.append(ProbeFailed(name, reason, now))
        r = self._round
        r.failed += 1
        if name == self.active:
            self.active = None
        r.next_start = now  # a failure starts the next attempt at once
        if not r.queue and not r.started:
            self._select("native" if self._obs.ipv6_global else "none", self._obs.ipv6_global, now)

    def probe_result(self, name: str, ok: bool, now: float, endpoints: tuple[IPv6Address, ...] = (),
                     reason: str = "refused") -> None:
        """The runtime's answer to a probe; ``endpoints`` are addresses the probe obtained (Teredo's)."""
        r = self._round
        if r is None or name not in r.started:
            return  # late, after the round was decided
        del r.started[name]
        if ok:
            found = next((c for c in candidates(self._obs) if c.name == name), None)
            self._select(name, endpoints or (found.endpoints if found else ()), now)
        else:
            self._failed(name, reason, now)
            self._advance(now)

    def _select(self, name: str, endpoints: tuple[IPv6Address, ...], now: float) -> None:
        failed = self._round.failed if self._round else 0
        self._round = None
        previous, self.active, self.endpoints = self.active, name, tuple(endpoints)
        self.events.append(MechanismSelected(name, previous, self.endpoints, failed, now))
        self._reprobe_at = now + self.probe_interval

    def next_timer(self) -> float | None:
        r = self._round
        if r is not None:
            times = [started + self.probe_timeout for started in r.started.values()]
            if r.queue:
                times.append(r.next_start)
            return min(times) if times else None
        return self._reprobe_at

    def handle_timer(self, now: float) -> None:
        if self._round is not None:
            self._advance(now)
        elif self._reprobe_at is not None and now >= self._reprobe_at:
            self.reprobes += 1
            self._start_round(now)

    @property
    def protocol(self) -> str:
        """What ``p2p_tunnel_protocol`` shows: the mechanism in use ("native" while still choosing)."""
        return self.active or "native"
