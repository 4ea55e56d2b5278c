"""NAT-PMP (RFC 6886) and PCP MAP (RFC 6887) messages: the layouts the RFCs give, answers a real router
(miniupnpd 2.3.1, captured in tests/nat/test_lan_root.py's network) decoded, and bad answers named."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pnode.framing import CodecError
from p2pnode.portmap import messages as pm
from p2pnode.runtime.portmap import default_gateway

# miniupnpd's answers to: NAT-PMP external address, NAT-PMP map UDP 40002, PCP MAP UDP 40003
NATPMP_ADDRESS = bytes.fromhex("0080000000003133" "0b580001")
NATPMP_MAP = bytes.fromhex("0081000000003133" "9c429c420000012c")
PCP_MAP = bytes.fromhex("028100000000012c000031330000000000000000000000008"
                        "8ce639e38ac49be23354822110000009c439c4300000000000000000000ffff0b580001")
PCP_NONCE = bytes.fromhex("88ce639e38ac49be23354822")


def test_a_real_routers_nat_pmp_answers():
    address = pm.decode_natpmp(NATPMP_ADDRESS)
    assert address.ok and address.external_ip == "11.88.0.1" and address.epoch == 0x3133
    mapped = pm.decode_natpmp(NATPMP_MAP)
    assert (mapped.transport, mapped.internal_port, mapped.external_port, mapped.lifetime) == ("udp", 40002, 40002, 300)


def test_a_real_routers_pcp_answer():
    mapped = pm.decode_pcp(PCP_MAP)
    assert mapped.ok and mapped.nonce == PCP_NONCE
    assert (mapped.transport, mapped.internal_port, mapped.external_port) == ("udp", 40003, 40003)
    assert (mapped.external_ip, mapped.lifetime) == ("11.88.0.1", 300)


def test_requests_have_the_rfcs_layout():
    assert pm.natpmp_external_address_request() == b"\x00\x00"
    # RFC 6886 §3.3: version 0, opcode 2 (TCP), reserved, internal port, suggested external port, lifetime
    assert pm.natpmp_map_request("tcp", 4001, 4001, 7200) == struct.pack("!BBHHHI", 0, 2, 0, 4001, 4001, 7200)
    request = pm.pcp_map_request(PCP_NONCE, "udp", 40003, 40003, 300, "192.168.77.2")
    assert len(request) == 60  # RFC 6887 §7.1 header (24) + §11.1 MAP payload (36)
    assert request[:4] == b"\x02\x01\x00\x00" and struct.unpack_from("!I", request, 4)[0] == 300
    assert request[8:24] == bytes(10) + b"\xff\xff" + bytes([192, 168, 77, 2])  # IPv4-mapped client address
    assert request[24:36] == PCP_NONCE and request[36] == 17
    assert struct.unpack_from("!HH", request, 40) == (40003, 40003)
    assert request[44:60] == bytes(10) + b"\xff\xff" + bytes(4)  # no external address suggested


def test_refusals_are_named():
    refused = bytearray(PCP_MAP)
    refused[3] = pm.PcpResult.NOT_AUTHORIZED
    assert pm.decode_pcp(bytes(refused)).result == "NOT_AUTHORIZED"
    assert pm.decode_pcp(bytes(refused[:24])).result == "NOT_AUTHORIZED"  # an error may come without payload
    # a NAT-PMP-only router's answer to a PCP request (RFC 6887 §9)
    assert pm.decode_pcp(bytes.fromhex("0081000100000000")).result == "UNSUPP_VERSION"
    assert pm.decode_natpmp(bytes.fromhex("0082000300000001" "0fa10fa100000000")).result == "NETWORK_FAILURE"
    assert pm.decode_natpmp(bytes.fromhex("0082006300000001" "0fa10fa100000000")).result == "unknown result 99"


@pytest.mark.parametrize("data, field", [
    (b"\x00\x80\x00", "at least 8"),
    (b"\x01\x80\x00\x00\x00\x00\x00\x00", "version 1"),
    (b"\x00\x05\x00\x00\x00\x00\x00\x00", "opcode 5"),
    (NATPMP_MAP[:12], "mapping answer of 12 bytes"),
])
def test_bad_nat_pmp_answers_name_the_field(data, field):
    with pytest.raises(CodecError, match=field):
        pm.decode_natpmp(data)


@pytest.mark.parametrize("data, field", [
    (PCP_MAP[:20], "at least 24"),
    (b"\x03" + PCP_MAP[1:], "version 3"),
    (PCP_MAP[:1] + b"\x01" + PCP_MAP[2:], "opcode byte 0x1"),
    (PCP_MAP[:40], "MAP answer of 40 bytes"),
    (PCP_MAP[:36] + b"\x01" + PCP_MAP[37:], "protocol 1"),
])
def test_bad_pcp_answers_name_the_field(data, field):
    with pytest.raises(CodecError, match=field):
        pm.decode_pcp(data)


@given(st.binary(max_size=80))
def test_any_bytes_decode_or_raise_codec_error(data):
    for decode in (pm.decode_natpmp, pm.decode_pcp):
        try:
            decode(data)
        except CodecError:
            pass


def test_the_default_gateway_is_read_from_the_kernels_route_table(tmp_path):
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t004DA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "eth0\t00000000\t014DA8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n")
    assert default_gateway(str(table)) == "192.168.77.1"
    table.write_text(table.read_text().splitlines()[0] + "\n")
    assert default_gateway(str(table)) is None
    assert default_gateway(str(tmp_path / "missing")) is None
