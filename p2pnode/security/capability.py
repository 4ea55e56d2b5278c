"""Signed capability tokens: an issuer says which MCP tools a subject peer may call and under which DHT key
namespaces it may write, until when.

A token is the issuer's Ed25519 signature over ``b"p2pnode-capability:"`` and the canonical JSON of its fields
(``iss``, ``sub``: base58 peer IDs; ``tools``, ``ns``: sorted lists, ``"*"`` for all tools; ``exp``: Unix seconds),
and travels as base64url of that JSON with ``sig`` added. A node honours tokens from the issuers it trusts
(itself, and ``[security] trusted_issuers``), presented by the very peer they name: a token is useless to
anyone who cannot authenticate as its subject, so it can travel in the clear.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from p2pnode.identity import IdentityError, Keypair, PeerId, verify

PREFIX = b"p2pnode-capability:"
MAX_TOKEN = 4096  # characters: a token names a handful of tools and namespaces


class CapabilityError(ValueError):
    """A token that cannot be read, or that does not hold (forged, expired, from an issuer not trusted)."""


@dataclass(frozen=True, slots=True)
class Capability:
    issuer: PeerId
    subject: PeerId
    tools: tuple[str, ...]
    namespaces: tuple[str, ...]
    expires: float  # Unix seconds
    signature: bytes = b""

    def _fields(self) -> dict:
        return {"iss": self.issuer.to_base58(), "sub": self.subject.to_base58(), "tools": sorted(self.tools),
                "ns": sorted(self.namespaces), "exp": self.expires}

    def payload(self) -> bytes:
        return PREFIX + json.dumps(self._fields(), sort_keys=True, separators=(",", ":")).encode()

    def encode(self) -> str:
        data = {**self._fields(), "sig": base64.urlsafe_b64encode(self.signature).decode()}
        return base64.urlsafe_b64encode(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).decode()

    def grants(self) -> frozenset[str]:
        """What it grants, as access-policy capabilities: tool names and ``write:<namespace>``."""
        return frozenset(self.tools) | {f"write:{ns}" for ns in self.namespaces}

    def problem(self, presenter: str, now: float, trusted: frozenset[str]) -> str | None:
        """Why the token does not hold for ``presenter`` (base58) at ``now`` (Unix seconds), or None."""
        if self.subject.to_base58() != presenter:
            return "names another peer"
        if now >= self.expires:
            return "expired"
        if self.issuer.to_base58() not in trusted:
            return "issuer not trusted"
        try:
            key = self.issuer.public_key()
        except IdentityError:
            return "issuer's key unknown"
        return None if verify(key, self.signature, self.payload()) else "bad signature"


def issue(keypair: Keypair, subject: PeerId, tools: tuple[str, ...] = (), namespaces: tuple[str, ...] = (),
          expires: float = 0.0) -> Capability:
    unsigned = Capability(keypair.peer_id, subject, tuple(sorted(tools)), tuple(sorted(namespaces)), expires)
    return Capability(unsigned.issuer, subject, unsigned.tools, unsigned.namespaces, expires,
                      keypair.sign(unsigned.payload()))


def parse(text: str) -> Capability:
    """A token from its text form; ``CapabilityError`` naming what is wrong (not whether it holds)."""
    if not isinstance(text, str) or len(text) > MAX_TOKEN:
        raise CapabilityError(f"a capability token is a string of at most {MAX_TOKEN} characters")
    try:
        data = json.loads(base64.urlsafe_b64decode(text.encode("ascii")))
        signature = base64.urlsafe_b64decode(data["sig"].encode("ascii"))
        tools, namespaces, expires = data["tools"], data["ns"], data["exp"]
        if not (isinstance(tools, list) and isinstance(namespaces, list)
                and all(isinstance(x, str) for x in tools + namespaces)
                and isinstance(expires, int | float) and not isinstance(expires, bool)):
            raise TypeError("tools and ns must be lists of strings, exp a number")
        return Capability(PeerId.from_base58(data["iss"]), PeerId.from_base58(data["sub"]), tuple(tools),
                          tuple(namespaces), float(expires), signature)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeEncodeError, binascii.Error) as exc:
        raise CapabilityError(f"not a capability token: {type(exc).__name__}: {str(exc)[:80]}") from None
