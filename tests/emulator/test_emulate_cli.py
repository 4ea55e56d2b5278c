"""``emulate``'s parts that need no root: refused scenario features, node configurations, host load, link loss,
and its errors for a user without root or Mininet."""

from __future__ import annotations

import os
from pathlib import Path

from emulator.cli import main, unsupported
from experiment.plan import Plan
from experiment.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[2]


def test_features_emulation_cannot_run_are_named():
    attack = unsupported(parse_scenario((ROOT / "scenarios" / "attack.yaml").read_text()))
    assert any("pubsub.attackers" in p for p in attack)
    tuned = parse_scenario("name: x\nnodes: {count: 10}\npubsub: {discovery: random, router: {d: 5, d_lo: 4}}\n")
    assert {p.split(":")[0] for p in unsupported(tuned)} == {"pubsub.discovery", "pubsub.router"}
    crowded = unsupported(parse_scenario((ROOT / "scenarios" / "delivery.yaml").read_text()))
    assert [p.split(":")[0] for p in crowded] == ["pubsub.max_peers"]
    for name in ("delivery-small.yaml", "formation.yaml"):
        assert unsupported(parse_scenario((ROOT / "scenarios" / name).read_text())) == []
    lossy = parse_scenario("name: x\nnodes: {count: 10}\nnetwork: {loss: 0.01}\n")
    assert unsupported(lossy) == []
    go = parse_scenario("name: x\nnodes: {count: 10}\ndht: {preset: go-libp2p-kad-dht}\n")
    assert [p.split(":")[0] for p in unsupported(go)] == ["dht.preset"]


def test_without_root_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main([str(ROOT / "scenarios" / "formation.yaml")]) == 2
    assert "needs root" in capsys.readouterr().err


def test_bad_scenario_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nnodes: {count: -3}\n")
    code = main([str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and ("nodes.count" in err or "Mininet is not installed" in err)


def test_host_load_counts_the_seconds_the_cpus_were_saturated():
    from emulator.driver import HostLoad

    load = HostLoad()
    load.samples = [(1.0, 1.0, 50.0), (2.0, 1.0, 99.0), (4.0, 2.0, 97.0), (5.0, 1.0, 10.0)]
    summary = load.summary()
    assert summary["host_cpu_saturated_seconds"] == 3.0
    assert summary["host_cpu_saturated_last_at"] == 4.0
    assert summary["host_cpu_busy_percent"] == round((50 + 99 + 2 * 97 + 10) / 5, 1)


def test_node_configs_carry_the_scenarios_dht_and_pubsub_settings(tmp_path):
    """What each emulated node runs with: the scenario's protocol parameters, in a file `p2pnode run` accepts."""
    from emulator.driver import Emulation
    from p2pnode.nodeconfig import parse_config

    class Net:  # the two things the driver asks of the network before it starts processes
        hosts = [f"h{i + 1}" for i in range(20)]

        def ip6(self, host):
            return f"fd00::{host[1:]}"

    scenario = parse_scenario((ROOT / "scenarios" / "delivery-small.yaml").read_text())
    plan = Plan(scenario)
    config = parse_config(Emulation(scenario, plan, Net(), None, tmp_path)._config(3).read_text())
    assert (config.dht.request_timeout, config.dht.slow_after) == (scenario.dht.request_timeout,
                                                                    scenario.dht.slow_after)
    assert (config.pubsub.enabled, config.pubsub.peers, config.pubsub.max_peers) == (True, 8, 19)
    assert config.pubsub.expected_rate == 2.0 and config.bootstrap.nodes[0].endswith(f"/p2p/{plan.peer_ids[0]}")
    assert config.network.listen_addresses[0] == "/ip6/fd00::4/udp/4001/quic-v1"
    dht_only = parse_scenario((ROOT / "scenarios" / "formation.yaml").read_text())
    config = parse_config(Emulation(dht_only, Plan(dht_only), Net(), None, tmp_path)._config(3).read_text())
    assert not config.pubsub.enabled
    assert (config.security.puzzle_static, config.security.rate_limit_per_peer) == (0, 100)  # the node's defaults
    secured = dht_only.model_copy(update={"security": dht_only.security.model_copy(
        update={"puzzle_static": 2, "pow_difficulty": 5, "rate_limit_per_peer": 50.0, "total_rate_limit": 900.0})})
    config = parse_config(Emulation(secured, Plan(secured), Net(), None, tmp_path)._config(4).read_text())
    sec = config.security
    assert (sec.puzzle_static, sec.pow_difficulty, sec.rate_limit_per_peer, sec.total_rate_limit) == (2, 5, 50, 900)


def test_message_loss_becomes_loss_on_both_access_links_of_a_path():
    from emulator.cli import access_link_loss_pct

    assert access_link_loss_pct(0.0) is None
    q = access_link_loss_pct(0.19) / 100
    assert abs((1 - q) ** 2 - 0.81) < 1e-6  # a packet crosses the sender's and the receiver's access link


def test_node_configs_carry_the_scenarios_mcp_settings(tmp_path):
    """An MCP scenario's nodes run MCP with the simulator's section (experiment.mcp.node_section): only the
    planned providers offer run_inference."""
    from emulator.driver import Emulation
    from p2pnode.nodeconfig import parse_config

    class Net:
        hosts = [f"h{i + 1}" for i in range(12)]

        def ip6(self, host):
            return f"fd00::{host[1:]}"

    scenario = parse_scenario((ROOT / "scenarios" / "mcp-small.yaml").read_text())
    plan = Plan(scenario)
    emulation = Emulation(scenario, plan, Net(), None, tmp_path)
    configs = [parse_config(emulation._config(i).read_text()) for i in range(12)]
    offering = {i for i, c in enumerate(configs) if "run_inference" in c.mcp.available_tools}
    assert offering == plan.mcp_providers and len(offering) == 4
    assert all(c.mcp.enabled and c.mcp.service_ttl == 60 and c.mcp.peer_tools == {"*": ["*"]} for c in configs)
    assert emulation.mcp.operations is not None
