"""Real nodes on a LAN in network namespaces (root): mDNS discovery on one Ethernet segment, and router
port mapping through a real gateway (miniupnpd: UPnP IGD, NAT-PMP and PCP)."""

from __future__ import annotations

import pytest

from tests.nat.lan import GATEWAY_SKIP, SKIP, Lan

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


def _mapped(status: dict) -> bool:
    return status["port_mapping"]["state"] != "probing"


@pytest.mark.skipif(GATEWAY_SKIP is not None, reason=GATEWAY_SKIP or "")
@pytest.mark.parametrize("protocol", ["pcp", "nat-pmp", "upnp"])
def test_a_node_behind_a_real_router_maps_its_ports_and_is_dialled_from_outside(lan, protocol):
    lan.gateway("home", "gw", "wan")
    home = lan.peer("home", port_mapping=[protocol], seed=1)
    status = home.until(_mapped)
    mapping = status["port_mapping"]
    assert mapping["state"] == "mapped", mapping
    assert mapping["protocol"] == protocol and mapping["gateway"] == "192.168.77.1"
    assert sorted(m["transport"] for m in mapping["mappings"]) == ["tcp", "udp"]
    external = [m["external"] for m in mapping["mappings"]]
    assert all(a.startswith("/ip4/11.88.0.1/") for a in external)
    # the node advertises the router's addresses, and a node outside reaches it through them
    assert {f"{a}/p2p/{home.peer_id}" for a in external} <= set(status["listen"])
    assert len(lan.dnat_rules("gw")) == 2
    assert status["metrics"][f'p2p_port_mappings{{"protocol": "{protocol}", "transport": "tcp"}}'] == 1
    assert status["metrics"]['p2p_port_mapping_state{"state": "mapped"}'] == 1
    for addr in external:
        outside = lan.peer("wan", bootstrap=[f"{addr}/p2p/{home.peer_id}"], seed=2 + len(addr))
        assert home.peer_id in outside.until(lambda s: home.peer_id in s["connected"])["connected"], addr
        outside.proc.stdin.close()
        outside.proc.wait(timeout=10)
    home.proc.stdin.close()  # the node stops: its mappings are deleted at the router
    home.proc.wait(timeout=15)
    assert lan.dnat_rules("gw") == []


@pytest.mark.skipif(GATEWAY_SKIP is not None, reason=GATEWAY_SKIP or "")
def test_a_router_without_a_mapping_service_is_probed_and_named(lan):
    lan.gateway("home", "gw", "wan", upnp=False)
    status = lan.peer("home", port_mapping=["pcp", "nat-pmp", "upnp"]).until(_mapped, timeout=30)
    mapping = status["port_mapping"]
    assert mapping["state"] == "none" and mapping["mappings"] == []
    assert set(mapping["probes"]) == {"pcp", "nat-pmp", "upnp"}
    assert "refused" in mapping["probes"]["pcp"] or "no answer" in mapping["probes"]["pcp"]
    assert "no UPnP device answered" in mapping["probes"]["upnp"]
    assert not any("11.88.0.1" in a for a in status["listen"])


def test_no_default_gateway_means_no_port_mapping(lan):
    lan.ns("alone")
    status = lan.peer("alone", port_mapping=["pcp"], listen=["/ip4/127.0.0.1/tcp/0"]).until(_mapped)
    assert status["port_mapping"]["state"] == "none"
    assert status["port_mapping"]["reason"] == "no default IPv4 gateway"
