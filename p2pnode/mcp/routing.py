"""Calling MCP methods on other peers (sans-IO): direct when possible, else relayed through the connected
peer closest to the target, with failover from one provider to the next.

The runtime supplies a ``PeerLink``: ``call(peer, message, timeout, on_reply, on_failure)`` sends one
JSON-RPC request over ``/p2pnode/mcp/1.0.0`` and reports the response (or why there is none). A relayed
call is a ``p2pnode/forward`` request to the relay, which makes the call to the target directly and
answers with the target's response; the relay must grant the caller the ``relay`` capability, and every
forwarded request carries a hop count in ``_meta`` so that no request circles.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from multiaddr import Multiaddr

from p2pnode.identity import kad_key
from p2pnode.interface import Runtime, Timer
from p2pnode.kad.messages import PeerInfo
from p2pnode.mcp import jsonrpc
from p2pnode.mcp.server import META_CAPABILITIES, META_CLIENT_INFO, META_HOPS, META_VERSION, MODERN_VERSIONS
from p2pnode.transports.addresses import parse as parse_multiaddr
from p2pnode.wire import MCP

PROTOCOL = MCP.ids[0]
MAX_HOPS = 3
HEDGE_SAMPLES = 10  # answers seen before hedge_delay trusts their distribution


class PeerLink(Protocol):
    def call(self, peer: PeerInfo, message: dict[str, Any], timeout: float,
             on_reply: Callable[[dict[str, Any]], None], on_failure: Callable[[str], None]) -> None:
        """Send one JSON-RPC request to ``peer``; exactly one callback runs (``on_failure`` after ``timeout``)."""


@dataclass
class Attempt:
    peer: str
    route: str          # "direct" or "relay"
    outcome: str        # "ok", "error", "tool_error", "failed", "timeout", "superseded" (another answered first)
    latency_ms: float
    via: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out = {"peer": self.peer, "route": self.route, "outcome": self.outcome, "latency_ms": self.latency_ms}
        if self.via:
            out["via"] = self.via
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class Outcome:
    """How a routed call ended: the response (JSON-RPC result or error object) and every attempt made."""

    response: dict[str, Any] | None
    attempts: list[Attempt] = field(default_factory=list)
    failovers: int = 0  # providers asked after one failed or timed out (call_any)
    hedges: int = 0     # providers asked beside a slow one (call_any)

    @property
    def ok(self) -> bool:
        return self.response is not None and "result" in self.response and not self.response["result"].get("isError")


def peer_to_json(peer: PeerInfo) -> dict[str, Any]:
    return {"peer_id": peer.peer_id.to_base58(), "addrs": [str(Multiaddr(a)) for a in peer.addrs]}


def peer_from_json(data: Any) -> PeerInfo:
    from p2pnode.mcp.services import peer_from_text

    if not isinstance(data, dict) or not isinstance(data.get("peer_id"), str):
        raise ValueError("a peer is {peer_id, addrs}")
    addrs = data.get("addrs", [])
    if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
        raise ValueError("a peer's addrs are a list of multiaddr strings")
    return PeerInfo(peer_from_text(data["peer_id"]),
                    tuple(parse_multiaddr(a).to_bytes() for a in addrs[:8]))


class Router:
    def __init__(self, runtime: Runtime, link: PeerLink, local: PeerInfo,
                 connected: Callable[[], Iterable[PeerInfo]], client_name: str = "p2pnode"):
        self.runtime = runtime
        self.link = link
        self.local = local
        self.connected = connected
        self.client_info = {"name": client_name, "version": "router"}
        self._ids = itertools.count(1)
        self.failovers = 0   # next providers asked after one failed or timed out
        self.hedges = 0      # next providers asked beside a slow one
        self.answer_times: deque[float] = deque(maxlen=100)  # seconds, of recent good answers (hedge_delay)

    def message(self, method: str, params: dict[str, Any], hops: int) -> dict[str, Any]:
        meta = {META_VERSION: MODERN_VERSIONS[0], META_CAPABILITIES: {}, META_CLIENT_INFO: self.client_info,
                META_HOPS: hops + 1}
        return jsonrpc.request(f"r{next(self._ids)}", method, {**params, "_meta": meta})

    def relays_for(self, target: PeerInfo) -> list[PeerInfo]:
        """Connected peers other than the target, closest to it first."""
        key = kad_key(target.peer_id.raw)
        peers = [p for p in self.connected() if p.peer_id not in (target.peer_id, self.local.peer_id)]
        return sorted(peers, key=lambda p: key ^ kad_key(p.peer_id.raw))

    def call(self, target: PeerInfo, method: str, params: dict[str, Any], timeout: float, hops: int,
             on_done: Callable[[Outcome], None], relay: bool = True) -> None:
        """One request to ``target``: directly, and if that fails, through the closest connected peer."""
        outcome = Outcome(None)
        if hops >= MAX_HOPS:
            outcome.response = jsonrpc.error(None, jsonrpc.PEER_UNREACHABLE, f"more than {MAX_HOPS} hops")
            on_done(outcome)
            return
        started = self.runtime.now()
        peer_text = target.peer_id.to_base58()

        def elapsed() -> float:
            return round((self.runtime.now() - started) * 1000, 3)

        def direct_reply(response: dict[str, Any]) -> None:
            outcome.attempts.append(Attempt(peer_text, "direct", _outcome_of(response), elapsed()))
            outcome.response = response
            on_done(outcome)

        def direct_failed(reason: str) -> None:
            outcome.attempts.append(Attempt(peer_text, "direct", "timeout" if reason == "timeout" else "failed",
                                            elapsed(), detail=reason))
            relays = self.relays_for(target) if relay else []
            if not relays or reason == "timeout":
                # a timed-out peer may be alive but slow; relaying would only repeat the wait
                outcome.response = jsonrpc.error(None, jsonrpc.PEER_UNREACHABLE, f"{peer_text}: {reason}")
                on_done(outcome)
                return
            via = relays[0]
            inner = {"method": method, "params": params}

            def relayed(response: dict[str, Any]) -> None:
                outcome.attempts.append(Attempt(peer_text, "relay", _outcome_of(response), elapsed(),
                                                via.peer_id.to_base58()))
                outcome.response = response
                on_done(outcome)

            def relay_failed(why: str) -> None:
                outcome.attempts.append(Attempt(peer_text, "relay", "failed", elapsed(), via.peer_id.to_base58(),
                                                why))
                outcome.response = jsonrpc.error(None, jsonrpc.PEER_UNREACHABLE,
                                                 f"{peer_text}: {reason}; via {via.peer_id.short()}: {why}")
                on_done(outcome)

            remaining = max(0.1, timeout - (self.runtime.now() - started))
            self.link.call(via, self.message("p2pnode/forward", {"target": peer_to_json(target), "request": inner},
                                             hops), remaining, relayed, relay_failed)

        self.link.call(target, self.message(method, params, hops), timeout, direct_reply, direct_failed)

    def call_any(self, providers: Sequence[PeerInfo], method: str, params: dict[str, Any], attempt_timeout: float,
                 hops: int, on_done: Callable[[Outcome], None], on_attempt: Callable[[Attempt], None] | None = None,
                 is_cancelled: Callable[[], bool] = lambda: False) -> None:
        """Try ``providers`` in order until one answers without error. The next one is asked when an attempt
        fails or times out (failover), and also when one has not answered within ``hedge_delay`` (a hedged
        request, "The Tail at Scale": the slow attempt goes on and the first good answer wins), so one slow or
        silently crashed provider costs the caller about a 95th-percentile answer time instead of a timeout."""
        queue = list(providers)
        slots: list[tuple[str, float, list[Outcome]]] = []  # per attempt started: peer, when, its outcome
        running = [0]
        hedge: list[Timer | None] = [None]
        finished = [False]
        counts = Outcome(None)  # failovers and hedges of this call

        def finish(response: dict[str, Any] | None) -> None:
            finished[0] = True
            if hedge[0] is not None:
                hedge[0].cancel()
            total = Outcome(response if response is not None else
                            jsonrpc.error(None, jsonrpc.PEER_UNREACHABLE, "no provider answered"),
                            failovers=counts.failovers, hedges=counts.hedges)
            for peer_text, started, outcomes in slots:
                if outcomes:
                    total.attempts.extend(outcomes[0].attempts)
                else:  # still under way when another answered
                    total.attempts.append(Attempt(peer_text, "direct", "superseded",
                                                  round((self.runtime.now() - started) * 1000, 3)))
            on_done(total)

        def launch() -> None:
            peer = queue.pop(0)
            outcomes: list[Outcome] = []
            slots.append((peer.peer_id.to_base58(), self.runtime.now(), outcomes))
            running[0] += 1
            if hedge[0] is not None:
                hedge[0].cancel()
            hedge[0] = self.runtime.call_later(self.hedge_delay(attempt_timeout), hedged) if queue else None
            self.call(peer, method, params, attempt_timeout, hops, lambda outcome: done(outcome, outcomes))

        def hedged() -> None:
            hedge[0] = None
            if not finished[0] and queue and not is_cancelled():
                self.hedges += 1
                counts.hedges += 1
                launch()

        def done(outcome: Outcome, outcomes: list[Outcome]) -> None:
            running[0] -= 1
            outcomes.append(outcome)
            if outcome.ok:  # late answers too: leaving them out would make slow peers look fast
                self.answer_times.append(outcome.attempts[-1].latency_ms / 1000)
            if on_attempt is not None and outcome.attempts and not (finished[0] and outcome.ok):
                on_attempt(outcome.attempts[-1])  # late failures too: the caller forgets the peer
            if finished[0] or is_cancelled():
                return
            if outcome.ok:
                finish(outcome.response)
            elif queue:
                self.failovers += 1
                counts.failovers += 1
                launch()
            elif running[0] == 0:
                finish(outcome.response)

        if not queue:
            finish(None)
        else:
            launch()

    def hedge_delay(self, attempt_timeout: float) -> float:
        """When to ask the next provider beside a slow one: the 95th percentile of this node's recent answer
        times (a second request for about one call in twenty), or half the attempt timeout until enough
        answers were seen; never later than the attempt timeout."""
        times = sorted(self.answer_times)
        if len(times) < HEDGE_SAMPLES:
            return attempt_timeout / 2
        return min(attempt_timeout, times[min(len(times) - 1, int(0.95 * len(times)))])


def _outcome_of(response: dict[str, Any]) -> str:
    if "error" in response:
        return "error"
    return "tool_error" if response.get("result", {}).get("isError") else "ok"


class Deadline:
    """A timer, started when the work starts, that can be cancelled and says whether it fired (for
    fan-outs with partial results)."""

    def __init__(self) -> None:
        self.expired = False
        self._timer: Timer | None = None

    def start(self, runtime: Runtime, seconds: float, on_expiry: Callable[[], None]) -> None:
        def fire() -> None:
            self.expired = True
            on_expiry()

        self._timer = runtime.call_later(seconds, fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
