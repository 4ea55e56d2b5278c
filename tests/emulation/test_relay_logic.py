"""The relay's scheduling (delay, order, jitter, loss, token bucket) over socket pairs: no root needed."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from topologies.relay import EARLY, Relay


class Harness:
    """A relay between two AF_UNIX datagram socket pairs: send on ``a``/``b``, receive on the other side."""

    def __init__(self, **options):
        self.a, relay_a = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.b, relay_b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for sock in (self.a, self.b):
            sock.settimeout(2.0)
        self.relay = Relay("a", "b", sockets=(relay_a, relay_b), **options)
        self.thread = threading.Thread(target=self.relay.run, daemon=True)
        self.thread.start()

    def send(self, sock: socket.socket, seq: int, size: int = 64) -> float:
        sent = time.monotonic()
        sock.send(struct.pack("!Id", seq, sent).ljust(size, b"."))
        return sent

    def receive(self, sock: socket.socket, count: int) -> list[tuple[int, float, float]]:
        """(seq, sent, arrived) of up to ``count`` frames; stops at the first 0.5 s gap."""
        got = []
        sock.settimeout(0.5)
        while len(got) < count:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            seq, sent = struct.unpack("!Id", data[:12])
            got.append((seq, sent, time.monotonic()))
        return got

    def close(self) -> dict:
        self.relay.request_stop()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()
        stats = self.relay.stats()
        self.relay.close()
        self.a.close()
        self.b.close()
        return stats


def test_delay_both_directions_in_order():
    h = Harness(delay_ms=30)
    try:
        for seq in range(50):
            h.send(h.a, seq)
        h.send(h.b, 1000)
        forward = h.receive(h.b, 50)
        backward = h.receive(h.a, 1)
    finally:
        stats = h.close()
    assert [seq for seq, _, _ in forward] == list(range(50))  # equal delays: arrival order kept
    assert [seq for seq, _, _ in backward] == [1000]
    delays = [arrived - sent for _, sent, arrived in forward + backward]
    assert min(delays) >= 0.030 - EARLY - 0.001
    assert sum(delays) / len(delays) < 0.045
    assert stats["directions"]["a->b"]["forwarded"] == 50 and stats["directions"]["b->a"]["forwarded"] == 1


def test_jitter_never_reorders():
    h = Harness(delay_ms=20, jitter_ms=15, seed=3)
    try:
        for seq in range(200):
            h.send(h.a, seq)
        got = h.receive(h.b, 200)
    finally:
        h.close()
    assert [seq for seq, _, _ in got] == list(range(200))
    delays = [arrived - sent for _, sent, arrived in got]
    assert min(delays) >= 0.005 - EARLY - 0.001
    assert max(delays) - min(delays) > 0.005  # the jitter is there


def test_loss_rate_is_close_to_configured():
    h = Harness(delay_ms=0, loss=30, seed=11)
    received = []
    reader = threading.Thread(target=lambda: received.extend(h.receive(h.b, 1000)))
    reader.start()
    try:
        for seq in range(1000):
            h.send(h.a, seq)
            if seq % 100 == 99:
                time.sleep(0.01)  # AF_UNIX datagram queues are short
        reader.join(timeout=10)
    finally:
        stats = h.close()
    forward = stats["directions"]["a->b"]
    assert forward["received"] == 1000
    assert forward["lost"] + forward["forwarded"] == 1000
    assert 0.25 <= forward["lost"] / 1000 <= 0.35
    assert len(received) == forward["forwarded"]


def test_token_bucket_paces_to_the_rate():
    # 100 frames of 1250 bytes = 1 Mbit at 10 Mbit/s; the 15000-byte burst leaves after 0 s, the rest at the rate.
    h = Harness(delay_ms=0, rate_mbit=10, burst_bytes=15000)
    try:
        first = None
        for seq in range(100):
            sent = h.send(h.a, seq, size=1250)
            first = first or sent
        got = h.receive(h.b, 100)
    finally:
        h.close()
    assert [seq for seq, _, _ in got] == list(range(100))
    elapsed = got[-1][2] - first
    expected = (100 * 1250 - 15000) * 8 / 10e6  # 88 ms
    assert expected * 0.9 <= elapsed <= expected + 0.15, f"{elapsed * 1000:.1f} ms for {expected * 1000:.0f} ms"


def test_token_bucket_tail_drops_beyond_the_queue():
    h = Harness(delay_ms=0, rate_mbit=1, burst_bytes=1500, queue=10)
    try:
        for seq in range(50):
            h.send(h.a, seq, size=1250)
        got = h.receive(h.b, 50)
    finally:
        stats = h.close()
    forward = stats["directions"]["a->b"]
    assert forward["queue_drops"] > 0 and forward["forwarded"] + forward["queue_drops"] == 50
    assert len(got) == forward["forwarded"]


def test_rejects_bad_parameters():
    for bad in ({"delay_ms": -1}, {"delay_ms": 1, "loss": 101}, {"delay_ms": 1, "queue": 0}):
        pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with pytest.raises(ValueError):
                Relay("a", "b", sockets=pair, **bad)
        finally:
            for sock in pair:
                sock.close()
