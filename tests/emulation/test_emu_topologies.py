"""The topologies under emulation: IPv6 reachability, inter-region RTTs from the latency model, NAT types."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.emulation.conftest import needs_root, ping6_rtt

pytestmark = [pytest.mark.root, needs_root]


def test_flatlan_all_pairs_reachable_over_ipv6(caps):
    from topologies.ipv6 import reachability
    from topologies.net import EmulatedNetwork
    from topologies.topos import FlatLan

    with EmulatedNetwork(FlatLan(5), caps) as net:
        assert net.hosts == ["h1", "h2", "h3", "h4", "h5"]
        assert net.ip6("h3") == "fd00:1::3" and net.ip4("h3") == "10.0.0.3"
        assert reachability(net) == []
        assert all(link["delay"]["method"] == "none" for link in net.links_report())


def test_regions_reachable_with_model_rtts(caps):
    from topologies.ipv6 import reachability
    from topologies.net import EmulatedNetwork
    from topologies.topos import Regions

    topo = Regions(3, 3)  # one host per region: na-east, na-west, sa-east
    with EmulatedNetwork(topo, caps) as net:
        assert net.hosts == ["h1", "h2", "h3"] and net.routers == ["r1", "r2", "r3"]
        assert reachability(net) == []
        methods = {link["delay"]["method"] for link in net.links_report() if link["configured"]["delay_ms"]}
        assert methods == {"netem" if caps["netem"].available else "relay"}
        lines = []
        for a, b in (("h1", "h2"), ("h1", "h3"), ("h2", "h3")):
            expected = topo.rtt_ms(a, b)
            low, avg, received = ping6_rtt(net, a, b, count=10, interval=0.05)
            assert received == 10
            assert abs(avg - expected) <= 3.0 + 0.03 * expected, f"{a}->{b}: {avg} ms, model {expected} ms"
            lines.append(f"{topo.host_region[a]}->{topo.host_region[b]} model {expected:g} ms, "
                         f"measured min/avg {low:.2f}/{avg:.2f} ms")
        print("\n  " + "\n  ".join(lines))


def test_graph_routes_along_the_latency_models_paths(caps):
    from pathlib import Path

    from experiment.graph import load_graph
    from topologies.ipv6 import reachability
    from topologies.net import EmulatedNetwork
    from topologies.topos import Graph

    graph = load_graph(Path(__file__).resolve().parents[2] / "scenarios" / "graphs" / "continents.gml")
    # no host at eu-central: ap-southeast <-> eu-west crosses it (7 + 75 ms), not the Pacific and America
    topo = Graph.of(graph, ["eu-west", "na-east", "ap-northeast", "ap-southeast"])
    with EmulatedNetwork(topo, caps) as net:
        assert net.hosts == ["h1", "h2", "h3", "h4"] and len(net.routers) == 6
        assert reachability(net) == []
        lines = []
        for a, b in (("h1", "h2"), ("h1", "h4"), ("h2", "h3")):
            expected = topo.rtt_ms(a, b)
            model = 2 * graph.one_way_ms[graph.names.index(topo.host_vertex[a])][graph.names.index(topo.host_vertex[b])]
            assert expected == model  # the topology's path is the latency model's
            low, avg, received = ping6_rtt(net, a, b, count=10, interval=0.05)
            assert received >= 9  # the long-haul edges lose one packet in a thousand
            assert abs(avg - expected) <= 3.0 + 0.03 * expected, f"{a}->{b}: {avg} ms, model {expected} ms"
            lines.append(f"{topo.host_vertex[a]}->{topo.host_vertex[b]} model {expected:g} ms, "
                         f"measured min/avg {low:.2f}/{avg:.2f} ms")
        assert topo.rtt_ms("h1", "h4") == 2 * (1.5 + 7 + 75 + 1.5)
        print("\n  " + "\n  ".join(lines))


# Receives one UDP datagram and prints the sender's address and port.
UDP_ECHO_SOURCE = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9999)); print("ready", flush=True)
s.settimeout(10); _, (addr, port) = s.recvfrom(100); print(addr, port, flush=True)
"""
# Sends from one fixed source port to several destinations.
UDP_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 40000))
for dst in sys.argv[1:]:
    s.sendto(b"hello", (dst, 9999))
"""


@pytest.mark.parametrize("nat", ["cone", "symmetric"])
def test_homenat_mapping_and_ipv6_everywhere(caps, nat):
    from topologies.ipv6 import reachability
    from topologies.net import EmulatedNetwork
    from topologies.topos import HomeNat

    if not caps["nat"].available:
        pytest.skip(f"no nftables NAT: {caps['nat'].detail}")
    topo = HomeNat(4, nat)  # h1, h2 public; h3 behind n1, h4 behind n2
    with EmulatedNetwork(topo, caps) as net:
        assert net.hosts == ["h1", "h2", "h3", "h4"] and net.routers == ["n1", "n2"]
        assert reachability(net) == []  # IPv6 is routed to every host
        watchers = []
        for public in ("h1", "h2"):
            proc = net.popen(public, [sys.executable, "-c", UDP_ECHO_SOURCE], stdout=subprocess.PIPE, text=True)
            assert proc.stdout.readline().strip() == "ready"
            watchers.append(proc)
        net.popen("h3", [sys.executable, "-c", UDP_SEND, net.ip4("h1"), net.ip4("h2")]).wait(timeout=10)
        seen = [tuple(w.communicate(timeout=10)[0].split()) for w in watchers]
        assert all(addr == "10.0.255.1" for addr, _port in seen), seen  # n1's WAN address
        ports = {port for _addr, port in seen}
        if nat == "cone":
            assert ports == {"40000"}, seen  # endpoint-independent mapping, source port kept
        else:
            assert len(ports) == 2, seen  # a new mapping per destination
        # No IPv4 path into a home without a mapping.
        assert "0 received" in net.cmd("h1", "ping -c 1 -W 1 192.168.1.3") or \
            "unreachable" in net.cmd("h1", "ping -c 1 -W 1 192.168.1.3")
        print(f"\n  {nat}: h3 (192.168.1.3:40000) seen by h1, h2 as {seen}")
