"""Real nodes on a LAN in network namespaces (root): mDNS discovery on one Ethernet segment, and router
port mapping through a real gateway (miniupnpd: UPnP IGD, NAT-PMP and PCP)."""

from __future__ import annotations

import pytest

from tests.nat.lan import SKIP, Lan

pytestmark = [pytest.mark.root, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


@pytest.fixture
def lan():
    net = Lan()
    try:
        yield net
    finally:
        net.close()


def test_nodes_on_one_segment_find_each_other_by_mdns_and_join_one_dht(lan):
    hosts = {f"h{i}": f"10.77.0.{i}/24" for i in (1, 2, 3)}
    lan.segment("sw", hosts)
    peers = [lan.peer(host, mdns=True, seed=i) for i, host in enumerate(hosts, 1)]
    ids = {p.peer_id for p in peers}
    for peer in peers:
        status = peer.until(lambda s: len(s["connected"]) == 2 and s["routing_table"] == 2)
        assert set(status["connected"]) == ids - {peer.peer_id}, status["mdns"]
        assert status["routing_table"] == 2  # no bootstrap peers: the DHT knows the neighbours through mDNS
        mdns = status["mdns"]
        assert mdns["state"] == "running" and mdns["interfaces"] == ["eth-sw"]
        assert set(mdns["discovered"]) == ids - {peer.peer_id}
        # only what a neighbour can dial is announced, each ending in our peer ID
        assert mdns["announced"] and all(a.startswith("/ip4/10.77.0.") and a.endswith(peer.peer_id)
                                         for a in mdns["announced"])
        assert status["metrics"]['p2p_mdns_state{"state": "running"}'] == 1
        assert status["metrics"]["p2p_mdns_peers_discovered_total"] == 2
    # how long the last node to start took to find the two already running
    found = peers[-1].status()["mdns"]["discovered"].values()
    print("mDNS: the last node found both neighbours after", max(d["after"] for d in found), "s")


def test_a_host_without_a_multicast_interface_says_why_and_runs_without_mdns(lan):
    lan.ns("alone")  # loopback only
    status = lan.peer("alone", mdns=True, listen=["/ip4/127.0.0.1/tcp/0"]).status()
    assert status["mdns"]["state"] == "unavailable"
    assert "no interface is up with multicast" in status["mdns"]["reason"]
    assert status["metrics"]['p2p_mdns_state{"state": "unavailable"}'] == 1
