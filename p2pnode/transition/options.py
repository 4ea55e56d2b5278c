"""Provisioning that tells a host which mechanism its network offers, encoded and decoded.

- DHCPv4 option 212, OPTION_6RD (RFC 5969 §7.1.1): IPv4MaskLen, 6rdPrefixLen, 6rdPrefix (16 bytes),
  then one or more 6rd Border Relay IPv4 addresses.
- DHCPv6 option 64, OPTION_AFTR_NAME (RFC 6334 §3): the AFTR's name in DNS wire format.
- DHCPv6 options 94 / 95, OPTION_S46_CONT_MAPE / _MAPT (RFC 7598 §4.1-4.5), holding S46_RULE (89:
  flags with F = FMR in the lowest bit, EA-len, IPv4 prefix length and prefix, IPv6 prefix length and
  the prefix's significant bytes, sub-options), S46_BR (90, MAP-E), S46_DMR (91, MAP-T) and
  S46_PORTPARAMS (93: offset, PSID-len, a 16-bit field with the PSID in its *high* k bits, unlike
  the interface identifier, where it is right-aligned).
- Router Advertisement option 38, PREF64 (RFC 8781 §4): length 2, a 13-bit lifetime in units of
  8 s, a 3-bit prefix length code (0: /96, 1: /64, 2: /56, 3: /48, 4: /40, 5: /32), 96 prefix bits.
- RFC 7050 §3: a Pref64 learnt from the AAAA records of ``ipv4only.arpa`` (192.0.0.170 and .171
  synthesized by a DNS64).

These layouts are written by hand because no library we use has them all (scapy knows PREF64, and the
tests check our PREF64 against it, but not the RFC 7598 options); every decoder raises ``OptionError``
saying what was wrong rather than returning half a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from p2pnode.transition import addresses
from p2pnode.transition.addresses import SixRdDomain
from p2pnode.transition.mapping import DEFAULT_PSID_OFFSET, MapRule

DHCPV4_OPTION_6RD = 212
DHCPV6_OPTION_AFTR_NAME = 64
OPTION_S46_RULE, OPTION_S46_BR, OPTION_S46_DMR, OPTION_S46_PORTPARAMS = 89, 90, 91, 93
OPTION_S46_CONT_MAPE, OPTION_S46_CONT_MAPT = 94, 95
RA_OPTION_PREF64 = 38
IPV4ONLY_ARPA = "ipv4only.arpa"
IPV4ONLY_ADDRESSES = (IPv4Address("192.0.0.170"), IPv4Address("192.0.0.171"))  # RFC 7050 §2.2
_PLC_LENGTHS = (96, 64, 56, 48, 40, 32)  # RFC 8781 §4: prefix length code 0..5


class OptionError(ValueError):
    """A provisioning option that cannot be decoded."""


# ---- DHCPv4 option 212 (6rd) ---------------------------------------------------------------------

def encode_6rd(domain: SixRdDomain) -> bytes:
    """The option's data (without the code and length bytes)."""
    if not domain.border_relays:
        raise OptionError("OPTION_6RD needs at least one border relay")
    return bytes([domain.ipv4_mask_len, domain.prefix.prefixlen]) + domain.prefix.network_address.packed \
        + b"".join(br.packed for br in domain.border_relays)


def decode_6rd(data: bytes) -> SixRdDomain:
    if len(data) < 22 or (len(data) - 18) % 4:
        raise OptionError(f"OPTION_6RD data is 18 bytes + 4 per border relay, not {len(data)}")
    mask_len, prefix_len = data[0], data[1]
    if mask_len > 32 or prefix_len > 128:
        raise OptionError(f"OPTION_6RD IPv4MaskLen {mask_len} / 6rdPrefixLen {prefix_len} out of range")
    try:
        prefix = IPv6Network((IPv6Address(data[2:18]), prefix_len))
        return SixRdDomain(prefix=prefix, ipv4_mask_len=mask_len,
                           border_relays=tuple(IPv4Address(data[i:i + 4]) for i in range(18, len(data), 4)))
    except ValueError as exc:
        raise OptionError(f"OPTION_6RD: {exc}") from None


# ---- DHCPv6 option 64 (AFTR-Name) ----------------------------------------------------------------

