"""The simulator's NAT boxes against RFC 4787's definitions: mapping and filtering of each NAT type, port
preservation, mapping lifetimes and keepalive pins."""

from __future__ import annotations

import random

import pytest

from sim.natbox import NatBox

TIMEOUTS = {"udp": 120.0, "tcp": 7440.0}
INSIDE = (0x0A000002, 4001)
R1, R1_OTHER_PORT, R2 = (0x0B000001, 4001), (0x0B000001, 5555), (0x0B000002, 4001)


def box(nat_type: str, **kw) -> NatBox:
    return NatBox(nat_type, 0xC6336401, random.Random(1), TIMEOUTS, **kw)


@pytest.mark.parametrize("nat_type, same_port_for_r2", [
    ("full-cone", True), ("restricted", True), ("port-restricted", True), ("symmetric", False)])
def test_mapping_behaviour(nat_type, same_port_for_r2):
    b = box(nat_type)
    first = b.outbound("udp", INSIDE, R1, 0.0)
    second = b.outbound("udp", INSIDE, R2, 0.0)
    assert (first == second) is same_port_for_r2  # endpoint-independent mapping reuses the external port
    if same_port_for_r2:
        assert first == (b.address, 4001)  # preserved


@pytest.mark.parametrize("nat_type, from_r1, from_r1_other_port, from_r2", [
    ("full-cone", True, True, True),
    ("restricted", True, True, False),
    ("port-restricted", True, False, False),
    ("symmetric", True, False, False),
])
def test_filtering_behaviour(nat_type, from_r1, from_r1_other_port, from_r2):
    b = box(nat_type)
    _, port = b.outbound("udp", INSIDE, R1, 0.0)
    assert (b.inbound("udp", R1, port, 1.0) == INSIDE) is from_r1
    assert (b.inbound("udp", R1_OTHER_PORT, port, 1.0) == INSIDE) is from_r1_other_port
    assert (b.inbound("udp", R2, port, 1.0) == INSIDE) is from_r2


def test_nothing_gets_in_without_a_mapping():
    b = box("full-cone")
    assert b.inbound("udp", R1, 4001, 0.0) is None
    b.outbound("tcp", INSIDE, R1, 0.0)
    assert b.inbound("udp", R1, 4001, 0.0) is None  # a TCP mapping does not open UDP


def test_mappings_expire_when_idle_unless_a_connection_keeps_them():
    b = box("port-restricted")
    _, port = b.outbound("udp", INSIDE, R1, 0.0)
    assert b.inbound("udp", R1, port, 120.0) == INSIDE  # refreshed by inbound traffic
    assert b.inbound("udp", R1, port, 241.0) is None  # 121 s idle
    assert b.expired == 1
    b.outbound("udp", INSIDE, R1, 300.0, pin=True)
    assert b.inbound("udp", R1, port, 10_000.0) == INSIDE  # keepalives every 15 s held it open
    b.unpin("udp", INSIDE, R1)
    assert b.inbound("udp", R1, port, 20_000.0) is None


def test_keepalives_slower_than_the_timeout_do_not_help():
    b = box("port-restricted", keepalive=200.0)
    _, port = b.outbound("udp", INSIDE, R1, 0.0, pin=True)
    assert b.inbound("udp", R1, port, 500.0) is None


def test_symmetric_ports_are_random_and_distinct():
    b = box("symmetric")
    ports = {b.outbound("udp", INSIDE, (0x0B000000 + i, 4001), 0.0)[1] for i in range(50)}
    assert len(ports) == 50 and 4001 not in ports or len(ports) == 50


def test_mapped_peeks_without_sending():
    b = box("symmetric")
    assert b.mapped("udp", INSIDE, R1, 0.0) is None
    sent = b.outbound("udp", INSIDE, R1, 0.0)
    assert b.mapped("udp", INSIDE, R1, 1.0) == sent
    assert b.mapped("udp", INSIDE, R2, 1.0) is None  # a new destination gets a port nobody can predict
