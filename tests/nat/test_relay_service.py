"""The relay's bookkeeping: reservations within their limits, circuits within theirs, refusals by name, and a
relay that keeps serving others after refusing one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from p2pnode.config import NatConfig
from p2pnode.identity import Keypair
from p2pnode.relay import voucher
from p2pnode.relay.messages import Status
from p2pnode.relay.service import Circuit, RelayService

EPOCH = 1_700_000_000.0
KEYS = [Keypair.from_seed(bytes([i + 1]) * 32) for i in range(8)]
RELAY = KEYS[0]
A, B, C, D = (k.peer_id for k in KEYS[1:5])


def service(**overrides) -> tuple[RelayService, list[float]]:
    clock = [0.0]
    config = replace(NatConfig(relay_service=True), **overrides)
    addrs = (b"relay-addr",)
    return RelayService(RELAY, config, lambda: clock[0], EPOCH, lambda: addrs), clock


def test_reservation_carries_a_voucher_and_the_limit():
    relay, _ = service()
    answer = relay.reserve(A, now=10.0)
    assert answer.status is Status.OK
    assert answer.reservation.expire == int(EPOCH + 10 + 3600)
    assert answer.reservation.addrs == (b"relay-addr",)
    assert answer.limit.duration == 120 and answer.limit.data == 1 << 17
    opened = voucher.consume(answer.reservation.voucher, relay=RELAY.peer_id, peer=A, now=EPOCH + 10)
    assert opened.expiration == answer.reservation.expire


def test_reservations_beyond_the_limits_are_refused_and_others_still_served():
    relay, _ = service(max_reservations=2, max_reservations_per_ip=1)
    assert relay.reserve(A, 0.0, ip="203.0.113.1").status is Status.OK
    assert relay.reserve(B, 0.0, ip="203.0.113.1").status is Status.RESERVATION_REFUSED  # same IP
    assert relay.reserve(B, 0.0, ip="203.0.113.2").status is Status.OK
    assert relay.reserve(C, 0.0, ip="203.0.113.3").status is Status.RESERVATION_REFUSED  # full
    assert relay.reserve(A, 5.0, ip="203.0.113.1").status is Status.OK  # a renewal is not a new slot
    relay.connection_closed(B)
    assert relay.reserve(C, 6.0, ip="203.0.113.3").status is Status.OK
    assert relay.refused == {"RESERVATION_REFUSED": 2}


def test_no_reservation_over_a_relayed_connection():
    relay, _ = service()
    assert relay.reserve(A, 0.0, relayed=True).status is Status.PERMISSION_DENIED


def test_reservations_expire():
    relay, _ = service(reservation_ttl=100.0)
    relay.reserve(A, 0.0)
    assert isinstance(relay.open_circuit(B, A, 99.0), Circuit)
    assert relay.open_circuit(C, A, 100.0) is Status.NO_RESERVATION


def test_circuits_need_a_reservation_and_stay_within_their_limits():
    relay, _ = service(max_circuits=2, max_circuits_total=3)
    assert relay.open_circuit(B, A, 0.0) is Status.NO_RESERVATION
    relay.reserve(A, 0.0)
    relay.reserve(D, 0.0)
    first = relay.open_circuit(B, A, 1.0)
    second = relay.open_circuit(C, A, 1.0)
    assert isinstance(first, Circuit) and isinstance(second, Circuit)
    assert relay.open_circuit(D, A, 1.0) is Status.RESOURCE_LIMIT_EXCEEDED  # A is an end of two
    third = relay.open_circuit(B, D, 1.0)
    assert isinstance(third, Circuit)
    assert relay.open_circuit(C, D, 1.0) is Status.RESOURCE_LIMIT_EXCEEDED  # the relay's total
    relay.circuit_closed(first)
    assert isinstance(relay.open_circuit(C, D, 2.0), Circuit)
    assert relay.stats()["circuits"] == 3


def test_a_circuit_counts_each_way_against_its_data_limit():
    relay, _ = service(circuit_data=1000, circuit_duration=60)
    relay.reserve(A, 0.0)
    circuit = relay.open_circuit(B, A, 5.0)
    assert circuit.deadline == 65.0
    assert circuit.carry(True, 1000)
    assert circuit.carry(False, 999)
    assert not circuit.carry(True, 1)  # past the limit one way: the relay resets the circuit
    relay.circuit_closed(circuit)
    assert relay.stats()["bytes_relayed"] == 2000


@pytest.mark.parametrize("duration, data", [(0, 0)])
def test_unlimited_relay_sends_no_limit(duration, data):
    relay, _ = service(circuit_duration=duration, circuit_data=data)
    answer = relay.reserve(A, 0.0)
    assert answer.limit is None
    circuit = relay.open_circuit(B, A, 0.0) if relay.reserve(A, 0.0) else None
    assert circuit.deadline is None and circuit.carry(True, 10**12)