def encode_dns_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise OptionError(f"DNS label {label!r} must be 1..63 bytes")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def decode_dns_name(data: bytes) -> str:
    labels, i = [], 0
    while True:
        if i >= len(data):
            raise OptionError("DNS name runs past its option")
        size = data[i]
        if size == 0:
            break
        if size > 63:
            raise OptionError("compressed or oversized DNS label in an option (RFC 6334 forbids compression)")
        labels.append(data[i + 1:i + 1 + size].decode("ascii", "replace"))
        i += 1 + size
    if i + 1 != len(data):
        raise OptionError("bytes after the DNS name's end")
    if not labels:
        raise OptionError("empty DNS name")
    return ".".join(labels)


# ---- DHCPv6 options 94/95 (MAP-E, MAP-T) ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class S46Config:
    """A MAP container: its rules, the MAP-E BR addresses or the MAP-T DMR."""
    translation: bool  # True: MAP-T (option 95); False: MAP-E (option 94)
    rules: tuple[MapRule, ...]
    border_relays: tuple[IPv6Address, ...] = ()
    dmr: IPv6Network | None = None
    psid: int | None = None  # from S46_PORTPARAMS, when the EA bits do not carry it
    extra: dict[int, bytes] = field(default_factory=dict, compare=False)

    @property
    def bmr(self) -> MapRule:
        return self.rules[0]


def _tlv(code: int, data: bytes) -> bytes:
    return code.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def _tlvs(data: bytes, where: str):
    i = 0
    while i < len(data):
        if i + 4 > len(data):
            raise OptionError(f"{where}: truncated option header")
        code, size = int.from_bytes(data[i:i + 2], "big"), int.from_bytes(data[i + 2:i + 4], "big")
        if i + 4 + size > len(data):
            raise OptionError(f"{where}: option {code} of {size} bytes runs past its container")
        yield code, data[i + 4:i + 4 + size]
        i += 4 + size


def _prefix6(length: int, data: bytes, where: str) -> IPv6Network:
    size = (length + 7) // 8
    if length > 128 or len(data) < size:
        raise OptionError(f"{where}: IPv6 prefix /{length} needs {size} bytes")
    value = int.from_bytes(data[:size].ljust(16, b"\0"), "big")
    try:
        return IPv6Network((value, length))
    except ValueError:
        raise OptionError(f"{where}: bits set after /{length}") from None


def encode_s46(config: S46Config) -> bytes:
    """The container's data (without its code and length)."""
    out = b""
    for i, rule in enumerate(config.rules):
        sub = b""
        if i == 0 and (rule.psid_len or rule.psid_offset != DEFAULT_PSID_OFFSET):
            k = rule.psid_len
            psid_field = ((config.psid or 0) << (16 - k)) & 0xFFFF if config.psid is not None else 0
            sub = _tlv(OPTION_S46_PORTPARAMS, bytes([rule.psid_offset, k if config.psid is not None else 0])
                       + psid_field.to_bytes(2, "big"))
        size = (rule.ipv6_prefix.prefixlen + 7) // 8
        body = bytes([1 if rule.forwarding else 0, rule.ea_len, rule.ipv4_prefix.prefixlen]) \
            + rule.ipv4_prefix.network_address.packed + bytes([rule.ipv6_prefix.prefixlen]) \
            + rule.ipv6_prefix.network_address.packed[:size] + sub
        out += _tlv(OPTION_S46_RULE, body)
    for br in config.border_relays:
        out += _tlv(OPTION_S46_BR, br.packed)
    if config.dmr is not None:
        size = (config.dmr.prefixlen + 7) // 8
        out += _tlv(OPTION_S46_DMR, bytes([config.dmr.prefixlen]) + config.dmr.network_address.packed[:size])
    return out


