"""Real packets through each mechanism's user-space data planes in network namespaces (root)."""

from __future__ import annotations

import sys

import pytest

from tests.tunnels import scenarios
from tests.tunnels.netns import SKIP, Net

DETECTABLE = ("6to4", "teredo", "isatap", "dslite", "464xlat")  # the others look native from their addresses
pytestmark = [pytest.mark.root, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


@pytest.fixture
def net():
    n = Net("h", "i", "f")
    yield n
    n.close()


@pytest.mark.parametrize("mechanism", list(scenarios.SCENARIOS))
def test_a_packet_crosses(net, mechanism):
    target = scenarios.SCENARIOS[mechanism](net)
    scenarios.settle()
    assert net.ping("h", target, count=2), f"no echo reply through {mechanism}"
    # what a node in the host namespace reports as p2p_tunnel_protocol (from its interface addresses)
    shown = net.run("h", sys.executable, "-c", "from p2pnode.runtime.http import host_tunnel_protocol as p; print(p())")
    assert shown.strip() == (mechanism if mechanism in DETECTABLE else "native")
    finals = net.stop()
    for final in finals:
        assert not any(k.startswith("endpoint error") for k in final["stats"]), final
    # every plane on the way forwarded it (the translators through their TUN device alone)
    assert all(any(k.startswith("out_") for k in final["stats"]) for final in finals), finals


@pytest.mark.parametrize("mechanism,size,expect", [
    ("dslite", 1432, True), ("dslite", 1433, False),  # 1460-byte softwire: 1432 + 28 fits, one more does not
    ("6to4", 1432, True), ("6to4", 1433, False),  # 1480 - 40 - 8
    ("teredo", 1232, True), ("teredo", 1233, False),  # 1280 - 48
])
def test_path_mtu_with_dont_fragment(net, mechanism, size, expect):
    target = scenarios.SCENARIOS[mechanism](net)
    scenarios.settle()
    assert net.ping("h", target, size=size, df=True) is expect


@pytest.mark.parametrize("mechanism,size,answer", [
    ("dslite", 1440, "mtu = 1460"), ("6to4", 1440, "mtu=1480"), ("teredo", 1240, "mtu=1280")])
def test_the_data_plane_answers_an_oversized_packet(net, mechanism, size, answer):
    """With a 1500-byte TUN device the stack sends what the tunnel cannot carry: the endpoint answers
    with Fragmentation Needed / Packet Too Big giving the tunnel's MTU, and the retry fits."""
    target = scenarios.SCENARIOS[mechanism](net, hint_mtu=False)
    scenarios.settle()
    ok, output = net.ping_output("h", target, size=size, df=True)
    assert not ok and answer in output.replace("mtu: ", "mtu="), output
    finals = {f["ns"]: f for f in net.stop()}
    assert any("too big" in k for k in finals["h"]["drops"]), finals["h"]


def test_malformed_and_spoofed_packets_do_not_stop_the_plane(net):
    target = scenarios.sixtofour(net)
    scenarios.settle()
    # raw protocol-41 packets at the relay: truncated inner header, IPv4 inside, a spoofed 2002:: source
    from scapy.all import IP, UDP, IPv6, Raw, raw

    bad = [raw(IP(src="192.0.2.10", dst="192.0.2.1", proto=41) / Raw(b"\x60\x00")),
           raw(IP(src="192.0.2.10", dst="192.0.2.1", proto=41) / IP(dst="1.2.3.4")),
           raw(IP(src="192.0.2.10", dst="192.0.2.1", proto=41) / IPv6(src="2002:c000:299::1", dst=target) / UDP()),
           raw(IP(src="192.0.2.10", dst="192.0.2.1", proto=41) / IPv6(src="2002:c000:20a::1", dst=target, plen=900))]
    script = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_RAW)\n"
              "for h in sys.argv[1:]: s.sendto(bytes.fromhex(h),('192.0.2.1',0))")
    net.run("h", sys.executable, "-c", script, *[b.hex() for b in bad])
    assert net.ping("h", target)
    finals = {f["ns"]: f for f in net.stop()}
    drops = finals["i"]["drops"]
    assert sum(drops.values()) >= 4, drops
    assert any("spoofed" in k for k in drops) and any("inner packet" in k for k in drops)
