"""``/p2p-circuit`` multiaddrs (libp2p/specs ``relay/circuit-v2.md``, ``addressing/README.md``).

A peer reachable through relay R advertises ``<an address of R>/p2p/R/p2p-circuit``; a dialler appends
``/p2p/<peer>`` (or finds it there already). The part before ``/p2p-circuit`` is how to reach the relay.
"""

from __future__ import annotations

from dataclasses import dataclass

from multiaddr import Multiaddr

from p2pnode.identity import IdentityError, PeerId

CIRCUIT = "/p2p-circuit"


@dataclass(frozen=True, slots=True)
class CircuitAddr:
    relay_addr: Multiaddr  # how to reach the relay, ending in /p2p/<relay> (or only that)
    relay: PeerId
    target: PeerId | None


def parse(addr: Multiaddr | bytes | str) -> CircuitAddr | None:
    """The parts of a circuit address; None for any other address (or a malformed one)."""
    try:
        text = str(Multiaddr(addr) if not isinstance(addr, Multiaddr) else addr)
    except Exception:  # the multiaddr package raises a variety of errors for bad input
        return None
    head, sep, tail = text.partition(CIRCUIT)
    if not sep or CIRCUIT in tail:
        return None
    parts = head.split("/p2p/")
    if len(parts) < 2 or "/" in parts[-1]:
        return None  # the relay part must end in /p2p/<relay>
    try:
        relay = PeerId.from_base58(parts[-1])
        target = None
        if tail:
            if not tail.startswith("/p2p/") or "/" in tail[5:]:
                return None
            target = PeerId.from_base58(tail[5:])
    except (IdentityError, ValueError):
        return None
    return CircuitAddr(Multiaddr(head), relay, target)


def is_circuit(addr: Multiaddr | bytes | str) -> bool:
    return parse(addr) is not None


def advertised(relay_addrs: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """Our circuit addresses through a relay whose reservation listed ``relay_addrs`` (each ending in
    /p2p/<relay>): each with ``/p2p-circuit`` appended, the malformed ones left out."""
    out = []
    for raw in relay_addrs:
        try:
            addr = Multiaddr(raw).encapsulate(Multiaddr(CIRCUIT))
        except Exception:  # noqa: BLE001 - a relay's garbage address is skipped, not fatal
            continue
        if parse(addr) is not None:
            out.append(addr.to_bytes())
    return tuple(out)


def dial_addr(relay_addr: Multiaddr, target: PeerId) -> Multiaddr:
    """``<relay_addr>/p2p-circuit/p2p/<target>``."""
    return relay_addr.encapsulate(Multiaddr(f"{CIRCUIT}/p2p/{target}"))