def decode_s46(code: int, data: bytes) -> S46Config:
    if code not in (OPTION_S46_CONT_MAPE, OPTION_S46_CONT_MAPT):
        raise OptionError(f"option {code} is not a MAP container (94 or 95)")
    where = f"option {code}"
    rules, brs, dmr, psid, extra = [], [], None, None, {}
    for sub, body in _tlvs(data, where):
        if sub == OPTION_S46_RULE:
            if len(body) < 8:
                raise OptionError(f"{where}: S46_RULE of {len(body)} bytes")
            flags, ea_len, v4_len = body[0], body[1], body[2]
            v6_len = body[7]
            size = (v6_len + 7) // 8
            if v4_len > 32:
                raise OptionError(f"{where}: IPv4 prefix /{v4_len}")
            try:
                v4 = IPv4Network((IPv4Address(body[3:7]), v4_len))
            except ValueError:
                raise OptionError(f"{where}: IPv4 prefix {IPv4Address(body[3:7])} has bits after /{v4_len}") from None
            v6 = _prefix6(v6_len, body[8:], where)
            offset, psid_len = DEFAULT_PSID_OFFSET, None
            for rsub, rbody in _tlvs(body[8 + size:], where + " S46_RULE"):
                if rsub == OPTION_S46_PORTPARAMS:
                    if len(rbody) != 4:
                        raise OptionError(f"{where}: S46_PORTPARAMS of {len(rbody)} bytes")
                    offset, k = rbody[0], rbody[1]
                    if k:
                        psid_len, psid = k, int.from_bytes(rbody[2:4], "big") >> (16 - k)
            try:
                rules.append(MapRule(ipv6_prefix=v6, ipv4_prefix=v4, ea_len=ea_len, psid_offset=offset,
                                     forwarding=bool(flags & 1),
                                     psid_len_override=psid_len if ea_len <= 32 - v4_len else None))
            except ValueError as exc:
                raise OptionError(f"{where}: S46_RULE: {exc}") from None
        elif sub == OPTION_S46_BR:
            if len(body) != 16:
                raise OptionError(f"{where}: S46_BR of {len(body)} bytes")
            brs.append(IPv6Address(body))
        elif sub == OPTION_S46_DMR:
            if not body:
                raise OptionError(f"{where}: empty S46_DMR")
            dmr = _prefix6(body[0], body[1:], where + " S46_DMR")
        else:
            extra[sub] = body
    if not rules:
        raise OptionError(f"{where}: no S46_RULE")
    translation = code == OPTION_S46_CONT_MAPT
    if translation and dmr is None:
        raise OptionError(f"{where}: MAP-T needs an S46_DMR")
    if not translation and not brs:
        raise OptionError(f"{where}: MAP-E needs an S46_BR")
    return S46Config(translation=translation, rules=tuple(rules), border_relays=tuple(brs), dmr=dmr,
                     psid=psid, extra=extra)


# ---- RA PREF64 (RFC 8781) and RFC 7050 ------------------------------------------------------------

def encode_pref64(prefix: IPv6Network, lifetime: float) -> bytes:
    """The whole 16-byte option (type, length, scaled lifetime + PLC, 96 prefix bits)."""
    if prefix.prefixlen not in _PLC_LENGTHS:
        raise OptionError(f"PREF64 cannot carry a /{prefix.prefixlen}")
    scaled = min(int(lifetime) // 8, 0x1FFF)
    field16 = (scaled << 3) | _PLC_LENGTHS.index(prefix.prefixlen)
    return bytes([RA_OPTION_PREF64, 2]) + field16.to_bytes(2, "big") + prefix.network_address.packed[:12]


def decode_pref64(data: bytes) -> tuple[IPv6Network, int]:
    """The prefix and its lifetime in seconds."""
    if len(data) != 16 or data[0] != RA_OPTION_PREF64 or data[1] != 2:
        raise OptionError("a PREF64 option is type 38, length 2 (16 bytes)")
    field16 = int.from_bytes(data[2:4], "big")
    plc = field16 & 7
    if plc >= len(_PLC_LENGTHS):
        raise OptionError(f"PREF64 prefix length code {plc} is not defined (RFC 8781 §4)")
    length = _PLC_LENGTHS[plc]
    value = int.from_bytes(data[4:16] + b"\0" * 4, "big")
    value &= ((1 << length) - 1) << (128 - length)  # bits past the prefix length are ignored
    return IPv6Network((value, length)), (field16 >> 3) * 8


def pref64_from_ipv4only(answers: list[IPv6Address]) -> list[IPv6Network]:
    """The Pref64s a DNS64 reveals in its AAAA answers for ``ipv4only.arpa`` (RFC 7050 §3): each
    answer is searched for a well-known IPv4 address at every RFC 6052 position, /96 first."""
    found = []
    for answer in answers:
        for length in sorted(addresses.RFC6052_LENGTHS, reverse=True):
            try:
                embedded = addresses.extract(length, answer)
            except ValueError:
                continue
            if embedded in IPV4ONLY_ADDRESSES:
                prefix = IPv6Network((int(answer) >> (128 - length) << (128 - length), length))
                if prefix not in found:
                    found.append(prefix)
                break
    return found
