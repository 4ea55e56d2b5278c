"""Capability-based access control: which callers may use which capabilities (for MCP, which tools).

A policy maps a caller (a peer ID in base58, or ``"*"`` for any peer without an entry of its own) to the
capabilities it holds; ``"*"`` among the capabilities grants all of them. Local callers (``None``: an
agent on this machine over HTTP or stdio) hold every capability. Denials are counted per caller and
capability, so they can be logged and exported as metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

ANY = "*"


class AccessPolicy:
    def __init__(self, grants: Mapping[str, Iterable[str]]):
        self.grants = {caller: frozenset(caps) for caller, caps in grants.items()}
        self.denials: Counter[tuple[str, str]] = Counter()

    def held_by(self, caller: str | None) -> frozenset[str] | None:
        """The capabilities ``caller`` holds; None means all of them."""
        if caller is None:
            return None
        caps = self.grants.get(caller, self.grants.get(ANY, frozenset()))
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
