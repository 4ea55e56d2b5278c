"""MAP (RFC 7597 MAP-E, RFC 7599 MAP-T): rules, embedded-address (EA) bits, port sets and addresses.

A rule maps a Rule IPv6 prefix (n bits) and a Rule IPv4 prefix (r bits) onto each other through the
EA bits (o of them) that follow the Rule IPv6 prefix in a CE's End-user IPv6 prefix: the first
p = 32 - r EA bits complete the IPv4 address, the remaining q = o - p are the PSID (RFC 7597 §5.2).
A PSID of k bits picks a port set: with a offset bits and m = 16 - a - k contiguous bits, its ports
are ``A << (16 - a) | PSID << m | j`` for A in 1 .. 2^a - 1 (A = 0, ports 0-1023 with the default a = 6,
is excluded) and j in 0 .. 2^m - 1 (RFC 7597 §5.1, Appendix B).

The CE's MAP IPv6 address is its End-user prefix with the subnet ID zero and the interface identifier
16 zero bits + IPv4 address + PSID (right-aligned, left-padded; RFC 7597 §6, RFC 7599 §6 with errata
5225/8062: a complete IPv4 address with a PSID carries that PSID). The DMR of MAP-T maps an IPv4
address outside the domain with RFC 6052 (``addresses.synthesize``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from p2pnode.transition import addresses

DEFAULT_PSID_OFFSET = 6  # RFC 7597 §5.1: excludes the system ports 0-1023


@dataclass(frozen=True, slots=True)
class PortSet:
    """The ports a PSID of ``psid_len`` (k) bits owns with ``offset`` (a) bits."""
    psid: int
    psid_len: int
    offset: int = DEFAULT_PSID_OFFSET

    def __post_init__(self):
        if not 0 <= self.psid_len <= 16 or not 0 <= self.offset <= 16 - self.psid_len:
            raise ValueError(f"a PSID of {self.psid_len} bits with offset {self.offset} does not fit 16 bits")
        if not 0 <= self.psid < 1 << self.psid_len:
            raise ValueError(f"PSID {self.psid:#x} does not fit in {self.psid_len} bits")

    @property
    def contiguous_bits(self) -> int:
        """m: how many ports each range holds is 2^m."""
        return 16 - self.offset - self.psid_len

    def _first_a(self) -> int:
        return 1 if self.offset else 0

    def ranges(self) -> list[tuple[int, int]]:
        """The port ranges, inclusive, in ascending order."""
        m, a = self.contiguous_bits, self.offset
        out = []
        for high in range(self._first_a(), 1 << a):
            start = (high << (16 - a)) | (self.psid << m)
            out.append((start, start + (1 << m) - 1))
        return out

    def ports(self) -> Iterator[int]:
        for low, high in self.ranges():
            yield from range(low, high + 1)

    def __len__(self) -> int:
        return ((1 << self.offset) - self._first_a()) << self.contiguous_bits

    def __contains__(self, port: int) -> bool:
        if not 0 <= port < 1 << 16:
            return False
        if self.offset and port >> (16 - self.offset) == 0:
            return False
        return psid_of(port, self.psid_len, self.offset) == self.psid

    def port(self, index: int) -> int:
        """The ``index``-th port of the set (0 <= index < len), for a NAPT picking ports in order."""
        m = self.contiguous_bits
        high, low = divmod(index, 1 << m)
        high += self._first_a()
        if not 0 <= index < len(self):
            raise IndexError(f"port set has {len(self)} ports, not {index + 1}")
        return (high << (16 - self.offset)) | (self.psid << m) | low


def psid_of(port: int, psid_len: int, offset: int = DEFAULT_PSID_OFFSET) -> int:
    """The PSID bits of a port (RFC 7597 §5.1)."""
    if psid_len == 0:
        return 0
    return (port >> (16 - offset - psid_len)) & ((1 << psid_len) - 1)


@dataclass(frozen=True, slots=True)
class MapRule:
    """A Basic or Forwarding Mapping Rule (RFC 7597 §5)."""
    ipv6_prefix: IPv6Network
    ipv4_prefix: IPv4Network
    ea_len: int
    psid_offset: int = DEFAULT_PSID_OFFSET
    forwarding: bool = False  # also an FMR: CE-to-CE traffic in this rule goes direct (mesh)
    # a PSID length provisioned beside the rule (DHCPv6 S46_PORTPARAMS) when the EA bits hold none
    psid_len_override: int | None = None

    def __post_init__(self):
        if not 0 <= self.ea_len <= 48:
            raise ValueError(f"EA-bits length must be 0..48, not {self.ea_len}")
        if self.ipv6_prefix.prefixlen + self.ea_len > 128:
            raise ValueError(f"rule /{self.ipv6_prefix.prefixlen} + {self.ea_len} EA bits exceed 128 bits")
        if self.ea_len > self.ipv4_suffix_len + 16:
            raise ValueError(f"{self.ea_len} EA bits leave a PSID of more than 16 bits")
        PortSet(0, self.psid_len, self.psid_offset if self.psid_len else 0)

    @property
    def ipv4_suffix_len(self) -> int:
        """p: the IPv4 bits the EA bits carry."""
        return 32 - self.ipv4_prefix.prefixlen

    @property
    def psid_len(self) -> int:
        """q (k): the PSID bits, from the EA bits or provisioned with the rule."""
        if self.ea_len > self.ipv4_suffix_len:
            return self.ea_len - self.ipv4_suffix_len
        return self.psid_len_override or 0

    @property
    def end_user_len(self) -> int:
        """n + o: the shortest End-user prefix this rule can map."""
        return self.ipv6_prefix.prefixlen + self.ea_len

    def ea_bits(self, end_user: IPv6Network) -> int:
        if not end_user.subnet_of(self.ipv6_prefix):
            raise ValueError(f"End-user prefix {end_user} is not inside the rule prefix {self.ipv6_prefix}")
        if end_user.prefixlen < self.end_user_len:
            raise ValueError(f"End-user prefix {end_user} is shorter than rule /{self.ipv6_prefix.prefixlen} "
                             f"+ {self.ea_len} EA bits")
        return (int(end_user.network_address) >> (128 - self.end_user_len)) & ((1 << self.ea_len) - 1)

    def port_set(self, psid: int) -> PortSet:
        return PortSet(psid, self.psid_len, self.psid_offset if self.psid_len else 0)


@dataclass(frozen=True, slots=True)
class MapCe:
    """What a CE derives from its BMR and End-user prefix (RFC 7597 §5.2)."""
    rule: MapRule
    end_user: IPv6Network
    ipv4: IPv4Network  # a /32 normally; shorter when the EA bits hold only part of the IPv4 suffix
    psid: int
    ipv6: IPv6Address  # the MAP IPv6 address: tunnel end point (MAP-E) or translated source (MAP-T)

    @property
    def port_set(self) -> PortSet:
        return self.rule.port_set(self.psid)

    @property
    def address(self) -> IPv4Address:
        return self.ipv4.network_address


def interface_id(ipv4: IPv4Address, psid: int) -> int:
    """16 zero bits, the IPv4 address (right-padded if a prefix), the PSID right-aligned (RFC 7597 §6)."""
    return (int(ipv4) << 16) | psid


def _map_address(end_user: IPv6Network, ipv4: IPv4Address, psid: int) -> IPv6Address:
    net = int(end_user.network_address)
    addr = (net >> 64 << 64) | interface_id(ipv4, psid)
    if end_user.prefixlen > 64:  # a longer End-user prefix overwrites the identifier's high bits
        mask = ((1 << end_user.prefixlen) - 1) << (128 - end_user.prefixlen)
        addr = (addr & ~mask) | (net & mask)
    return IPv6Address(addr)


def derive_ce(rule: MapRule, end_user: IPv6Network | str, psid: int | None = None,
              ipv4: IPv4Address | str | None = None) -> MapCe:
    """The CE's IPv4 address or prefix, PSID and MAP IPv6 address. ``psid`` and ``ipv4`` are the values
    provisioned outside the EA bits (RFC 7599 Appendix A, examples 4 and 5); with EA bits they are read
    from the End-user prefix."""
    end_user = end_user if isinstance(end_user, IPv6Network) else IPv6Network(end_user)
    ea = rule.ea_bits(end_user)
    p = rule.ipv4_suffix_len
    if rule.ea_len >= p:
        q = rule.ea_len - p
        suffix, ea_psid = ea >> q, ea & ((1 << q) - 1)
        v4 = IPv4Network((int(rule.ipv4_prefix.network_address) | suffix, 32))
        if q:
            psid = ea_psid
    else:  # the EA bits carry only the high part of the suffix: the CE gets an IPv4 prefix
        length = rule.ipv4_prefix.prefixlen + rule.ea_len
        v4 = IPv4Network((int(rule.ipv4_prefix.network_address) | (ea << (32 - length)), length))
    if ipv4 is not None:
        v4 = IPv4Network((IPv4Address(ipv4), 32))
    psid = psid or 0
    rule.port_set(psid)  # validates the PSID against the rule's PSID length
    ipv6 = _map_address(end_user, v4.network_address, psid if v4.prefixlen == 32 else 0)
    return MapCe(rule=rule, end_user=end_user, ipv4=v4, psid=psid, ipv6=ipv6)


def ce_address(rule: MapRule, ipv4: IPv4Address | str, port: int | None) -> IPv6Address:
    """The MAP IPv6 address of the CE that owns ``ipv4`` (and ``port``, with a shared address): what a
    BR or a meshing CE sends to (RFC 7597 §5.3, RFC 7599 Appendix A example 2)."""
    ipv4 = IPv4Address(ipv4)
    if ipv4 not in rule.ipv4_prefix:
        raise ValueError(f"{ipv4} is not in the rule's IPv4 prefix {rule.ipv4_prefix}")
    q = rule.psid_len if rule.ea_len > rule.ipv4_suffix_len else 0
    suffix = int(ipv4) & ((1 << rule.ipv4_suffix_len) - 1)
    psid = 0
    if q:
        if port is None:
            raise ValueError(f"{ipv4} is shared: its CE depends on the port")
        psid = psid_of(port, q, rule.psid_offset)
    if rule.ea_len < rule.ipv4_suffix_len:  # the CE owns a prefix: its identifier holds the prefix
        shift = rule.ipv4_suffix_len - rule.ea_len
        ea = suffix >> shift
        ipv4 = IPv4Address(int(ipv4) >> shift << shift)
    else:
        ea = (suffix << q) | psid
    prefix = int(rule.ipv6_prefix.network_address) | (ea << (128 - rule.end_user_len))
    end_user = IPv6Network((prefix, rule.end_user_len))
    return _map_address(end_user, ipv4, psid)


def parse_ce_address(rule: MapRule, addr: IPv6Address | str) -> tuple[IPv4Address, int]:
    """The IPv4 address and PSID a MAP IPv6 address under ``rule`` stands for, from its EA bits: what a
    BR checks a packet's source against (RFC 7597 §8.1)."""
    addr = IPv6Address(addr)
    if addr not in rule.ipv6_prefix:
        raise ValueError(f"{addr} is not under the rule prefix {rule.ipv6_prefix}")
    ea = (int(addr) >> (128 - rule.end_user_len)) & ((1 << rule.ea_len) - 1)
    p = rule.ipv4_suffix_len
    if rule.ea_len >= p:
        q = rule.ea_len - p
        return IPv4Address(int(rule.ipv4_prefix.network_address) | (ea >> q)), ea & ((1 << q) - 1)
    # only a prefix is embedded: the full address is in the interface identifier
    return IPv4Address((int(addr) >> 16) & 0xFFFFFFFF), 0


def _longest(rules: Sequence[MapRule], addr, prefix_of) -> MapRule | None:
    best = None
    for rule in rules:
        prefix = prefix_of(rule)
        if addr in prefix and (best is None or prefix.prefixlen > prefix_of(best).prefixlen):
            best = rule
    return best


def match_ipv4(rules: Sequence[MapRule], addr: IPv4Address) -> MapRule | None:
    """Longest-prefix match of an IPv4 address among the rules (the first of equals wins)."""
    return _longest(rules, addr, lambda rule: rule.ipv4_prefix)


def match_ipv6(rules: Sequence[MapRule], addr: IPv6Address) -> MapRule | None:
    """Longest-prefix match of an IPv6 address among the rules' IPv6 prefixes."""
    return _longest(rules, addr, lambda rule: rule.ipv6_prefix)


def dmr_address(dmr: IPv6Network, ipv4: IPv4Address | str) -> IPv6Address:
    """An IPv4 address outside the MAP-T domain, as the Default Mapping Rule maps it (RFC 7599 §5.1)."""
    if dmr.prefixlen > 96:
        raise ValueError(f"a DMR prefix must not exceed /96 (RFC 7599 §5.1), not /{dmr.prefixlen}")
    return addresses.synthesize(dmr, ipv4)
