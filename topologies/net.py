"""Build and run a Mininet network from a topology in topologies/topos.py, with honest link emulation.

``EmulatedNetwork(topo, capabilities=None)`` (capabilities: ``topologies.probe.probe()``, probed when None):

* switches are Linux bridges made with iproute2 (STP off, multicast snooping off) by default; Open vSwitch
  bridges (standalone, no controller) with ``switch="ovs"`` (an error when the probe found no working OVS)
  or ``switch="auto"`` (OVS when present, else bridges). No controller either way.
* link delay/jitter/loss/rate per direction as ``topologies.shaping`` plans it for this kernel (netem, else a
  user-space relay node in the link, else recorded as not emulated); ``links_report()`` says for every link
  which method emulates each property, with the values.
* every namespace, bridge, interface and Mininet shell carries the run's tag (``topologies.registry``); processes
  started by ``popen`` carry the run's environment mark and die with the Python process that started them
  (PR_SET_PDEATHSIG; from the main thread). ``stop()`` (idempotent; also from ``with``, atexit, SIGTERM/SIGHUP,
  and Ctrl-C through KeyboardInterrupt) removes everything; ``cleanup()`` removes what a killed run (SIGKILL)
  left behind, skipping runs whose owner is still alive. ``python -m topologies.net cleanup [--force]`` does the
  same from a shell.
* ``net.bridge.bridge-nf-call-{ip6tables,iptables,arptables}`` are set to 0 while any run is live and restored
  by the last one.

Interface: ``start()``, ``stop()``, ``hosts`` (end hosts h1..hN in order; no routers, relays), ``routers``,
``ip6(name)``, ``ip4(name)``, ``popen(name, argv, **kw)`` -> ``subprocess.Popen``, ``cmd(name, command)``,
``node(name)`` (the Mininet node), ``links_report()``, ``summary()``, ``capabilities``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from topologies import registry
from topologies.ipv6 import BRIDGE_NF_KEYS, BridgeNf, global_addresses6, prepare_namespace
from topologies.probe import Capability, probe
from topologies.registry import ENV_MARK, NETNS_DIR, PREFIX, EmulationError, cleanup, kill, sh
from topologies.shaping import LinkPlan, plan_links, relay_options, tc_commands

IFNAMSIZ = 15
REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["EmulatedNetwork", "EmulationError", "cleanup"]


_LIBC = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _load_libc() -> None:
    global _LIBC
    if _LIBC is None:
        with contextlib.suppress(OSError):
            _LIBC = ctypes.CDLL(None, use_errno=True)


# -- switches --------------------------------------------------------------------------------------------------

def _switch_classes():
    from mininet.node import OVSBridge, Switch

    class IpBridge(Switch):
        """A Linux bridge made with iproute2 (no brctl/ifconfig): STP off, no forward delay, no multicast
        snooping, IPv6 off on the bridge and its ports in the root namespace (keeps the root stack quiet)."""

        def start(self, _controllers):
            name = self.name
            self.cmd(f"ip link del {name} 2>/dev/null")
            out = self.cmd(f"ip link add name {name} type bridge stp_state 0 forward_delay 0 mcast_snooping 0"
                           f" && echo __ok")
            if "__ok" not in out:
                raise EmulationError(f"cannot create bridge {name}: {out.strip()}")
            ports = [str(i) for i in self.intfList() if str(i) != "lo" and self.name in str(i)]
            self.cmd(" ; ".join([f"sysctl -q -w net.ipv6.conf.{name}.disable_ipv6=1 >/dev/null"]
                                + [f"sysctl -q -w net.ipv6.conf.{p}.disable_ipv6=1 >/dev/null" for p in ports]))
            for port in ports:
                out = self.cmd(f"ip link set {port} master {name} && ip link set {port} up && echo __ok")
                if "__ok" not in out:
                    raise EmulationError(f"cannot add {port} to bridge {name}: {out.strip()}")
            self.cmd(f"ip link set {name} up")

        def stop(self, deleteIntfs=True):  # noqa: N803 (Mininet's signature)
            self.cmd(f"ip link del {self.name} 2>/dev/null")
            super().stop(deleteIntfs)

        def connected(self):
            return True

    return IpBridge, OVSBridge


# -- the network -----------------------------------------------------------------------------------------------

class EmulatedNetwork:
    """A running Mininet network built from a ``Topo``; see the module docstring."""

    def __init__(self, topo, capabilities: dict[str, Capability] | None = None, *, switch: str = "bridge",
                 use_relay: bool = True, force_relay: bool = False, seed: int | None = None,
                 log_dir: str | os.PathLike | None = None, relay_python: str | None = None):
        if switch not in ("auto", "bridge", "ovs"):
            raise ValueError("switch must be 'auto', 'bridge' or 'ovs'")
        self.topo = topo
        self.capabilities = capabilities if capabilities is not None else probe()
        self.switch_kind = switch
        self.use_relay = use_relay
        self.force_relay = force_relay  # use the relay even where netem works (for testing it)
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
        self._own_log_dir = log_dir is None
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.relay_python = relay_python or sys.executable
        self.tag: str | None = None
        self.net = None
        self._nodes: dict[str, object] = {}
        self._plans: list[LinkPlan] = []
        self._procs: list[subprocess.Popen] = []
        self._relays: dict[str, subprocess.Popen] = {}
        self._bridge_nf = BridgeNf(BRIDGE_NF_KEYS)
        self._started = False
        self._stopped = False
        self._lock = threading.RLock()
        self.switch_type = None
        infos = {name: topo.nodeInfo(name) for name in topo.hosts()}
        self.routers = _natural([n for n, i in infos.items() if i.get("router")])
        self.hosts: list[str] = _natural([n for n, i in infos.items() if not i.get("router")])

    # -- public interface ---------------------------------------------------------------------------------------

    def __enter__(self) -> EmulatedNetwork:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def node(self, name: str):
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"no node {name!r} in this network (started: {self._started})") from None

    def ip6(self, name: str) -> str:
        value = self.topo.nodeInfo(name).get("ip6") if name in self.topo.nodes() else None
        if value:
            return (value if isinstance(value, str) else value[0]).split("/")[0]
        found = global_addresses6(self.node(name))
        if not found:
            raise KeyError(f"{name} has no global IPv6 address")
        return found[0]

    def ip4(self, name: str) -> str:
        value = self.topo.nodeInfo(name).get("ip") if name in self.topo.nodes() else None
        if value:
            return value.split("/")[0]
        return self.node(name).IP()

    def mn_name(self, name: str) -> str:
        if self.tag is None:
            raise EmulationError("network not started")
        return f"{PREFIX}{self.tag}{name}"

    def cmd(self, name: str, command: str) -> str:
        """Run a shell command in the node's namespace (through its Mininet shell) and return its output."""
        return self.node(name).cmd(command)

    def popen(self, name: str, argv: list[str], *, env: dict | None = None, die_with_parent: bool = True,
              **kwargs) -> subprocess.Popen:
        """Start ``argv`` inside the namespace of node ``name``; returns the ``subprocess.Popen``.

        The process gets its own session (``mnexec -d``), the run's environment mark, and — when called from
        the main thread — PR_SET_PDEATHSIG=SIGTERM, so it dies with this Python process even on SIGKILL. It is
        stopped (SIGTERM to its process group, SIGKILL after 2 s) by ``stop()``. Other keyword arguments go
        to ``subprocess.Popen`` unchanged (stdout, stderr, cwd, …).
        """
        if not self._started or self._stopped:
            raise EmulationError("network is not running")
        node = self.node(name)
        full_env = dict(os.environ if env is None else env)
        full_env[ENV_MARK] = self._mark
        full_env["P2PE_NODE"] = name
        preexec = None
        if die_with_parent and threading.current_thread() is threading.main_thread():
            _load_libc()
            preexec = _die_with_parent
        proc = subprocess.Popen(["mnexec", "-da", str(node.pid), *argv], env=full_env, preexec_fn=preexec,
                                **kwargs)
        self._procs.append(proc)
        return proc

    def links_report(self) -> list[dict]:
        """How each link's properties are emulated: one dict per topology link, JSON-serialisable."""
        return [plan.report() for plan in self._plans]

    def summary(self) -> dict:
        """For a run manifest: the run tag, switch type, hosts, routers, capabilities and ``links_report()``."""
        return {"tag": self.tag, "switch": self.switch_type, "hosts": list(self.hosts),
                "routers": list(self.routers), "relay_seed_base": self.seed,
                "capabilities": {name: {"available": cap.available, "detail": cap.detail}
                                 for name, cap in self.capabilities.items()},
                "links": self.links_report()}

    # -- start --------------------------------------------------------------------------------------------------

    def start(self) -> EmulatedNetwork:
        with self._lock:
            if self._started:
                raise EmulationError("network already started")
            if self._stopped:
                raise EmulationError("a stopped network cannot be restarted; make a new one")
            self._check_environment()
            self._allocate_tag()
            registry.register(self)
            self._started = True
            try:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                registry.disable_bridge_nf(self._bridge_nf)
                self._plans = plan_links(self.topo, self.capabilities, use_relay=self.use_relay,
                                         force_relay=self.force_relay)
                self._build()
                self._apply_qdiscs()
                self._start_relays()
            except BaseException:
                self.stop()
                raise
            return self

    def _check_environment(self) -> None:
        if sys.platform != "linux":
            raise EmulationError("emulation needs Linux")
        if os.geteuid() != 0:
            raise EmulationError("emulation needs root (network namespaces)")
        caps = self.capabilities
        for needed in ("mininet", "veth"):
            cap = caps.get(needed)
            if cap is not None and not cap.available:
                raise EmulationError(f"{needed} not available: {cap.detail}")
        ovs = caps.get("ovs", Capability(False, "not probed"))
        bridge = caps.get("bridge", Capability(True, "assumed"))
        if self.switch_kind == "ovs" and not ovs.available:
            raise EmulationError(f"Open vSwitch requested but not available: {ovs.detail}")
        use_ovs = self.switch_kind == "ovs" or (self.switch_kind == "auto" and ovs.available)
        if not use_ovs and not bridge.available and self.topo.switches():
            raise EmulationError(f"no Linux bridge support: {bridge.detail}")
        self.switch_type = "ovs" if use_ovs else "bridge"

    def _allocate_tag(self) -> None:
        def state(tag: str) -> dict:
            if self.log_dir is None:  # relay logs; removed with the run (also by cleanup() after a crash)
                self.log_dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{tag}-"))
            return {"topology": type(self.topo).__name__, "started": time.time(), "log_dir": str(self.log_dir),
                    "own_log_dir": self._own_log_dir}

        self.tag = registry.claim_tag(state)
        self._mark = f"{self.tag}:{os.getpid()}:{registry.proc_start_time(os.getpid())}"

    def _build(self) -> None:
        from mininet.link import Link
        from mininet.net import Mininet

        from topologies.topos import DualStackHost, RelayHost

        bridge_cls, ovs_cls = _switch_classes()
        Mininet.inited = True  # skip Mininet.init(): it raises system-wide sysctls (fixLimits) we do not need
        net = Mininet(topo=None, build=False, controller=None, switch=ovs_cls if self.switch_type == "ovs"
                      else bridge_cls, host=DualStackHost, link=Link, autoSetMacs=False, waitConnected=False,
                      inNamespace=False)
        self.net = net
        max_port = {}
        for plan in self._plans:
            for name, port in ((plan.node1, plan.port1), (plan.node2, plan.port2)):
                max_port[name] = max(max_port.get(name, 0), port or 0)
        for name in list(self.topo.hosts()) + [p.relay for p in self._plans if p.relay]:
            self._check_name(name, max_port.get(name, 1))
        for name in self.topo.switches():
            self._check_name(name, max_port.get(name, 1))

        # Hosts (and routers) first: namespace-wide sysctls before any interface exists.
        for name in self.topo.hosts():
            info = dict(self.topo.nodeInfo(name))
            cls = info.pop("cls", None) or DualStackHost
            node = net.addHost(self.mn_name(name), cls=cls, **info)
            self._adopt(name, node)
            prepare_namespace(node, router=bool(info.get("router")))
        for plan in self._plans:
            if plan.relay:
                node = net.addHost(self.mn_name(plan.relay), cls=RelayHost, ip=None)
                self._adopt(plan.relay, node)
                prepare_namespace(node, ipv6=False)
        for index, name in enumerate(self.topo.switches(), start=1):
            info = dict(self.topo.nodeInfo(name))
            info.pop("cls", None)
            info["dpid"] = f"{(ord(self.tag) << 24) | index:016x}"
            node = net.addSwitch(self.mn_name(name), **info)
            self._nodes[name] = node

        switches = set(self.topo.switches())
        for plan in self._plans:
            p1 = dict(plan.params1)
            p2 = dict(plan.params2)
            # Switch ports come up only once the bridge has turned IPv6 off on them.
            if plan.node1 in switches:
                p1["up"] = False
            if plan.node2 in switches:
                p2["up"] = False
            if plan.relay:
                a = net.addLink(self.mn_name(plan.node1), self.mn_name(plan.relay), port1=plan.port1, port2=0,
                                params1=p1)
                b = net.addLink(self.mn_name(plan.relay), self.mn_name(plan.node2), port1=1, port2=plan.port2,
                                params2=p2)
                plan.interfaces = [str(a.intf1), str(a.intf2), str(b.intf1), str(b.intf2)]
            else:
                link = net.addLink(self.mn_name(plan.node1), self.mn_name(plan.node2), port1=plan.port1,
                                   port2=plan.port2, params1=p1, params2=p2)
                plan.interfaces = [str(link.intf1), str(link.intf2)]
        net.build()  # configures hosts: DualStackHost.config sets addresses, routes, forwarding, NAT
        net.start()  # creates the bridges
        if self.switch_type == "ovs":  # ports come up here, after IPv6 is off on them (as IpBridge does)
            for name in switches:
                node = self._nodes[name]
                for intf in [node.name] + [str(i) for i in node.intfList() if str(i) != "lo"]:
                    node.cmd(f"sysctl -q -w net.ipv6.conf.{intf}.disable_ipv6=1 >/dev/null 2>&1; "
                             f"ip link set {intf} up")

    def _check_name(self, name: str, max_port: int) -> None:
        longest = len(self.mn_name(name)) + len(f"-eth{max_port}")
        if longest > IFNAMSIZ:
            raise EmulationError(f"node name {name!r} too long: interface names would exceed {IFNAMSIZ} characters")

    def _adopt(self, name: str, node) -> None:
        self._nodes[name] = node
        mn = self.mn_name(name)
        code, out = sh(["ip", "netns", "attach", mn, str(node.pid)])
        if code != 0:
            raise EmulationError(f"ip netns attach {mn} {node.pid}: {out}")

    def _intf_of(self, plan: LinkPlan, name: str) -> tuple[object, str]:
        """The Mininet node and interface name of ``name``'s end of the link (for a relay: both interfaces)."""
        node = self._nodes[name]
        prefix = self.mn_name(name) + "-eth"
        ends = [i for i in plan.interfaces if i.startswith(prefix)]
        return node, ends

    def _apply_qdiscs(self) -> None:
        for plan in self._plans:
            for name in plan.qdisc_on:
                node, intfs = self._intf_of(plan, name)
                for intf in intfs:
                    for command in tc_commands(plan, intf):
                        out = node.cmd(f"{command} && echo __ok")
                        if "__ok" not in out:
                            raise EmulationError(f"{name}: `{command}` failed: {out.strip()}")

    def _start_relays(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        pending = []
        for plan in self._plans:
            if not plan.relay:
                continue
            _node, intfs = self._intf_of(plan, plan.relay)
            eth0, eth1 = sorted(intfs, key=lambda i: int(i.rsplit("eth", 1)[1]))
            seed = (self.seed * 1000 + plan.index) % 2**32
            argv = [self.relay_python, "-m", "topologies.relay", eth0, eth1, *relay_options(plan, seed)]
            log = self.log_dir / f"relay-{plan.relay}.log"
            with open(log, "wb") as stderr:
                proc = self.popen(plan.relay, argv, env=env, stdout=subprocess.PIPE, stderr=stderr,
                                  cwd=str(REPO_ROOT))
            self._relays[plan.relay] = proc
            plan.relay_info = {"node": plan.relay, "namespace": self.mn_name(plan.relay), "pid": proc.pid,
                               "argv": argv[1:], "seed": seed, "log": str(log)}
            pending.append((plan, proc, log))
        deadline = time.monotonic() + 10.0
        for plan, proc, log in pending:
            line = _readline(proc.stdout, deadline)
            if line.strip() != "ready":
                with contextlib.suppress(OSError):
                    detail = log.read_text().strip()
                raise EmulationError(f"relay {plan.relay} did not start: {detail or line or 'timeout'}")

    # -- stop ---------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything this network started; safe to call more than once, and after a failed start."""
        with self._lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
            try:
                self._stop_processes()
                shells = {getattr(n, "pid", None) for n in self._nodes.values()}
                self._kill_namespace_processes(shells)
                # Mininet's own stop() deletes every interface through the node shells, one command each;
                # ending the shells and deleting the namespaces (below) removes the same, much faster.
                for node in self._nodes.values():
                    with contextlib.suppress(Exception), _quiet_mininet():
                        node.terminate()
            finally:
                registry.release(self.tag)
                registry.unregister(self)
                if self._own_log_dir:  # release() deleted the temporary log directory
                    for plan in self._plans:
                        plan.relay_info.pop("log", None)

    def _stop_processes(self) -> None:
        procs = [p for p in self._procs if p.poll() is None]
        for proc in procs:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2.0)
        for plan in self._plans:
            proc = self._relays.get(plan.relay or "")
            if proc is None:
                continue
            if proc.stdout:
                proc.stdout.close()
            plan.relay_info["exit_code"] = proc.returncode
            with contextlib.suppress(OSError, ValueError, IndexError):
                lines = Path(plan.relay_info["log"]).read_text().strip().splitlines()
                plan.relay_info["stats"] = json.loads(lines[-1])

    def _kill_namespace_processes(self, protect: set) -> None:
        victims = set()
        for name in self._nodes:
            mn = self.mn_name(name)
            if not (NETNS_DIR / mn).exists():
                continue
            code, out = sh(["ip", "netns", "pids", mn])
            if code == 0:
                victims |= {int(p) for p in out.split() if p.isdigit() and int(p) not in protect}
        kill(victims)


def _readline(stream, deadline: float) -> str:
    import select

    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(stream.fileno(), 1)
        if not chunk:
            break
        buf += chunk
        if chunk == b"\n":
            break
    return buf.decode(errors="replace")


@contextlib.contextmanager
def _quiet_mininet():
    from mininet.log import lg

    level = lg.getEffectiveLevel()
    lg.setLevel(40)  # errors only
    try:
        yield
    finally:
        lg.setLevel(level)


def _natural(names) -> list[str]:
    return sorted(names, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m topologies.net")
    sub = parser.add_subparsers(dest="command", required=True)
    clean = sub.add_parser("cleanup", help="remove leftovers of killed emulation runs")
    clean.add_argument("--force", action="store_true", help="also remove runs whose owner is still alive")
    args = parser.parse_args(argv)
    if args.command == "cleanup":
        print(json.dumps(cleanup(force=args.force), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
