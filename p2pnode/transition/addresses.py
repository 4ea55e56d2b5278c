"""Address math of the IPv6-in-IPv4 mechanisms and of IPv4-embedded IPv6 addresses.

- 6to4 (RFC 3056 §2): a site with public IPv4 address V4ADDR owns ``2002:V4ADDR::/48``.
- 6rd (RFC 5969 §4): the CE's delegated prefix is the 6rd prefix followed by its IPv4 address less the
  ``IPv4MaskLen`` high bits the whole domain shares.
- ISATAP (RFC 5214 §6.1): interface identifier ``00-00-5E-FE`` + IPv4 (``02-00-...`` with the
  universal/local bit set when the IPv4 address is globally unique).
- 6over4 (RFC 2529 §4-6): interface identifier = 32 zero bits + the IPv4 address; IPv6 multicast maps
  onto IPv4 ``239.OLS.x.y`` (the last two bytes of the IPv6 group, Organization-Local Scope RFC 2365).
- Teredo (RFC 4380 §4, flags as updated by RFC 5991 §3): ``2001:0::/32`` + server IPv4 + flags +
  the client's mapped port and IPv4 address, both bit-inverted.
- RFC 6052 §2.2: an IPv4 address embedded in an IPv6 prefix of length 32, 40, 48, 56, 64 or 96; bits
  64-71 (the "u" octet) are always zero.

Python's ``ipaddress`` parses and prints; the bit layouts are ours (it knows 6to4 and Teredo
extraction only, and tests cross-check against them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

SIXTOFOUR_PREFIX = IPv6Network("2002::/16")
SIXTOFOUR_RELAY_ANYCAST = IPv4Address("192.88.99.1")  # RFC 3068; deprecated by RFC 7526, still the default
TEREDO_PREFIX = IPv6Network("2001::/32")
TEREDO_PORT = 3544
WELL_KNOWN_PREFIX = IPv6Network("64:ff9b::/96")  # RFC 6052 §2.1
RFC6052_LENGTHS = (32, 40, 48, 56, 64, 96)
ISATAP_MARKER = 0x5EFE  # the 0x00005EFE IANA OUI + type, RFC 5214 §6.1
SIXOVER4_OLS = 192  # default Organization-Local Scope byte: 239.192.0.0/14, RFC 2529 §6 / RFC 2365

# IPv4 ranges that are not globally unique (RFC 1918, shared RFC 6598, link-local, loopback): an
# ISATAP identifier built on one of these has the universal/local bit clear
_NOT_GLOBALLY_UNIQUE = tuple(IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                      "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8"))


def _v4(addr: IPv4Address | str) -> IPv4Address:
    return addr if isinstance(addr, IPv4Address) else IPv4Address(addr)


def _v6(addr: IPv6Address | str) -> IPv6Address:
    return addr if isinstance(addr, IPv6Address) else IPv6Address(addr)


def _net6(net: IPv6Network | str) -> IPv6Network:
    return net if isinstance(net, IPv6Network) else IPv6Network(net)


def is_globally_unique(addr: IPv4Address | str) -> bool:
    """Not a private, shared, link-local or loopback address (what ISATAP's u bit and 6to4 care about)."""
    addr = _v4(addr)
    return not any(addr in net for net in _NOT_GLOBALLY_UNIQUE) and not addr.is_multicast \
        and not addr.is_unspecified and not addr.is_reserved


# ---- 6to4 ----------------------------------------------------------------------------------------

def sixtofour_prefix(addr: IPv4Address | str) -> IPv6Network:
    """The /48 a 6to4 site with this public IPv4 address owns (RFC 3056 §2)."""
    addr = _v4(addr)
    if not is_globally_unique(addr):
        raise ValueError(f"6to4 needs a globally unique IPv4 address, not {addr}")
    return IPv6Network(((0x2002 << 112) | (int(addr) << 80), 48))


def sixtofour_ipv4(addr: IPv6Address | str) -> IPv4Address:
    """The IPv4 tunnel end point of a 6to4 address."""
    embedded = _v6(addr).sixtofour
    if embedded is None:
        raise ValueError(f"{addr} is not a 6to4 address (2002::/16)")
    return embedded


# ---- 6rd -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SixRdDomain:
    """What DHCPv4 option 212 tells a 6rd CE (RFC 5969 §7.1.1)."""
    prefix: IPv6Network
    ipv4_mask_len: int
    border_relays: tuple[IPv4Address, ...] = ()

    def __post_init__(self):
        if not 0 <= self.ipv4_mask_len <= 32:
            raise ValueError(f"6rd IPv4MaskLen must be 0..32, not {self.ipv4_mask_len}")
        if self.delegated_length > 128:
            raise ValueError(f"6rd prefix /{self.prefix.prefixlen} with IPv4MaskLen {self.ipv4_mask_len} gives "
                             f"a /{self.delegated_length} delegated prefix")

    @property
    def delegated_length(self) -> int:
        return self.prefix.prefixlen + 32 - self.ipv4_mask_len

    def delegated_prefix(self, ce: IPv4Address | str) -> IPv6Network:
        """The CE's 6rd delegated prefix (RFC 5969 §4)."""
        suffix_len = 32 - self.ipv4_mask_len
        suffix = int(_v4(ce)) & ((1 << suffix_len) - 1)
        value = int(self.prefix.network_address) | (suffix << (128 - self.delegated_length))
        return IPv6Network((value, self.delegated_length))

    def ipv4_of(self, addr: IPv6Address | str, domain_ipv4: IPv4Address | str) -> IPv4Address:
        """The IPv4 end point behind a 6rd address: its embedded bits after the domain's shared high
        ``ipv4_mask_len`` bits, taken from any address of the domain (the BR's own, say)."""
        addr = _v6(addr)
        if addr not in self.prefix:
            raise ValueError(f"{addr} is not in the 6rd prefix {self.prefix}")
        suffix_len = 32 - self.ipv4_mask_len
        suffix = (int(addr) >> (128 - self.delegated_length)) & ((1 << suffix_len) - 1)
        high = int(_v4(domain_ipv4)) & ~((1 << suffix_len) - 1) & 0xFFFFFFFF
        return IPv4Address(high | suffix)


# ---- ISATAP and 6over4 interface identifiers -----------------------------------------------------

def isatap_interface_id(addr: IPv4Address | str, globally_unique: bool | None = None) -> int:
    """The 64-bit ISATAP interface identifier (RFC 5214 §6.1): [00|02]-00-5E-FE + IPv4 address."""
    addr = _v4(addr)
    if globally_unique is None:
        globally_unique = is_globally_unique(addr)
    high = (0x0200 if globally_unique else 0) << 48
    return high | (ISATAP_MARKER << 32) | int(addr)


def isatap_address(prefix: IPv6Network | str, addr: IPv4Address | str,
                   globally_unique: bool | None = None) -> IPv6Address:
    """``prefix::[0|200]:5efe:a.b.c.d``; ``prefix`` is a /64 (``fe80::/64`` for the link-local one)."""
    prefix = _net6(prefix)
    if prefix.prefixlen != 64:
        raise ValueError(f"an ISATAP address needs a /64 prefix, not /{prefix.prefixlen}")
    return IPv6Address(int(prefix.network_address) | isatap_interface_id(addr, globally_unique))


def isatap_ipv4(addr: IPv6Address | str) -> IPv4Address:
    """The IPv4 address in an ISATAP address (the ISATAP link's "link-layer address")."""
    iid = int(_v6(addr)) & ((1 << 64) - 1)
    if (iid >> 32) & 0xFDFFFFFF != ISATAP_MARKER:
        raise ValueError(f"{addr} has no ISATAP interface identifier")
    return IPv4Address(iid & 0xFFFFFFFF)


def sixover4_interface_id(addr: IPv4Address | str) -> int:
    """RFC 2529 §4: the IPv4 address, padded on the left with zeros to 64 bits."""
    return int(_v4(addr))


def sixover4_address(prefix: IPv6Network | str, addr: IPv4Address | str) -> IPv6Address:
    prefix = _net6(prefix)
    if prefix.prefixlen != 64:
        raise ValueError(f"a 6over4 address needs a /64 prefix, not /{prefix.prefixlen}")
    return IPv6Address(int(prefix.network_address) | sixover4_interface_id(addr))


def sixover4_ipv4(addr: IPv6Address | str) -> IPv4Address:
    iid = int(_v6(addr)) & ((1 << 64) - 1)
    if iid >> 32:
        raise ValueError(f"{addr} has no 6over4 interface identifier (::a.b.c.d)")
    return IPv4Address(iid)


def sixover4_multicast(group: IPv6Address | str, ols: int = SIXOVER4_OLS) -> IPv4Address:
    """The IPv4 group that carries an IPv6 multicast group on a 6over4 link (RFC 2529 §6)."""
    group = _v6(group)
    if not group.is_multicast:
        raise ValueError(f"{group} is not an IPv6 multicast address")
    low = int(group) & 0xFFFF
    return IPv4Address((239 << 24) | (ols << 16) | low)


# ---- Teredo --------------------------------------------------------------------------------------

TEREDO_CONE = 0x8000  # RFC 4380's cone bit; RFC 5991 §3: always 0 now
_TEREDO_RANDOM = 0x3CFF  # the 12 "A" bits of CRAAAAUG AAAAAAAA (RFC 5991 §3)


def teredo_flags(rng: random.Random) -> int:
    """Flags for a new Teredo address, as RFC 5991 §3 says: C, R, U and G zero, 12 random bits."""
    return rng.getrandbits(16) & _TEREDO_RANDOM


@dataclass(frozen=True, slots=True)
class TeredoAddress:
    """The parts of a Teredo address (RFC 4380 §4). ``port`` and ``client`` are the client's mapped
    (public) UDP port and IPv4 address as the NAT shows them, not inverted."""
    server: IPv4Address
    flags: int
    port: int
    client: IPv4Address
    prefix: IPv6Network = TEREDO_PREFIX

    def __post_init__(self):
        if not 0 <= self.flags < 1 << 16 or not 0 <= self.port < 1 << 16:
            raise ValueError("Teredo flags and port are 16-bit values")
        if self.prefix.prefixlen != 32:
            raise ValueError(f"the Teredo service prefix is a /32, not /{self.prefix.prefixlen}")

    def address(self) -> IPv6Address:
        return IPv6Address(int(self.prefix.network_address) | (int(self.server) << 64) | (self.flags << 48)
                           | ((self.port ^ 0xFFFF) << 32) | (int(self.client) ^ 0xFFFFFFFF))

    @classmethod
    def parse(cls, addr: IPv6Address | str, prefix: IPv6Network = TEREDO_PREFIX) -> TeredoAddress:
        addr = _v6(addr)
        if addr not in prefix:
            raise ValueError(f"{addr} is not in the Teredo prefix {prefix}")
        value = int(addr)
        return cls(server=IPv4Address((value >> 64) & 0xFFFFFFFF), flags=(value >> 48) & 0xFFFF,
                   port=((value >> 32) & 0xFFFF) ^ 0xFFFF, client=IPv4Address((value & 0xFFFFFFFF) ^ 0xFFFFFFFF),
                   prefix=prefix)


def teredo_obfuscate(port: int, addr: IPv4Address) -> bytes:
    """Port and address as a Teredo origin indication carries them (RFC 4380 §5.1.1): inverted."""
    return (port ^ 0xFFFF).to_bytes(2, "big") + (int(addr) ^ 0xFFFFFFFF).to_bytes(4, "big")


def teredo_deobfuscate(data: bytes) -> tuple[int, IPv4Address]:
    if len(data) != 6:
        raise ValueError("an obfuscated Teredo port and address are 6 bytes")
    return int.from_bytes(data[:2], "big") ^ 0xFFFF, IPv4Address(int.from_bytes(data[2:], "big") ^ 0xFFFFFFFF)


# ---- RFC 6052 IPv4-embedded IPv6 addresses --------------------------------------------------------

def _rfc6052_length(prefix: IPv6Network) -> int:
    if prefix.prefixlen not in RFC6052_LENGTHS:
        raise ValueError(f"an RFC 6052 prefix is /32, /40, /48, /56, /64 or /96, not /{prefix.prefixlen}")
    return prefix.prefixlen


def synthesize(prefix: IPv6Network | str, addr: IPv4Address | str, suffix: int = 0) -> IPv6Address:
    """The IPv4-embedded IPv6 address of ``addr`` under ``prefix`` (RFC 6052 §2.2). Bits 64-71 stay
    zero; ``suffix`` fills what is left after the IPv4 address (zero in RFC 6052's examples)."""
    prefix, addr = _net6(prefix), _v4(addr)
    length = _rfc6052_length(prefix)
    if prefix == WELL_KNOWN_PREFIX and not is_globally_unique(addr):
        raise ValueError(f"the well-known prefix 64:ff9b::/96 must not embed non-global {addr} (RFC 6052 §3.1)")
    v4 = int(addr)
    base = int(prefix.network_address)
    if length == 96:
        return IPv6Address(base | v4)
    if length == 64:
        tail = 128 - 72 - 32  # the u octet, then the IPv4 address, then a 24-bit suffix
        if suffix >> tail:
            raise ValueError(f"suffix {suffix:#x} does not fit in {tail} bits")
        return IPv6Address(base | (v4 << tail) | suffix)
    before = 64 - length  # IPv4 bits ahead of the u octet
    after = 32 - before
    tail = 128 - 72 - after
    if suffix >> tail:
        raise ValueError(f"suffix {suffix:#x} does not fit in {tail} bits")
    high, low = v4 >> after, v4 & ((1 << after) - 1)
    return IPv6Address(base | (high << 64) | (low << tail) | suffix)


def extract(prefix: IPv6Network | str | int, addr: IPv6Address | str) -> IPv4Address:
    """The IPv4 address embedded in ``addr`` by a prefix of this length (or this prefix, which must
    then contain ``addr``). A set u octet means the address is not RFC 6052-formed."""
    addr = _v6(addr)
    if isinstance(prefix, int):
        length = prefix
        if length not in RFC6052_LENGTHS:
            raise ValueError(f"an RFC 6052 prefix is /32, /40, /48, /56, /64 or /96, not /{length}")
    else:
        prefix = _net6(prefix)
        length = _rfc6052_length(prefix)
        if addr not in prefix:
            raise ValueError(f"{addr} is not under {prefix}")
    value = int(addr)
    if length == 96:
        return IPv4Address(value & 0xFFFFFFFF)
    if (value >> 56) & 0xFF:
        raise ValueError(f"{addr}: bits 64-71 must be zero in an IPv4-embedded address (RFC 6052 §2.2)")
    if length == 64:
        return IPv4Address((value >> 24) & 0xFFFFFFFF)
    before = 64 - length
    after = 32 - before
    high = (value >> 64) & ((1 << before) - 1)
    low = (value >> (56 - after)) & ((1 << after) - 1)
    return IPv4Address((high << after) | low)
