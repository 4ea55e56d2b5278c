"""NAT boxes as RFC 4787 describes their behaviour, for the simulator's NAT model (``sim/nat.py``).

A box maps an internal endpoint (address, port) to an external one and filters what comes in:

- mapping (RFC 4787 §4.1): endpoint-independent (one external port per internal endpoint, whatever the
  destination: REQ-1), or address-and-port-dependent (a new external port for each destination: what
  "symmetric" NATs do, and what nftables' ``masquerade random-fully`` does);
- filtering (§5): endpoint-independent (anything to a mapped port gets in), address-dependent (only from an
  address the inside sent to), address-and-port-dependent (only from an address and port it sent to);
- ports: preserved where free (most home NATs), else picked at random;
- mapping lifetime (§4.3, REQ-5; RFC 5382 for TCP): a mapping with no traffic for ``timeout[proto]``
  seconds is gone, with its filter state; a mapping held open by a connection's keepalives (``pin``)
  lives on while the keepalive interval is shorter than the timeout;
- hairpinning (§6, REQ-9): a packet from inside to the box's own external address turns back in, and is
  filtered as if it came from outside (the box's external endpoint of the sender).

The four classic names (``p2pnode.transition.profiles.NAT_TYPES``) are the combinations RFC 3489 named:
full cone (EIM + EIF), restricted cone (EIM + ADF), port-restricted cone (EIM + APDF), symmetric (APDM +
APDF). Addresses are integers (the model never needs their text); every call takes ``now``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

EIM, APDM = "endpoint-independent", "address-and-port-dependent"
EIF, ADF, APDF = "endpoint-independent", "address-dependent", "address-and-port-dependent"

BEHAVIOUR = {
    "full-cone": (EIM, EIF),
    "restricted": (EIM, ADF),
    "port-restricted": (EIM, APDF),
    "symmetric": (APDM, APDF),
}

Endpoint = tuple[int, int]  # (address, port)


@dataclass(slots=True, eq=False)
class Binding:
    key: tuple
    proto: str
    internal: Endpoint
    port: int  # external
    last_used: float
    remotes: dict = field(default_factory=dict)  # what the filter lets in: address or endpoint -> last used
    pins: int = 0
    forwarded: bool = False  # a port mapping asked for (UPnP IGD / NAT-PMP): open to all, never expires


class NatBox:
    def __init__(self, nat_type: str, address: int, rng: random.Random, timeouts: dict[str, float],
                 keepalive: float = 15.0, hairpin: bool = True, preserve_ports: bool = True):
        self.nat_type = nat_type
        self.mapping, self.filtering = BEHAVIOUR[nat_type]
        self.address = address
        self.rng = rng
        self.timeouts = timeouts
        self.keepalive = keepalive
        self.hairpin = hairpin
        self.preserve_ports = preserve_ports and self.mapping == EIM
        self._bindings: dict[tuple, Binding] = {}
        self._by_port: dict[tuple[str, int], Binding] = {}
        self.created = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._by_port)

    def _key(self, proto: str, internal: Endpoint, remote: Endpoint) -> tuple:
        if self.mapping == EIM:
            return proto, internal
        return proto, internal, remote

    def _alive(self, binding: Binding, now: float) -> bool:
        if binding.forwarded:
            return True
        if now - binding.last_used <= self.timeouts[binding.proto]:
            return True
        if binding.pins and self.keepalive < self.timeouts[binding.proto]:
            binding.last_used = now  # its connection's keepalives refreshed it all along
            return True
        return False

    def _drop(self, binding: Binding) -> None:
        del self._bindings[binding.key]
        del self._by_port[binding.proto, binding.port]
        self.expired += 1

    def _allocate(self, proto: str, wanted: int) -> int:
        if self.preserve_ports and (proto, wanted) not in self._by_port:
            return wanted
        while True:
            port = self.rng.randrange(1024, 65536)
            if (proto, port) not in self._by_port:
                return port

    def outbound(self, proto: str, internal: Endpoint, remote: Endpoint, now: float, pin: bool = False) -> Endpoint:
        """A packet from ``internal`` to ``remote`` leaves: the external endpoint it leaves from (the mapping
        made or refreshed), the filter now letting ``remote`` back in."""
        key = self._key(proto, internal, remote)
        binding = self._bindings.get(key)
        if binding is not None and not self._alive(binding, now):
            self._drop(binding)
            binding = None
        if binding is None:
            binding = Binding(key, proto, internal, self._allocate(proto, internal[1]), now)
            self._bindings[key] = binding
            self._by_port[proto, binding.port] = binding
            self.created += 1
        binding.last_used = now
        if self.filtering == ADF:
            binding.remotes[remote[0]] = now
        elif self.filtering == APDF:
            binding.remotes[remote] = now
        if pin:
            binding.pins += 1
        return self.address, binding.port

    def unpin(self, proto: str, internal: Endpoint, remote: Endpoint) -> None:
        binding = self._bindings.get(self._key(proto, internal, remote))
        if binding is not None and binding.pins:
            binding.pins -= 1

    def inbound(self, proto: str, remote: Endpoint, port: int, now: float) -> Endpoint | None:
        """A packet from ``remote`` to our external ``port`` arrives: the internal endpoint it goes to, or None
        when there is no live mapping or the filter keeps it out."""
        binding = self._by_port.get((proto, port))
        if binding is None:
            return None
        if not self._alive(binding, now):
            self._drop(binding)
            return None
        if binding.forwarded:
            return binding.internal
        if self.filtering == ADF:
            seen = binding.remotes.get(remote[0])
        elif self.filtering == APDF:
            seen = binding.remotes.get(remote)
        else:
            seen = binding.last_used
        if seen is None or now - seen > self.timeouts[proto] and not binding.pins:
            return None
        binding.last_used = now  # inbound traffic refreshes the mapping too (RFC 4787 REQ-6 allows it)
        return binding.internal

    def forward(self, proto: str, internal: Endpoint) -> Endpoint:
        """A port mapping, as UPnP IGD or NAT-PMP ask for one: the internal endpoint's traffic leaves from, and
        anything may reach it at, one external port for good."""
        key = (proto, internal)
        binding = Binding(key, proto, internal, self._allocate(proto, internal[1]), 0.0, forwarded=True)
        if self.mapping == EIM:
            self._bindings[key] = binding
        self._by_port[proto, binding.port] = binding
        return self.address, binding.port

    def mapped(self, proto: str, internal: Endpoint, remote: Endpoint, now: float) -> Endpoint | None:
        """The external endpoint a packet from ``internal`` to ``remote`` would leave from now, without sending
        one (None: it would get a new mapping whose port cannot be known in advance)."""
        binding = self._bindings.get(self._key(proto, internal, remote))
        if binding is None or not self._alive(binding, now):
            return None
        return self.address, binding.port
