"""How EmulatedNetwork decides to emulate each link property, for different kernels (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mininet.topo", reason="mininet not installed (pip install mininet==2.3.0.dev6)")

from topologies.net import EmulatedNetwork  # noqa: E402
from topologies.probe import FEATURES, Capability  # noqa: E402
from topologies.shaping import parse_ms, plan_links, tc_commands  # noqa: E402
from topologies.topos import FlatLan, HomeNat, Pair, Regions  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def caps(*available: str) -> dict[str, Capability]:
    return {name: Capability(name in available, "test") for name in FEATURES}


FULL = caps("veth", "netem", "htb", "tbf", "bridge", "ovs", "relay", "mininet", "nftables", "nat")
NO_NETEM = caps("veth", "htb", "tbf", "bridge", "relay", "mininet", "nftables", "nat")


def plan(topo, capabilities, **kwargs):
    plans = plan_links(topo, capabilities, **kwargs)
    return plans, [p.report() for p in plans]


def test_parse_ms():
    assert parse_ms("20ms") == 20.0 and parse_ms("500us") == 0.5 and parse_ms("0.1s") == 100.0
    assert parse_ms(None) == 0.0 and parse_ms(7) == 7.0
    with pytest.raises(ValueError):
        parse_ms("fast")


def test_netem_kernel_uses_netem_and_htb():
    plans, (link,) = plan(Pair(delay="20ms", jitter="2ms", loss=1, bw=10), FULL)
    assert link["delay"]["method"] == "netem" and link["delay"]["value_ms"] == 20.0
    assert link["delay"]["jitter_ms"] == 2.0
    assert link["loss"]["method"] == "netem" and link["loss"]["value_pct"] == 1.0
    assert link["rate"]["method"] == "htb" and link["rate"]["value_mbit"] == 10.0
    assert "relay" not in link
    commands = tc_commands(plans[0], "eth0")
    assert commands == [
        "tc qdisc replace dev eth0 root handle 5: htb default 1",
        "tc class add dev eth0 parent 5: classid 5:1 htb rate 10mbit burst 15k",
        "tc qdisc replace dev eth0 parent 5:1 handle 10: netem delay 20ms 2ms loss 1%",
    ]


def test_no_netem_inserts_a_relay_and_shapes_on_its_interfaces():
    plans, (link,) = plan(Pair(delay="20ms", loss=1, bw=10), NO_NETEM)
    assert link["delay"]["method"] == link["loss"]["method"] == "relay"
    assert link["rate"]["method"] == "htb" and "relay node x1" in link["rate"]["where"]
    assert plans[0].relay == "x1" and plans[0].qdisc_on == ["x1"]
    assert tc_commands(plans[0], "eth0")[-1].startswith("tc class add")  # no netem command


def test_rate_only_link_needs_no_relay():
    plans, (link,) = plan(Pair(bw=5), NO_NETEM)
    assert link["rate"]["method"] == "htb" and plans[0].relay is None
    plans, (link,) = plan(Pair(bw=5), caps("veth", "tbf", "bridge", "relay", "mininet"))
    assert link["rate"]["method"] == "tbf"
    assert tc_commands(plans[0], "e")[0].startswith("tc qdisc replace dev e root handle 20: tbf rate 5mbit")
    plans, (link,) = plan(Pair(bw=5), caps("veth", "bridge", "relay", "mininet"))
    assert link["rate"]["method"] == "relay-token-bucket" and plans[0].relay_rate


def test_without_netem_and_relay_delay_is_recorded_as_not_emulated():
    _plans, (link,) = plan(Pair(delay="20ms", bw=5), NO_NETEM, use_relay=False)
    assert link["delay"]["method"] == "not-emulated" and "relay is disabled" in link["delay"]["reason"]
    assert link["rate"]["method"] == "htb"


def test_force_relay_even_with_netem():
    _plans, (link,) = plan(Pair(delay="20ms"), FULL, force_relay=True)
    assert link["delay"]["method"] == "relay"


def test_regions_delays_follow_the_latency_model():
    from experiment.latency import builtin_matrix

    names, rtt = builtin_matrix()
    topo = Regions(6, 3)
    _plans, report = plan(topo, NO_NETEM)
    net = EmulatedNetwork(topo, NO_NETEM)
    assert net.hosts == [f"h{i}" for i in range(1, 7)] and net.routers == ["r1", "r2", "r3"]
    delayed = {tuple(x["nodes"]): x["configured"]["delay_ms"] for x in report if x["configured"]["delay_ms"]}
    assert delayed == {("r1", "r2"): rtt[0][1] / 2, ("r1", "r3"): rtt[0][2] / 2, ("r2", "r3"): rtt[1][2] / 2}
    assert topo.host_region == {"h1": names[0], "h2": names[1], "h3": names[2], "h4": names[0], "h5": names[1],
                                "h6": names[2]}
    assert topo.rtt_ms("h1", "h2") == rtt[0][1] and topo.rtt_ms("h1", "h4") == 0.0
    custom = Regions(2, ["eu-west", "oceania"], delays={("eu-west", "oceania"): 100})
    assert custom.rtt_ms("h1", "h2") == 200.0


def test_addressing_plans():
    lan = FlatLan(12)
    assert lan.nodeInfo("h12")["ip6"] == "fd00:1::12/64" and lan.nodeInfo("h12")["ip"] == "10.0.0.12/16"
    homes = HomeNat(4, "symmetric")
    assert homes.public_hosts == ["h1", "h2"] and homes.home_of == {"h3": 1, "h4": 2}
    assert homes.nodeInfo("n1")["nat"] == "symmetric" and homes.nodeInfo("h3")["ip"] == "192.168.1.3/24"
    with pytest.raises(ValueError):
        HomeNat(4, "full-cone")


def test_a_graph_scenario_builds_a_router_per_vertex_on_the_models_paths():
    from emulator.cli import build_topology
    from experiment.latency import scenario_graph
    from experiment.plan import Plan
    from experiment.scenario import load_scenario

    scenario = load_scenario(ROOT / "scenarios" / "graph-small.yaml").with_nodes(10)
    topo, placement = build_topology(Plan(scenario), "regions")
    graph = scenario_graph(scenario)
    assert sorted(n for n in topo.hosts() if n.startswith("r")) == [f"r{j}" for j in range(1, 7)]
    assert placement["graph"].endswith("continents.gml") and set(placement["regions"].values()) <= set(graph.names)
    at = graph.names.index
    for a in topo.host_vertex:
        for b in topo.host_vertex:
            u, v = topo.host_vertex[a], topo.host_vertex[b]
            assert topo.rtt_ms(a, b) == 2 * graph.one_way_ms[at(u)][at(v)]
    _plans, report = plan(topo, FULL)
    lossy = {tuple(x["nodes"]): x["configured"]["loss_pct"] for x in report if x["configured"]["loss_pct"]}
    assert lossy == {("r1", "r3"): 0.1, ("r2", "r6"): 0.1, ("r4", "r5"): 0.1}  # the long-haul edges
