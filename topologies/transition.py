"""Emulated access networks, one Mininet topology per IPv6 transition mechanism (also ``mn --custom``).

``Access(mechanism)``: ``h1`` the host behind the mechanism, ``i1`` its infrastructure element (AFTR with
NAT44, 6rd BR, Teredo server and relay, ISATAP router, 6to4 relay, MAP BR, PLAT with NAT64 and DNS64), ``h2``
a far host that has only the family the mechanism carries, so everything between h1 and h2 crosses it. 6over4
has no infrastructure: h1 and h2 share a multicast-capable IPv4 segment (switch ``s1``) and both run a 6over4
endpoint. The endpoints are ``p2pnode.tunnels`` data planes (user space: this kernel has no sit, ip6tnl or
Jool), started by ``TunnelHost`` in each host's namespace as Mininet configures it and stopped with the host.

Address plan (as tests/tunnels/scenarios.py's): the access link h1-i1, the far link i1-h2; ``3fff:ffff::/64``
(RFC 9637) the native IPv6 beyond the element (far host ``::99``), ``198.51.100.0/24`` the IPv4 Internet (far
host ``.80``), ``2001:db8::/32`` the operator's own. Under plain Mininet:

    mn --custom topologies/transition.py --topo dslite --switch lxbr --controller none --test none

``topologies/access.py`` describes each access network once (``plan(mechanism, slot)``); the zoo
(``topologies/zoo.py``) builds the same ones side by side. The host is not told its mechanism: it runs
``p2pnode.tunnels.select`` with what its network provisions, and its own selection starts the host side.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

_HERE = Path(globals().get("__file__") or sys._getframe().f_code.co_filename).resolve()  # noqa: SLF001
if __name__ != "topologies.transition" and str(_HERE.parent.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent.parent))

from mininet.topo import Topo  # noqa: E402

from p2pnode.transition.profiles import MECHANISMS  # noqa: E402
from p2pnode.tunnels.launch import plane_argv, read_json_line  # noqa: E402
from topologies.access import PLANS, TRANSLATORS, Plan  # noqa: E402
from topologies.topos import DualStackHost  # noqa: E402

REPO_ROOT = _HERE.parent.parent
FAR6, FAR4 = "3fff:ffff::99", "198.51.100.80"
READY_TIMEOUT = 10.0


# -- the data planes in a host ----------------------------------------------------------------------------------

@dataclass
class RunningPlane:
    name: str  # "mechanism role"
    proc: subprocess.Popen
    ready: dict
    lines: list[dict] = field(default_factory=list)  # what it printed after the ready line
    final: dict | None = None  # its counters, once stopped


class TunnelHost(DualStackHost):
    """A ``DualStackHost`` that runs data planes: ``planes`` is a list of ``{"spec", "setup", "tun"}`` (``spec``
    for ``p2pnode.tunnels.spec.build``; ``setup`` commands with ``TUN`` for the device and ``IF`` for the host's
    first interface), started when Mininet configures the host; ``services`` other processes (``python``
    arguments, such as a DNS64); ``offer`` what the access network provisions: ``start_agent()`` (after the
    network started) runs the host's own selection with it, ``wait_agent()`` waits for its choice.
    ``stop_planes()`` (also at ``terminate``) collects every plane's counters.
    """

    def config(self, planes=(), services=(), offer=None, mechanism=None, forward=False, **params):
        result = super().config(**params)
        self.mechanism, self.offer = mechanism, offer
        self.agent: subprocess.Popen | None = None
        self.selection: dict | None = None
        if forward:  # a translator writes the packets it made into its TUN device: the kernel forwards them
            self.cmd("sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1")
        self.planes: list[RunningPlane] = []
        for plane in planes:
            self.start_plane(plane)
        for argv in services:
            self.start_service(argv)
        return result

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["P2PNODE_PURE"] = "1"  # the planes need none of the compiled modules
        return self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(REPO_ROOT))

    def start_plane(self, plane: dict) -> RunningPlane:
        setup = [c.replace("IF", str(self.defaultIntf())) for c in plane.get("setup", ())]
        proc = self._spawn(plane_argv(plane["spec"], setup, plane.get("tun", "tun0")))
        ready = read_json_line(proc.stdout, time.monotonic() + READY_TIMEOUT)
        name = f"{plane['spec']['mechanism']} {plane['spec'].get('role', 'host')}"
        if ready is None or "ready" not in ready:
            proc.kill()
            raise RuntimeError(f"{self.name}: data plane {name} did not start: "
                               f"{proc.stderr.read().decode(errors='replace').strip() or 'no ready line'}")
        running = RunningPlane(name, proc, ready)
        self.planes.append(running)
        return running

    def start_service(self, argv: list[str]) -> None:
        proc = self._spawn([sys.executable, *argv])
        ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
        if not ready or not proc.stdout.readline():
            proc.kill()
            raise RuntimeError(f"{self.name}: {' '.join(argv)} did not start: {proc.stderr.read().decode()}")

    def start_agent(self) -> None:
        self.agent = self._spawn([sys.executable, "-m", "p2pnode.tunnels.select", json.dumps(self.offer)])

    def wait_agent(self, timeout: float = 30.0) -> dict:
        """The selection's outcome (``selected``, ``fallbacks``, ``selection_time``, ``tried``, ``probes``)."""
        deadline, failed = time.monotonic() + timeout, []
        while True:
            line = read_json_line(self.agent.stdout, deadline)
            if line is None:
                raise RuntimeError(f"{self.name}: its selection did not finish in {timeout:g} s "
                                   f"(failed probes: {failed}); {self.agent.stderr.read1().decode(errors='replace')}")
            if "probe_failed" in line:
                failed.append(line)
            if "selected" in line:
                self.selection = {**line, "failed": failed}
                return self.selection

    @property
    def data_planes(self) -> list[str]:
        """What carries each plane, as it said (``user-space``, or which kernel device it could have used)."""
        chosen = [f"{self.selection['selected']}: {d}" for d in self.selection["data_planes"]] if self.selection else []
        return chosen + [f"{p.name}: {p.ready.get('data_plane', '?')}" for p in self.planes]

    def stop_planes(self) -> list[RunningPlane]:
        if self.agent is not None and self.agent.poll() is None:  # the host's own planes, through its agent
            self.agent.send_signal(signal.SIGTERM)
            line = read_json_line(self.agent.stdout, time.monotonic() + 10.0)
            while line is not None and "stopped" not in line:
                line = read_json_line(self.agent.stdout, time.monotonic() + 10.0)
            for name, final in (line or {}).get("stopped", {}).items():
                self.planes.append(RunningPlane(name, self.agent, {}, final=final or {"stats": {}, "drops": {}}))
        for plane in self.planes:
            if plane.proc.poll() is None:
                with contextlib.suppress(OSError):
                    plane.proc.send_signal(signal.SIGTERM)
        for plane in self.planes:
            if plane.final is not None:
                continue
            try:
                out, _ = plane.proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                plane.proc.kill()
                out, _ = plane.proc.communicate()
            for line in out.decode(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    plane.lines.append(json.loads(line))
            plane.final = next((x for x in reversed(plane.lines) if "stats" in x), {"stats": {}, "drops": {}})
        return list(self.planes)

    def terminate(self):
        with contextlib.suppress(Exception):
            self.stop_planes()
        super().terminate()


# -- one access network per mechanism ---------------------------------------------------------------------------

class Access(Topo):
    """h1 behind ``mechanism``, its element i1, the far host h2 (single-stack in the carried family). 6over4:
    h1 and the 6over4 router i1 on one multicast segment (switch s1)."""

    def build(self, mechanism="dslite", delay=None, blackhole=False, **_ignored):
        """``blackhole``: the element runs none of its planes, so it drops what the mechanism sends it."""
        if mechanism not in PLANS:
            raise ValueError(f"no access network for {mechanism!r}; one of {', '.join(PLANS)}")
        plan = self.plan = PLANS[mechanism]
        link = {"delay": delay} if delay else {}
        add_access(self, "h1", "i1", plan, link, blackhole=blackhole)
        if plan.carried == "6":
            far, far_own, far_routes = [f"{plan.core6}/64"], [f"{FAR6}/64"], [("default", plan.core6)]
        else:
            far, far_own, far_routes = [f"{plan.core4}/24"], [f"{FAR4}/24"], [("default", plan.core4)]
        self.addHost("h2", cls=TunnelHost, ip=None, routes=far_routes)
        key = "ip6" if plan.carried == "6" else "ip4"
        self.addLink("i1", "h2", params1={key: far}, params2={key: far_own})


def add_access(topo: Topo, host: str, element: str, plan: Plan, link: dict, routes=(), blackhole: bool = False,
               **host_params) -> None:
    """The host and its element with the access link between them (the element's first interface); 6over4's
    link is a switch, its multicast segment. The host gets the offer, the element its planes and services."""
    key = "ip4" if plan.access == "4" else "ip6"
    offer = {**plan.offer, "probe": {plan.carried: plan.probe}}
    topo.addHost(host, cls=TunnelHost, ip=None, ip6=None, routes=plan.host_routes, offer=offer,
                 mechanism=plan.mechanism, forward=plan.mechanism in TRANSLATORS, **host_params)
    topo.addHost(element, cls=TunnelHost, ip=None, router=True, routes=[*plan.element_routes, *routes],
                 planes=[] if blackhole else plan.element_planes, services=plan.services)
    if plan.mechanism == "6over4":
        segment = topo.addSwitch(f"s{element}")
        topo.addLink(element, segment, params1={key: plan.element})
        topo.addLink(host, segment, params1={key: plan.host}, **link)
    else:
        topo.addLink(host, element, params1={key: plan.host}, params2={key: plan.element}, **link)


def start_access(net, timeout: float = 30.0) -> dict[str, dict]:
    """Start every host's own selection (after ``net.start()``: its probes cross the network) and wait until
    each has chosen; {host: the selection's outcome} (an ``EmulatedNetwork`` or a Mininet)."""
    names = net.hosts + net.routers if hasattr(net, "routers") else [h.name for h in net.hosts]
    nodes = {name: net.node(name) if hasattr(net, "routers") else net.get(name) for name in names}
    agents = {name: node for name, node in nodes.items() if isinstance(node, TunnelHost) and node.offer}
    for node in agents.values():
        node.start_agent()
    return {name: node.wait_agent(timeout) for name, node in agents.items()}


def _access_of(mechanism: str):
    return lambda **kw: Access(mechanism, **kw)


topos = {name: _access_of(name) for name in PLANS}
topos["access"] = Access


# -- what a packet crossing the mechanism measures --------------------------------------------------------------

def measure(net, mechanism: str, size: int = 1000, count: int = 5, python: str | None = None) -> dict:
    """Overhead, MTU and RTT from h1 across its mechanism, measured on the running network ``net``.

    Overhead: ``count`` pings of ``size`` bytes, the most common length of what h1 sends on its access link
    less the packet's length on the TUN device (both at the network layer, ``topologies.capture``). MTU: the
    TUN device opened to 1500 so that the data plane alone decides, a ping of the largest packet a 1500-byte
    access link takes with DF set; the ICMP error's MTU, checked by a ping of exactly that size crossing.
    """
    plan, h1 = PLANS[mechanism], net.node("h1")
    far = FAR6 if plan.carried == "6" else FAR4
    header = 40 if plan.carried == "6" else 20
    access_if = str(h1.defaultIntf())
    cap = net.popen("h1", [python or sys.executable, "-m", "topologies.capture", access_if, "tun0", "--seconds",
                           str(1.0 + 0.2 * count)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO_ROOT))
    _ping(net, far, 56, 1)  # neighbour discovery and NAT state first: the figures are the steady state's
    assert cap.stdout.readline().strip() == b"ready", cap.stderr.read()
    rtt = _ping(net, far, size, count, interval=0.2)
    counts = json.loads(cap.stdout.readline())
    cap.wait(5)
    inner = size + 8 + header
    outer = {int(k): v for k, v in counts[access_if]["out"].items() if inner <= int(k) <= inner + 100}
    overhead = max(outer, key=outer.get) - inner if outer else None
    configured = MECHANISMS[mechanism].mtu
    h1.cmd("ip link set tun0 mtu 1500")
    try:
        out = h1.cmd(f"ping -c 1 -W 2 -M do -s {1500 - header - 8} {far}")
        found = re.search(r"mtu\s*=\s*(\d+)", out)
        mtu = int(found.group(1)) if found else None
        if mtu is not None and _ping(net, far, mtu - header - 8, 1, df=True) is None:
            mtu = None  # the reported MTU does not cross either
    finally:
        h1.cmd(f"ip link set tun0 mtu {configured}")
    return {"mechanism": mechanism, "overhead_bytes": overhead, "mtu": mtu, "rtt_ms": rtt,
            "inner_bytes": inner, "access_lengths": outer, "tun_out": counts["tun0"]["out"].get(str(inner), 0),
            "data_planes": [p for name in net.hosts for p in getattr(net.node(name), "data_planes", [])]}


def _ping(net, target: str, size: int, count: int, interval: float = 0.2, df: bool = False) -> float | None:
    """The mean RTT in ms of ``count`` pings from h1 (None when any is lost)."""
    out = net.node("h1").cmd(f"ping -c {count} -i {interval} -W 2 -s {size} {'-M do ' if df else ''}{target}")
    found = re.search(r"(\d+) received.*\n.*= [\d.]+/([\d.]+)/", out)
    if not found or int(found.group(1)) != count:
        return None
    return float(found.group(2))


def inner_address(net, host: str = "h1") -> str:
    """The address h1's mechanism gave it, in the carried family: the first global one on its TUN device."""
    out = net.node(host).cmd("ip -o addr show dev tun0 scope global")
    for line in out.splitlines():
        parts = line.split()
        if parts[2] in ("inet", "inet6"):
            return parts[3].split("/")[0]
    raise RuntimeError(f"{host} has no address on tun0: {out.strip()}")
