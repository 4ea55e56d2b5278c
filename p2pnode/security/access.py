"""Capability-based access control: which callers may use which capabilities (MCP tools, ``relay``,
``write:<namespace>`` for DHT key namespaces).

A policy maps a caller (a peer ID in base58, or ``"*"`` for any peer without an entry of its own) to the
capabilities it holds; ``"*"`` among the capabilities grants all of them. Local callers (``None``: an
agent on this machine over HTTP or stdio) hold every capability. A peer may also hold capabilities from
signed tokens (``p2pnode.security.capability``) it presented, issued by a trusted issuer and naming it, until
they expire; ``clock`` (Unix seconds) is handed in by the runtime, and without one no token is taken.
Denials are counted per caller and capability, so they can be logged and exported as metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from p2pnode.security.capability import Capability, CapabilityError, parse

ANY = "*"
MAX_TOKENS_PER_PEER = 8  # the newest ones are kept


class AccessPolicy:
    def __init__(self, grants: Mapping[str, Iterable[str]], issuers: Iterable[str] = (),
                 clock: Callable[[], float] | None = None):
        self.grants = {caller: frozenset(caps) for caller, caps in grants.items()}
        self.issuers = frozenset(issuers)
        self.clock = clock
        self.tokens: dict[str, list[Capability]] = {}
        self.denials: Counter[tuple[str, str]] = Counter()

    def held_by(self, caller: str | None) -> frozenset[str] | None:
        """The capabilities ``caller`` holds; None means all of them."""
        if caller is None:
            return None
        caps = self.grants.get(caller, self.grants.get(ANY, frozenset()))
        tokens = self.tokens.get(caller)
        if tokens:
            now = self.clock() if self.clock is not None else float("inf")
            live = [t for t in tokens if t.expires > now]
            self.tokens[caller] = live
            for token in live:
                caps = caps | token.grants()
        return None if ANY in caps else caps

    def allows(self, caller: str | None, capability: str) -> bool:
        held = self.held_by(caller)
        return held is None or capability in held

    def check(self, caller: str | None, capability: str) -> bool:
        """``allows``, counting a denial."""
        if self.allows(caller, capability):
            return True
        self.denials[(caller or "local", capability)] += 1
        return False

    def present(self, caller: str, token: str) -> str | None:
        """Take the capability token ``caller`` presents; None if taken, else why not (counted as a denial
        of "token")."""
        try:
            capability = parse(token)
            problem = "no clock to check its expiry" if self.clock is None else \
                capability.problem(caller, self.clock(), self.issuers)
        except CapabilityError as exc:
            problem = str(exc)
        if problem is not None:
            self.denials[(caller, "token")] += 1
            return problem
        held = self.tokens.setdefault(caller, [])
        if capability not in held:
            held.append(capability)
            del held[:-MAX_TOKENS_PER_PEER]
        return None
