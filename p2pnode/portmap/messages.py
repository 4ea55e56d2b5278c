"""Port mapping requests to the home router, sans-IO: NAT-PMP (RFC 6886) and PCP's MAP opcode (RFC 6887).

Both go to UDP port 5351 of the default gateway; a PCP server that speaks only NAT-PMP answers a PCP request
with a NAT-PMP "unsupported version" (RFC 6887 §9), which ``decode_pcp`` reports as such. Every decoder checks
length, version and opcode and raises ``CodecError`` naming the field.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum

from p2pnode.framing import CodecError

PORT = 5351
TRANSPORTS = {"udp": 17, "tcp": 6}  # PCP carries IANA protocol numbers
NATPMP_OPCODES = {"udp": 1, "tcp": 2}


class NatPmpResult(IntEnum):
    SUCCESS = 0
    UNSUPPORTED_VERSION = 1
    NOT_AUTHORIZED = 2
    NETWORK_FAILURE = 3
    OUT_OF_RESOURCES = 4
    UNSUPPORTED_OPCODE = 5


class PcpResult(IntEnum):
    SUCCESS = 0
    UNSUPP_VERSION = 1
    NOT_AUTHORIZED = 2
    MALFORMED_REQUEST = 3
    UNSUPP_OPCODE = 4
    UNSUPP_OPTION = 5
    MALFORMED_OPTION = 6
    NETWORK_FAILURE = 7
    NO_RESOURCES = 8
    UNSUPP_PROTOCOL = 9
    USER_EX_QUOTA = 10
    CANNOT_PROVIDE_EXTERNAL = 11
    ADDRESS_MISMATCH = 12
    EXCESSIVE_REMOTE_PEERS = 13


@dataclass(frozen=True, slots=True)
class Mapped:
    """A gateway's answer to a mapping request (or, ``result`` not SUCCESS, its refusal)."""

    result: str  # the result code's name
    transport: str  # "tcp" / "udp"; "" for NAT-PMP's external address answer
    internal_port: int
    external_port: int
    external_ip: str
    lifetime: int  # seconds the mapping lasts (0: deleted)
    epoch: int  # seconds since the gateway's mappings were last lost (a drop means: map again)
    nonce: bytes = b""

    @property
    def ok(self) -> bool:
        return self.result == "SUCCESS"


def _result(enum: type[IntEnum], code: int) -> str:
    try:
        return enum(code).name
    except ValueError:
        return f"unknown result {code}"


# ---- NAT-PMP (RFC 6886) -------------------------------------------------------------------------------

def natpmp_external_address_request() -> bytes:
    return b"\x00\x00"


def natpmp_map_request(transport: str, internal_port: int, external_port: int, lifetime: int) -> bytes:
    """A mapping request; ``lifetime`` 0 and ``external_port`` 0 delete the mapping (§3.4)."""
    return struct.pack("!BBHHHI", 0, NATPMP_OPCODES[transport], 0, internal_port, external_port, lifetime)


def decode_natpmp(data: bytes) -> Mapped:
    """A NAT-PMP answer: to the external address request (opcode 128) or to a mapping request (129, 130)."""
    if len(data) < 8:
        raise CodecError(f"NAT-PMP answer of {len(data)} bytes: at least 8 (version, opcode, result, epoch)")
    version, opcode, code, epoch = struct.unpack_from("!BBHI", data)
    if version != 0:
        raise CodecError(f"NAT-PMP answer: version {version}, not 0")
    result = _result(NatPmpResult, code)
    if opcode == 128:
        if len(data) < 12:
            raise CodecError(f"NAT-PMP external address answer of {len(data)} bytes, not 12")
        return Mapped(result, "", 0, 0, str(ipaddress.IPv4Address(data[8:12])), 0, epoch)
    transport = {129: "udp", 130: "tcp"}.get(opcode)
    if transport is None:
        raise CodecError(f"NAT-PMP answer: opcode {opcode} is not an answer (128, 129, 130)")
    if len(data) < 16:
        raise CodecError(f"NAT-PMP mapping answer of {len(data)} bytes, not 16")
    internal, external, lifetime = struct.unpack_from("!HHI", data, 8)
    return Mapped(result, transport, internal, external, "", lifetime, epoch)


# ---- PCP (RFC 6887) -----------------------------------------------------------------------------------

def _ip16(ip: str) -> bytes:
    """An address in PCP's 16-byte form (IPv4 as IPv4-mapped IPv6, §5)."""
    addr = ipaddress.ip_address(ip)
    return (addr.packed if addr.version == 6 else ipaddress.IPv6Address(f"::ffff:{addr}").packed)


def _ip_text(raw: bytes) -> str:
    addr = ipaddress.IPv6Address(raw)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped is not None else str(addr)


def pcp_map_request(nonce: bytes, transport: str, internal_port: int, external_port: int, lifetime: int,
                    client_ip: str, external_ip: str = "0.0.0.0") -> bytes:
    """A MAP request (§11.1): the common header (version 2, opcode 1, the lifetime, our address as the
    gateway should see it) and the MAP payload (the 12-byte nonce, protocol, ports, suggested external
    address). ``lifetime`` 0 deletes the mapping."""
    if len(nonce) != 12:
        raise CodecError(f"PCP nonce of {len(nonce)} bytes, not 12")
    header = struct.pack("!BBHI16s", 2, 1, 0, lifetime, _ip16(client_ip))
    return header + nonce + struct.pack("!B3xHH16s", TRANSPORTS[transport], internal_port, external_port,
                                        _ip16(external_ip))


def decode_pcp(data: bytes) -> Mapped:
    """A PCP answer to a MAP request; a NAT-PMP server's "unsupported version" answer comes back as
    ``UNSUPP_VERSION`` (the gateway speaks NAT-PMP only)."""
    if len(data) >= 4 and data[0] == 0:
        code = struct.unpack_from("!H", data, 2)[0]
        return Mapped(_result(PcpResult, 1 if code == NatPmpResult.UNSUPPORTED_VERSION else code), "", 0, 0, "",
                      0, 0)
    if len(data) < 24:
        raise CodecError(f"PCP answer of {len(data)} bytes: at least 24 (the common header)")
    version, r_opcode, _, code, lifetime, epoch = struct.unpack_from("!BBBBII", data)
    if version != 2:
        raise CodecError(f"PCP answer: version {version}, not 2")
    if r_opcode != 0x81:
        raise CodecError(f"PCP answer: opcode byte {r_opcode:#x}, not 0x81 (a MAP response)")
    result = _result(PcpResult, code)
    if len(data) < 60:
        if result != "SUCCESS":  # an error answer may come without the payload
            return Mapped(result, "", 0, 0, "", lifetime, epoch)
        raise CodecError(f"PCP MAP answer of {len(data)} bytes, not 60")
    nonce = data[24:36]
    protocol, internal, external = struct.unpack_from("!B3xHH", data, 36)
    transport = next((name for name, number in TRANSPORTS.items() if number == protocol), None)
    if transport is None:
        raise CodecError(f"PCP MAP answer: protocol {protocol} is neither UDP (17) nor TCP (6)")
    return Mapped(result, transport, internal, external, _ip_text(data[44:60]), lifetime, epoch, nonce)
