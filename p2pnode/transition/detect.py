"""Which transition mechanism a running host is using, from its interface addresses: what
``p2p_tunnel_protocol`` shows for a real node, whose data plane (``p2pnode/tunnels/``) or operator has
set the tunnel up. The addresses tell: 6to4 (2002::/16), Teredo (2001:0::/32), ISATAP (the 5efe
interface identifier on a global prefix), a DS-Lite B4 (192.0.0.2) or a 464XLAT CLAT (192.0.0.1) on a
host without other IPv4 (RFC 6333 §5.7, RFC 7335). A 6rd, MAP or 6over4 host looks native from its
addresses alone: only its selection knows (``selection.Selector``, which the node runs where it
starts the data plane itself).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

from p2pnode.transition import addresses

_B4, _CLAT = IPv4Address("192.0.0.2"), IPv4Address("192.0.0.1")


def active_mechanism(host_addresses: list[str]) -> str:
    """The mechanism the addresses show ("native" when none)."""
    found = set()
    other_ipv4 = False
    for text in host_addresses:
        try:
            addr = ip_address(text.split("%")[0])
        except ValueError:
            continue
        if isinstance(addr, IPv6Address):
            if addr in addresses.SIXTOFOUR_PREFIX:
                found.add("6to4")
            elif addr in addresses.TEREDO_PREFIX:
                found.add("teredo")
            elif not addr.is_link_local and (int(addr) >> 32) & 0xFDFFFFFF == addresses.ISATAP_MARKER:
                found.add("isatap")
        elif addr == _B4:
            found.add("dslite")
        elif addr == _CLAT:
            found.add("464xlat")
        elif not addr.is_loopback and not addr.is_link_local:
            other_ipv4 = True
    if other_ipv4:
        found -= {"dslite", "464xlat"}  # a host with its own IPv4 uses it, whatever else is configured
    for name in ("dslite", "464xlat", "isatap", "6to4", "teredo"):  # the selection's order
        if name in found:
            return name
    return "native"
