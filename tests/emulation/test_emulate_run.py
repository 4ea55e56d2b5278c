"""``emulate`` end to end (root): a 5-host IPv6 emulation of formation.yaml with real nodes over QUIC, and a
run interrupted halfway that leaves nothing behind."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.emulation.conftest import leftovers, needs_root

pytestmark = [pytest.mark.root, needs_root]
ROOT = Path(__file__).resolve().parents[2]


def short_formation(tmp_path: Path, duration: int) -> Path:
    scenario = yaml.safe_load((ROOT / "scenarios" / "formation.yaml").read_text())
    scenario.update(duration=duration, nodes={**scenario["nodes"], "count": 5, "bootstrap": 2})
    scenario["workload"] = {"lookup": 30.0, "put": 0, "get": 0}
    path = tmp_path / "formation-5.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


def our_leftovers() -> tuple[list[str], list[str]]:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    procs = subprocess.run(["pgrep", "-af", "p2pnode.cli run"], capture_output=True, text=True).stdout.splitlines()
    return [n for n in namespaces if n.startswith("p2pe")], procs


def test_five_real_nodes_form_a_network_over_quic(tmp_path):
    from emulator.cli import main

    out = tmp_path / "results"
    assert main([str(short_formation(tmp_path, 20)), "--out", str(out)]) == 0
    (run,) = out.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["runtime"] == "emulation" and manifest["status"] == "completed"
    # every link says how its delay was emulated (netem, the relay, or none for zero delay)
    assert manifest["links"] and all(link["delay"]["method"] for link in manifest["links"])
    delayed = [link for link in manifest["links"] if link["configured"]["delay_ms"]]
    assert delayed and all(link["delay"]["method"] in ("netem", "relay") for link in delayed)
    assert {"netem", "tun", "nftables"} <= set(manifest["capabilities"])
    # nodes bootstrapped over QUIC on IPv6
    config = (run / "nodes" / "3" / "node.toml").read_text()
    assert "/ip6/fd00:" in config and "/udp/4001/quic-v1/p2p/" in config
    # formation reached: lookups from all five nodes returned every other node (k = 20 > 4)
    rows = [line.split(",") for line in (run / "events.csv").read_text().splitlines()[1:]]
    formed = [r for r in rows if r[1] == "formation" and r[5] == "1"]
    assert formed and float(formed[0][6]) == 1.0
    lookups = [r for r in rows if r[1] == "lookup"]
    assert lookups and all(r[5] == "1" for r in lookups)
    assert (run / "report.html").exists() and json.loads((run / "summary.json").read_text())
    assert our_leftovers() == ([], [])


def test_eight_real_nodes_deliver_gossip_and_it_is_measured_as_in_simulation(tmp_path):
    from emulator.cli import main

    scenario = yaml.safe_load((ROOT / "scenarios" / "delivery-small.yaml").read_text())
    scenario.update(warmup=15, duration=20, churn=None,
                    nodes={"count": 8, "bootstrap": 2, "join_over": 5},
                    measure={"delivery_settle": 5, "delivery_deadline": 5})
    scenario["pubsub"].update(publishers=0.25, peers=6, max_peers=7)
    path = tmp_path / "gossip-8.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in scenario.items() if v is not None}))
    out = tmp_path / "results"
    assert main([str(path), "--out", str(out), "--topology", "lan"]) == 0
    (run,) = out.iterdir()
    assert "[pubsub]\nenabled = true" in (run / "nodes" / "0" / "node.toml").read_text()
    rows = [line.split(",") for line in (run / "events.csv").read_text().splitlines()[1:]]
    kinds = {r[1] for r in rows}
    assert {"publish", "deliver", "delivery", "mesh", "ps_recv"} <= kinds
    summary = json.loads((run / "summary.json").read_text())
    stats = summary["pubsub"]
    # about 40 messages, each to the 7 other subscribers of an 8-node LAN: all of them, well within a second
    assert stats["messages_judged"] >= 20 and stats["delivery_rate"] == 1.0
    assert 0 < stats["delivery_latency_p99"] < 1.0
    assert stats["mesh_degree_end"] >= 4
    assert our_leftovers() == ([], [])


def test_six_real_nodes_call_each_others_mcp_tools_as_in_simulation(tmp_path):
    """mcp-small's workload on real nodes: each agent's tools/call goes over the node's control pipe to its
    MCP server, which discovers providers in the DHT and calls their run_inference (the embedded model)."""
    from emulator.cli import main

    scenario = yaml.safe_load((ROOT / "scenarios" / "mcp-small.yaml").read_text())
    scenario.update(warmup=25, duration=25, churn=None, nodes={"count": 6, "bootstrap": 2, "join_over": 5})
    scenario["mcp"].update(providers=0.5, rate=12.0)
    path = tmp_path / "mcp-6.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in scenario.items() if v is not None}))
    out = tmp_path / "results"
    assert main([str(path), "--out", str(out), "--topology", "lan"]) == 0
    (run,) = out.iterdir()
    rows = [line.split(",") for line in (run / "events.csv").read_text().splitlines()[1:]]
    calls = [r for r in rows if r[1] == "mcp"]
    assert len(calls) >= 10 and sum(r[5] == "1" for r in calls) >= 0.9 * len(calls)
    stats = json.loads((run / "summary.json").read_text())["mcp"]
    assert stats["mcp_requests"] == len(calls) and 0 < stats["mcp_latency_p50"] < 5
    assert (run / "mcp_latency_cdf.png").exists() and "## MCP requests" in (run / "report.md").read_text()
    assert our_leftovers() == ([], [])


def running_nodes_of(proc: subprocess.Popen, timeout: float = 60) -> str:
    """The run tag of the emulation that ``proc`` started, once its nodes run (other emulations on the machine,
    such as another checkout's tests, have other tags and are left out of what the tests look at)."""
    from topologies.registry import STATE_DIR

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in STATE_DIR.glob("?.json"):
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if state.get("pid") == proc.pid and any(mark.startswith(f"{path.stem}:") for mark in _marks()):
                return path.stem
        time.sleep(0.5)
    raise AssertionError("the emulation's nodes did not start")


def _marks() -> list[str]:
    from topologies.registry import scan_processes

    return [mark for _pid, cmdline, mark, _ in scan_processes() if "p2pnode.cli run" in cmdline]


def nothing_left(tag: str) -> bool:
    return not any(leftovers(tag).values())


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupted_run_cleans_up(tmp_path, signame):
    """Ctrl-C, or SIGTERM as kill sends: a message, the manifest says interrupted, a partial report, nothing left."""
    proc = subprocess.Popen([sys.executable, "-m", "emulator.cli", str(short_formation(tmp_path, 60)), "--out",
                             str(tmp_path / "results")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tag = running_nodes_of(proc)
    time.sleep(3)
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert nothing_left(tag), leftovers(tag)
    (run_dir,) = (tmp_path / "results").iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    assert (run_dir / "report.md").is_file()


def test_killed_run_is_cleaned_by_cleanup(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "emulator.cli", str(short_formation(tmp_path, 60)), "--out",
                             str(tmp_path / "results")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tag = running_nodes_of(proc)
    proc.kill()
    proc.wait()
    time.sleep(1)
    subprocess.run([sys.executable, "-m", "topologies.net", "cleanup"], check=True, capture_output=True)
    assert nothing_left(tag), leftovers(tag)


def test_the_next_emulate_removes_what_a_killed_run_left(tmp_path):
    """kill -9 of emulate leaves namespaces, bridges, its registry entry and temporary files; the next emulate
    removes them before it builds its own network, and says so."""
    from topologies.registry import STATE_DIR

    proc = subprocess.Popen([sys.executable, "-m", "emulator.cli", str(short_formation(tmp_path, 60)), "--out",
                             str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tag = running_nodes_of(proc)
    proc.kill()
    proc.wait()
    time.sleep(1)
    left = leftovers(tag)
    assert left["namespaces"] and (STATE_DIR / f"{tag}.json").exists()
    second = subprocess.run([sys.executable, "-m", "emulator.cli", str(short_formation(tmp_path, 5)), "--out",
                             str(tmp_path / "next")], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    said = re.search(r"removed what \d+ dead emulation run\(s\) left \(tags ([^)]*)\): (\d+) namespaces",
                     " ".join(second.stdout.split()))
    assert said and tag in said.group(1).split(", ") and int(said.group(2)) >= len(left["namespaces"]), second.stdout
    assert nothing_left(tag), leftovers(tag)


@pytest.mark.parametrize("transport, slack_ms", [("tcp", 5.0), ("quic", 7.0)])
def test_20ms_link_gives_40ms_ping_between_real_nodes(tmp_path, transport, slack_ms):
    """Two p2pnode processes on a link with 20 ms one-way delay: libp2p ping (/ipfs/ping/1.0.0) measures
    40 +- 5 ms over TCP. Over QUIC our stack adds about 3.5 ms at this RTT (0.9 ms on loopback), so its bound
    is 40 + 7 ms until that is found."""
    import asyncio
    import statistics

    from emulator.driver import NodeProcess
    from topologies.net import EmulatedNetwork
    from topologies.topos import Pair

    with EmulatedNetwork(Pair(delay="20ms")) as net:
        configs = []
        for name in net.hosts:
            ip6 = net.ip6(name)
            listen = f"/ip6/{ip6}/udp/4001/quic-v1" if transport == "quic" else f"/ip6/{ip6}/tcp/4002"
            path = tmp_path / f"{name}.toml"
            path.write_text(f'[network]\nlisten_addresses = ["{listen}"]\ntransports = ["{transport}"]\n'
                            f'key_file = "{name}.key"\n[mcp]\nenabled = false\n')
            configs.append(path)

        async def scenario():
            nodes = []
            try:
                for i, name in enumerate(net.hosts):
                    popen = net.popen(name, [sys.executable, "-m", "p2pnode.cli", "run", "--config", str(configs[i]),
                                             "--control", "stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                    nodes.append(NodeProcess(i, popen))
                    await nodes[-1].attach()
                target = nodes[1].ready
                return await nodes[0].call("ping", peer=target["peer_id"], count=20, addrs=target["listen_addrs"])
            finally:
                for node in nodes:
                    node.stop(graceful=True)
                    await node.wait()

        rtts = asyncio.run(scenario())["rtts"]
    median = statistics.median(rtts) * 1000
    assert 35.0 <= median <= 40.0 + slack_ms, [round(r * 1000, 1) for r in rtts]
