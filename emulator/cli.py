"""``emulate SCENARIO [--seed N] [--nodes N] [--out DIR] [--topology regions|lan] [--transport quic|tcp]
[--node-log LEVEL] [--keep]``.

The scenario file of ``simulate``, run with real ``p2pnode`` processes in a Mininet network (root, Linux).
The run directory has the simulator's layout (manifest, events.csv, summary, report) plus ``nodes/<i>/``
(config, key, log and the node's own events) and, in the manifest, the kernel's capabilities and how every
link property was emulated. Every run removes its network and processes, also after errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from analysis.cli import report_run
from experiment import rundir
from experiment.command import UsageError, add_run_arguments, run_dir_under, scenario_to_run, sigterm_as_interrupt
from experiment.feasibility import check_emulation
from experiment.latency import MatrixError, scenario_graph, scenario_matrix
from experiment.plan import Plan
from experiment.rundir import write_json
from experiment.scenario import ScenarioError
from p2pnode.eventlog import EventWriter

PACKAGES = ("mininet", "aioquic", "cryptography")  # whose versions the manifest records


def unsupported(scenario: Any) -> list[str]:
    """Scenario features the emulator cannot run yet: refused by name rather than silently ignored."""
    problems = []
    if set(scenario.nodes.transition) != {"native"} or scenario.nodes.transition_blackhole:
        problems.append("nodes.transition: the emulated access networks per mechanism are not built yet "
                        "(simulate models them; the data planes run in tests/tunnels)")
    if scenario.dht.preset != "p2pnode":
        problems.append(f"dht.preset: {scenario.dht.preset} is a simulator setting (real nodes run p2pnode's DHT)")
    if scenario.nat.active(scenario.nodes):
        problems.append("nodes.nat: emulated NATs are not built yet (simulate models them; docs/nat.md)")
    if scenario.adversary is not None:
        problems.append("adversary: malicious nodes are simulation-only (sim/adversary.py)")
    pubsub = scenario.pubsub
    if pubsub is not None:
        if pubsub.attackers:
            problems.append("pubsub.attackers: attacker nodes are simulation-only")
        if pubsub.discovery != "dht":
            problems.append("pubsub.discovery: real nodes find pub-sub peers through the DHT only")
        if pubsub.max_peers < scenario.nodes.count - 1:
            # a real node's connections carry both, so its pub-sub peer limit also turns away DHT requests
            problems.append(f"pubsub.max_peers: real nodes refuse connections beyond it, DHT requests included; "
                            f"emulation needs at least nodes - 1 ({scenario.nodes.count - 1})")
        for name in ("router", "score"):
            if getattr(pubsub, name) != type(getattr(pubsub, name))():
                problems.append(f"pubsub.{name}: real nodes run the default parameters")
    return problems


def access_link_loss_pct(loss: float) -> float | None:
    """The packet loss (percent, each direction) of a host's access link for the model's message loss.

    The model loses a message with probability ``loss``; here every packet crosses two access links (the
    sender's and the receiver's), each losing q, with (1 - q)² = 1 - loss. A message of several packets is
    lost more often, and the transports retransmit where the model's message is simply gone."""
    return round(100 * (1 - math.sqrt(1 - loss)), 4) if loss else None


def build_topology(plan: Plan, kind: str) -> tuple[Any, dict[str, Any]]:
    """The Mininet topology, and where each host went (for the manifest): host i is node i, in its region of
    the plan (as in simulation)."""
    from topologies.topos import FlatLan, Graph, Regions

    scenario, n = plan.scenario, plan.n
    access_loss = access_link_loss_pct(scenario.network.loss)
    placement: dict[str, Any] = {"access_link_loss_pct": access_loss} if access_loss else {}
    if kind == "lan":
        return FlatLan(n, loss=access_loss), placement
    names = plan.region_names
    regions = [plan.region(i) for i in range(n)]
    used = sorted(set(regions), key=names.index)
    rtt = {(a, b): plan.rtt_ms[names.index(a)][names.index(b)] for a in used for b in used}
    placement |= {"regions": {f"h{i + 1}": r for i, r in enumerate(regions)},
                  "model_rtt_ms": {f"{a}|{b}": v for (a, b), v in rtt.items()}}
    if scenario.network.latency.model == "graph":  # a router per vertex, a link per edge, the model's paths
        placement["graph"] = str(scenario.graph_path)
        return Graph.of(scenario_graph(scenario), regions, access_loss), placement
    # The model's RTT within a region comes from the access links (a quarter of it one way on each), and
    # between regions the router link makes up the rest: host-to-host RTTs equal the model's (jitter aside).
    access = {r: rtt[(r, r)] / 4 for r in used}
    delays = {(a, b): max(0.0, rtt[(a, b)] / 2 - access[a] - access[b]) for a in used for b in used if a != b}
    topo = Regions(n, used, delays, host_regions=regions, access_ms=access, access_loss=access_loss)
    return topo, placement


