"""What each transition mechanism does to a host's traffic: the one table the selection, the
simulator's link model and the data planes' checks all read.

Overheads are the bytes each mechanism adds to a packet of the family it carries (RFC numbers per
row); the MTU is what is left of a 1500-byte access link, except Teredo, whose clients use 1280
(RFC 4380 §5.1). The translators (MAP-T, 464XLAT) add no header but turn a 20-byte IPv4 header
into a 40-byte IPv6 one on the IPv6 leg.
"""

from __future__ import annotations

from dataclasses import dataclass

NAT_TYPES = ("none", "full-cone", "restricted", "port-restricted", "symmetric")


@dataclass(frozen=True, slots=True)
class Mechanism:
    name: str  # as the [tunneling] section spells it
    rfc: str
    carries: str  # "ipv6": IPv6 over an IPv4 access network; "ipv4": IPv4 over an IPv6 one; "" native
    encapsulation: str
    overhead: int  # bytes added to each carried packet
    mtu: int  # for the carried family, on a 1500-byte access link
    infrastructure: str  # the element traffic detours through ("" when none)
    needs_public_ipv4: bool  # the host's own IPv4 address must be globally reachable
    survives: frozenset[str]  # NAT types between the host and the infrastructure it works through
    inbound: str  # unsolicited inbound connections: "yes", "no", "port-set" (only into the CE's ports)
    stateful: bool  # the infrastructure keeps per-flow state
    priority: str  # the spec's: HIGH, MEDIUM, LOW

    @property
    def tunnels(self) -> bool:
        return bool(self.carries)


_ALL_NAT = frozenset(NAT_TYPES)
_NO_NAT = frozenset({"none"})

MECHANISMS: dict[str, Mechanism] = {m.name: m for m in (
    Mechanism("native", "", "", "none", 0, 1500, "", False, _ALL_NAT, "yes", False, "HIGH"),
    Mechanism("6to4", "RFC 3056", "ipv6", "IPv6 in IPv4 (protocol 41)", 20, 1480, "6to4 relay", True, _NO_NAT,
              "yes", False, "MEDIUM"),
    Mechanism("6rd", "RFC 5969", "ipv6", "IPv6 in IPv4 (protocol 41)", 20, 1480, "6rd border relay", False,
              _NO_NAT, "yes", False, "MEDIUM"),
    Mechanism("isatap", "RFC 5214", "ipv6", "IPv6 in IPv4 (protocol 41)", 20, 1480, "ISATAP router", False,
              _NO_NAT, "yes", False, "MEDIUM"),
    Mechanism("6over4", "RFC 2529", "ipv6", "IPv6 in IPv4 multicast (protocol 41)", 20, 1480, "", False, _NO_NAT,
              "yes", False, "LOW"),
    # cone and restricted NATs keep a Teredo mapping; a symmetric NAT gives each peer another port
    Mechanism("teredo", "RFC 4380", "ipv6", "IPv6 in UDP/IPv4 (port 3544)", 28, 1280, "Teredo server and relay",
              False, frozenset({"none", "full-cone", "restricted", "port-restricted"}), "yes", False, "HIGH"),
    Mechanism("dslite", "RFC 6333", "ipv4", "IPv4 in IPv6 (next header 4)", 40, 1460, "AFTR (NAT44)", False,
              _ALL_NAT, "no", True, "HIGH"),
    Mechanism("map-e", "RFC 7597", "ipv4", "IPv4 in IPv6 (next header 4)", 40, 1460, "MAP border relay", False,
              _ALL_NAT, "port-set", False, "HIGH"),
    Mechanism("map-t", "RFC 7599", "ipv4", "IPv4/IPv6 translation (RFC 7915)", 20, 1480, "MAP border relay", False,
              _ALL_NAT, "port-set", False, "HIGH"),
    Mechanism("464xlat", "RFC 6877", "ipv4", "CLAT + PLAT translation (RFC 7915, RFC 6146)", 20, 1480,
              "PLAT (NAT64)", False, _ALL_NAT, "no", True, "HIGH"),
)}

# Selection order when the configuration does not say: native, then what the operator
# provisions, then host-made tunnels (RFC 6724's policy table and RFC 7526 put 6to4 and Teredo last)
DEFAULT_ORDER = ("native", "map-e", "map-t", "dslite", "6rd", "464xlat", "isatap", "6to4", "teredo", "6over4")
