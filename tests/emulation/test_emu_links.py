"""Link emulation: delay (netem or the user-space relay), loss and rate, measured inside the hosts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.emulation.conftest import needs_root, ping6_rtt

pytestmark = [pytest.mark.root, needs_root]

# UDP load: argv = destination, packets per second, payload bytes, seconds.
LOAD = """
import socket, sys, time
dst, pps, size, secs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
payload, sent, t0 = b"x" * size, 0, time.monotonic()
while (now := time.monotonic()) - t0 < secs:
    while sent < (now - t0) * pps:
        s.sendto(payload, (dst, 9000)); sent += 1
    time.sleep(0.0005)
print(sent)
"""
SINK = """
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::", 9000))
while True:
    s.recv(65536)
"""
# TCP throughput: server counts bytes for the given seconds after the first byte; client sends as fast as it can.
TCP_SERVER = """
import socket, sys, time
secs = float(sys.argv[1])
srv = socket.socket(socket.AF_INET6); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("::", 9001)); srv.listen(1); print("listening", flush=True)
conn, _ = srv.accept(); total = len(conn.recv(65536)); t0 = time.monotonic()
while time.monotonic() - t0 < secs:
    total += len(conn.recv(65536))
print(total * 8 / (time.monotonic() - t0) / 1e6, flush=True)
"""
TCP_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 9001)); data = b"x" * 65536
try:
    while True:
        c.sendall(data)
except OSError:
    pass
"""


@pytest.mark.parametrize("force_relay", [False, True], ids=["auto", "relay"])
def test_20ms_link_gives_40ms_rtt_also_under_load(caps, force_relay):
    from topologies.net import EmulatedNetwork
    from topologies.topos import Pair

    if force_relay and not caps["netem"].available:
        pytest.skip("no netem here: the 'auto' case already measures the relay")
    with EmulatedNetwork(Pair(delay="20ms"), caps, force_relay=force_relay) as net:
        (link,) = net.links_report()
        method = "netem" if caps["netem"].available and not force_relay else "relay"
        assert link["delay"] | {"where": None} == {"method": method, "value_ms": 20.0, "jitter_ms": 0.0,
                                                   "per": "direction", "where": None}
        low, avg, received = ping6_rtt(net, "h1", "h2")
        assert received == 20
        assert 35.0 <= avg <= 45.0, f"idle RTT {avg} ms"
        sink = net.popen("h2", [sys.executable, "-c", SINK], stdout=subprocess.DEVNULL)
        load = net.popen("h1", [sys.executable, "-c", LOAD, net.ip6("h2"), "5000", "200", "3"],
                         stdout=subprocess.PIPE, text=True)
        low_l, avg_l, received_l = ping6_rtt(net, "h1", "h2")
        sent = int(load.communicate(timeout=15)[0])
        sink.terminate()
        assert received_l == 20
        assert 35.0 <= avg_l <= 45.0, f"RTT under load {avg_l} ms"
        print(f"\n  {method}: idle RTT min/avg {low:.2f}/{avg:.2f} ms; with {sent} UDP packets (5000/s) "
              f"RTT min/avg {low_l:.2f}/{avg_l:.2f} ms")
    if method == "relay":
        stats = net.links_report()[0]["relay"]["stats"]
        forwarded = sum(d["forwarded"] for d in stats["directions"].values())
        assert forwarded >= sent
        print(f"  relay: {forwarded} frames forwarded, cpu {stats['cpu_s']} s in {stats['wall_s']} s")


def test_loss_and_rate(caps):
    from topologies.net import EmulatedNetwork
    from topologies.topos import Pair

    with EmulatedNetwork(Pair(delay="2ms", loss=20), caps, seed=7) as net:
        (link,) = net.links_report()
        assert link["loss"]["method"] in ("netem", "relay")
        addr = net.ip6("h2")
        net.cmd("h1", f"ping -6 -c 1 -w 3 {addr} >/dev/null 2>&1")
        out = net.cmd("h1", f"ping -6 -n -q -c 200 -i 0.005 -W 1 {addr}")
        line = next(x for x in out.splitlines() if "received" in x)
        received = int(line.split(",")[1].split()[0])
        lost = 1 - received / 200  # both directions: 1 - 0.8 ** 2 = 36 %
        assert 0.22 <= lost <= 0.50, f"RTT loss {lost:.0%} for 20 % per direction"
    with EmulatedNetwork(Pair(bw=10), caps) as net:
        (link,) = net.links_report()
        assert link["rate"]["method"] in ("htb", "tbf", "netem-rate", "relay-token-bucket")
        server = net.popen("h2", [sys.executable, "-c", TCP_SERVER, "2"], stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "listening"
        client = net.popen("h1", [sys.executable, "-c", TCP_CLIENT, net.ip6("h2")], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        mbit = float(server.communicate(timeout=20)[0])
        client.kill()
        assert 7.0 <= mbit <= 11.0, f"{mbit:.2f} Mbit/s through a 10 Mbit/s link"
        print(f"\n  loss 20%/direction -> {lost:.0%} ping loss; rate 10 Mbit/s ({link['rate']['method']}) -> "
              f"{mbit:.2f} Mbit/s TCP")