def pin_neighbours(net: Any, run_dir: Path) -> None:
    """Permanent IPv6 neighbour entries between the end hosts of each LAN (same /64).

    With 35 or more hosts joining at once, neighbour discovery under the nodes' connection storm fails often
    enough to drop packets (Ip6OutDiscards, TCP retransmission timeouts), which no real network of that size
    suffers; static entries take NDP out of the measurement. Routers are still found by NDP."""
    by_prefix: dict[str, list[tuple[str, str, str]]] = {}
    for name in net.hosts:
        node = net.node(name)
        ip6 = net.ip6(name)
        intf = node.defaultIntf()
        by_prefix.setdefault(ip6.rsplit(":", 1)[0], []).append((name, ip6, intf.MAC()))
    batch_dir = run_dir / "nodes"
    batch_dir.mkdir(exist_ok=True)
    for members in by_prefix.values():
        for name, _, _ in members:
            intf = net.node(name).defaultIntf().name
            path = batch_dir / f"neigh-{name}.batch"
            path.write_text("".join(f"neigh replace {ip} lladdr {mac} dev {intf} nud permanent\n"
                                    for other, ip, mac in members if other != name))
            net.cmd(name, f"ip -batch {path}")
            path.unlink()


def _manifest(scenario: Any, status: str, **extra: Any) -> dict[str, Any]:
    return rundir.manifest(scenario, "emulation", "emulate", status, PACKAGES, **extra)


def run(scenario: Any, run_dir: Path, topology: str, keep: bool, console: Console, transport: str = "quic",
        log_level: str = "warning") -> None:
    from emulator.driver import Emulation
    from topologies.net import EmulatedNetwork
    from topologies.probe import probe
    from topologies.registry import remove_dead_runs

    removed = remove_dead_runs()
    if removed:
        console.print(removed, highlight=False, soft_wrap=True)
    capabilities = probe()
    plan = Plan(scenario)
    topo, placement = build_topology(plan, topology)
    manifest = _manifest(scenario, "starting", topology=topology, transport=transport, placement=placement,
                         capabilities={name: {"available": c.available, "detail": c.detail}
                                       for name, c in capabilities.items()})
    write_json(run_dir / "manifest.json", manifest)
    net = EmulatedNetwork(topo, capabilities)
    events = EventWriter(run_dir / "events.csv")
    status, perf = "interrupted", None
    try:
        console.print(f"building the network: {scenario.nodes.count} hosts, {topology} topology")
        net.start()
        pin_neighbours(net, run_dir)
        manifest.update(links=net.links_report(), status="running")
        write_json(run_dir / "manifest.json", manifest)
        columns = (TextColumn(f"[bold]{scenario.name}[/] {scenario.nodes.count} real nodes"), BarColumn(),
                   TextColumn("{task.completed:>6.1f}/{task.total:.0f} s"), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("emu", total=scenario.warmup + scenario.duration)
            emulation = Emulation(scenario, plan, net, events, run_dir,
                                  lambda now, end: progress.update(task, completed=now, total=end),
                                  transport, log_level)
            perf = asyncio.run(emulation.run())
        status = "completed"
        if keep:
            from mininet.cli import CLI

            console.print("--keep: the network stays up; type 'exit' to tear it down")
            CLI(net.net)
    finally:
        events.close()
        net.stop()
        manifest.update(status=status, perf=perf)
        write_json(run_dir / "manifest.json", manifest)


def main(argv: list[str] | None = None) -> int:
    with sigterm_as_interrupt():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="emulate", description="Run a scenario with real nodes in Mininet.")
    add_run_arguments(parser, "scenario YAML file (the one simulate takes)")
    parser.add_argument("--topology", choices=["regions", "lan"], default="regions",
                        help="regions: routed IPv6 regions with the latency model's delays (default); lan: one LAN")
    parser.add_argument("--transport", choices=["quic", "tcp"], default="quic",
                        help="what nodes bootstrap over and prefer (both are listened on); default quic")
    parser.add_argument("--node-log", choices=["debug", "info", "warning", "error"], default="warning",
                        help="log level of each node's nodes/<i>/node.log (default warning)")
    parser.add_argument("--keep", action="store_true", help="leave the network up with a Mininet CLI after the run")
    args = parser.parse_args(argv)
    console = Console()

    def complain(message: str) -> None:
        print(f"emulate: {message}", file=sys.stderr)

    run_dir = None
    try:
        if sys.platform != "linux" or os.geteuid() != 0:
            raise UsageError("needs root on Linux (network namespaces); try sudo, or the Vagrant VM (README)")
        try:
            import mininet  # noqa: F401
        except ImportError:
            raise UsageError("Mininet is not installed: run scripts/provision.sh (installs the emu extra)") from None
        scenario = scenario_to_run(args)
        if scenario.sweep is not None and args.nodes is None:
            raise UsageError("sweeps are simulation-only; pick one size with --nodes")
        problems = unsupported(scenario)
        if problems:
            raise UsageError("this scenario uses what emulation cannot do yet: " + "; ".join(problems))
        scenario_matrix(scenario)  # the latency model's files: read and checked before anything is made
        check_emulation(scenario)
        run_dir = run_dir_under(args.out, f"{scenario.name}-emu")
        console.print(f"run directory: {run_dir}")
        run(scenario, run_dir, args.topology, args.keep, console, args.transport, args.node_log)
        report_run(run_dir, console)
        return 0
    except (ScenarioError, MatrixError, UsageError) as exc:
        complain(str(exc))
        return 2
    except KeyboardInterrupt:
        complain(f"interrupted; the network is torn down and events so far are in {run_dir}")
        if run_dir is not None and (run_dir / "events.csv").exists():
            try:
                report_run(run_dir, console)  # what was measured before the interruption
            except Exception as exc:  # noqa: BLE001 - the events are safe; the report is a bonus
                complain(f"no report for the partial run: {exc}")
        return 130
    except RuntimeError as exc:
        complain(f"{exc}; the network is torn down; logs are in {run_dir}/nodes/")
        return 1


if __name__ == "__main__":
    sys.exit(main())
