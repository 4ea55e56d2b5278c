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

``PLANS[mechanism]`` is the one description of each access network: the zoo (``topologies/zoo.py``) builds
the same elements with the same specs.
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
from topologies.topos import DualStackHost  # noqa: E402

REPO_ROOT = _HERE.parent.parent
FAR6, FAR4 = "3fff:ffff::99", "198.51.100.80"
READY_TIMEOUT = 10.0


# -- the data planes in a host ----------------------------------------------------------------------------------

def plane_argv(spec: dict, setup: list[str], tun: str = "tun0", on_event: list[str] = (),
               python: str | None = None) -> list[str]:
    """The command line of one data plane; ``TUN`` in setup commands is the device's name."""
    argv = [python or sys.executable, "-m", "p2pnode.tunnels", json.dumps(spec), "--tun", tun]
    for command in [f"ip link set {tun} up", *setup]:
        argv += ["--setup", command.replace("TUN", tun)]
    for hook in on_event:
        argv += ["--on-event", hook.replace("TUN", tun)]
    return argv


def read_json_line(stream, deadline: float) -> dict | None:
    """The next JSON line of a plane's stdout before ``deadline`` (non-JSON lines skipped)."""
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return None
        chunk = os.read(stream.fileno(), 1)
        if not chunk:
            return None
        if chunk != b"\n":
            buf += chunk
            continue
        with contextlib.suppress(ValueError):
            return json.loads(buf)
        buf = b""
    return None


@dataclass
class RunningPlane:
    name: str  # "mechanism role"
    proc: subprocess.Popen
    ready: dict
    lines: list[dict] = field(default_factory=list)  # what it printed after the ready line
    final: dict | None = None  # its counters, once stopped
    wait: str | None = None  # an event to wait for before the plane is in service
    hooks: int = 0  # commands that event runs


class TunnelHost(DualStackHost):
    """A ``DualStackHost`` that runs data planes: ``planes`` is a list of ``{"spec", "setup", "tun",
    "on_event", "wait"}`` (``spec`` for ``p2pnode.tunnels.spec.build``; ``setup`` commands with ``TUN`` for the
    device and ``IF`` for the host's first interface; ``wait``: an event key to wait for, such as a Teredo
    client's ``qualified``, which needs the network started). Each plane is started when Mininet configures the
    host, and waited for until its ready line; ``stop_planes()`` (also at ``terminate``) collects the counters.
    """

    def config(self, planes=(), lo=(), mechanism=None, forward=False, **params):
        result = super().config(**params)
        self.mechanism = mechanism
        if forward:  # a translator writes the packets it made into its TUN device: the kernel forwards them
            self.cmd("sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1")
        for cidr in lo:
            self.cmd(f"ip addr add {cidr} dev lo")
        self.planes: list[RunningPlane] = []
        for plane in planes:
            self.start_plane(plane)
        return result

    def start_plane(self, plane: dict) -> RunningPlane:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["P2PNODE_PURE"] = "1"  # the planes need none of the compiled modules
        intf = str(self.defaultIntf())
        setup = [c.replace("IF", intf) for c in plane.get("setup", ())]
        argv = plane_argv(plane["spec"], setup, plane.get("tun", "tun0"), plane.get("on_event", ()))
        proc = self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(REPO_ROOT))
        ready = read_json_line(proc.stdout, time.monotonic() + READY_TIMEOUT)
        name = f"{plane['spec']['mechanism']} {plane['spec'].get('role', 'host')}"
        if ready is None or "ready" not in ready:
            proc.kill()
            raise RuntimeError(f"{self.name}: data plane {name} did not start: "
                               f"{proc.stderr.read().decode(errors='replace').strip() or 'no ready line'}")
        wait = plane.get("wait")
        hooks = sum(h.partition(":")[0] == wait for h in plane.get("on_event", ()))
        running = RunningPlane(name, proc, ready, wait=wait, hooks=hooks)
        self.planes.append(running)
        return running

    def wait_planes(self, timeout: float = 15.0) -> None:
        """Wait for each plane's awaited event (a Teredo client's ``qualified``: it needs the network running,
        so it comes after ``net.start()``) and for the commands it triggers."""
        for running in self.planes:
            if not running.wait or any(running.wait in line for line in running.lines):
                continue
            deadline = time.monotonic() + timeout
            while True:
                line = read_json_line(running.proc.stdout, deadline)
                if line is None:
                    raise RuntimeError(f"{self.name}: {running.name} reported no {running.wait!r} in {timeout} s")
                running.lines.append(line)
                if running.wait in line:
                    break
            for _ in range(running.hooks):  # the commands the event runs (--on-event)
                hook = read_json_line(running.proc.stdout, time.monotonic() + 5.0)
                if hook is None:
                    raise RuntimeError(f"{self.name}: {running.name}: no result of its {running.wait!r} commands")
                running.lines.append(hook)
                if hook.get("rc"):
                    raise RuntimeError(f"{self.name}: {hook['command']!r} failed: {hook.get('stderr')}")

    @property
    def data_planes(self) -> list[str]:
        """What carries each plane, as it said (``user-space``, or which kernel device it could have used)."""
        return [f"{p.name}: {p.ready.get('data_plane', '?')}" for p in self.planes]

    def stop_planes(self) -> list[RunningPlane]:
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

@dataclass(frozen=True)
class Plan:
    """One access network: addresses of h1 (access side), i1 (both sides), the far host, and the planes."""
    mechanism: str
    access: str  # the access network's family: "4" (IPv6 over IPv4) or "6" (IPv4 over IPv6)
    h1: list[str]  # h1's addresses on the access link
    i1_access: list[str]  # the element's on the access link
    h1_routes: list[tuple[str, str]]
    i1_routes: list[tuple[str, str]]
    h1_planes: list[dict]
    i1_planes: list[dict]
    far: str  # what h1 reaches across the mechanism (h2's address)
    h1_lo: list[str] = field(default_factory=list)  # addresses on h1's loopback (a MAP-E CE's MAP address)
    port: int | None = None  # the one port a listener behind it can be reached at (MAP: a forward in its port set)

    @property
    def carried(self) -> str:
        return "6" if self.access == "4" else "4"


def _plane(spec: dict, setup: list[str], tun: str = "tun0", **extra) -> dict:
    return {"spec": spec, "setup": setup, "tun": tun, **extra}


RULE = {"ipv6_prefix": "2001:db8::/40", "ipv4_prefix": "192.0.2.0/24", "ea_len": 16}
END_USER = "2001:db8:12:3400::/56"
CE6 = "2001:db8:12:3400:0:c000:212:34"  # RFC 7599 Appendix A, example 1
DMR = "2001:db8:ffff::/64"
MAP_PORT = 1232  # the first port of the CE's port set (PSID 0x34), forwarded to the host behind it


def _plans() -> dict[str, Plan]:
    mtu = {name: f"ip link set TUN mtu {m.mtu}" for name, m in MECHANISMS.items()}
    v6_default = "ip -6 route add default dev TUN"
    v4_default = "ip route add default dev TUN"
    access6 = dict(access="6", h1=["2001:db8:1::2/64"], i1_access=["2001:db8:1::1/64"])
    map_access = dict(access6, h1_routes=[("default", "2001:db8:1::1")], i1_routes=[(END_USER, "2001:db8:1::2")])
    domain = {"prefix": "2001:db8::/32", "ipv4_mask_len": 8, "br": "10.100.100.254"}
    return {
        "6to4": Plan(
            "6to4", "4", ["192.0.2.10/24"], ["192.0.2.1/24"], [], [],
            [_plane({"mechanism": "6to4", "role": "host", "own4": "192.0.2.10", "relay": "192.0.2.1"},
                    ["ip -6 addr add 2002:c000:20a::c000:20a/16 dev TUN", mtu["6to4"], v6_default])],
            [_plane({"mechanism": "6to4", "role": "relay", "own4": "192.0.2.1"},
                    ["ip -6 route add 2002::/16 dev TUN"])],
            FAR6),
        "6rd": Plan(
            "6rd", "4", ["10.100.100.1/24"], ["10.100.100.254/24"], [], [],
            [_plane({"mechanism": "6rd", "role": "ce", "own4": "10.100.100.1", **domain},
                    ["ip -6 addr add 2001:db8:6464:100::1/64 dev TUN", mtu["6rd"], v6_default])],
            [_plane({"mechanism": "6rd", "role": "br", "own4": "10.100.100.254", **domain},
                    ["ip -6 route add 2001:db8::/32 dev TUN"])],
            FAR6),
        "isatap": Plan(
            "isatap", "4", ["10.0.0.5/24"], ["10.0.0.1/24"], [], [],
            [_plane({"mechanism": "isatap", "role": "host", "own4": "10.0.0.5", "prefix": "2001:db8:5::/64",
                     "router": "10.0.0.1"},
                    ["ip -6 addr add 2001:db8:5::5efe:a00:5/64 dev TUN", mtu["isatap"], v6_default])],
            [_plane({"mechanism": "isatap", "role": "router", "own4": "10.0.0.1", "prefix": "2001:db8:5::/64"},
                    ["ip -6 route add 2001:db8:5::/64 dev TUN"])],
            FAR6),
        "6over4": Plan(  # no element: h1 and h2 on one multicast segment
            "6over4", "4", ["10.1.0.1/24"], [], [], [],
            [_plane({"mechanism": "6over4", "own4": "10.1.0.1", "prefix": "2001:db8:64::/64"},
                    ["ip route add 239.0.0.0/8 dev IF", "ip -6 addr add 2001:db8:64::a01:1/64 dev TUN",
                     mtu["6over4"]])],
            [], "2001:db8:64::a01:2"),
        "teredo": Plan(
            "teredo", "4", ["192.0.2.10/24"], ["192.0.2.1/24"], [], [],
            [_plane({"mechanism": "teredo", "role": "client", "server": "192.0.2.1", "relay": "192.0.2.1:3545",
                     "port": 40000}, [mtu["teredo"]], wait="qualified",
                    on_event=["qualified:ip -6 addr add {qualified}/32 dev TUN",
                              "qualified:ip -6 route add default dev TUN"])],
            [_plane({"mechanism": "teredo", "role": "server", "own4": "192.0.2.1"}, []),
             _plane({"mechanism": "teredo", "role": "relay", "own6": "3fff:ffff::1", "port": 3545},
                    ["ip -6 route add 2001::/32 dev TUN"], tun="tun1")],
            FAR6),
        "dslite": Plan(
            "dslite", h1_routes=[], i1_routes=[], **access6,
            h1_planes=[_plane({"mechanism": "dslite", "role": "b4", "aftr": "2001:db8:1::1"},
                              ["ip addr add 192.0.0.2/29 dev TUN", mtu["dslite"], v4_default])],
            i1_planes=[_plane({"mechanism": "dslite", "role": "aftr", "pool": ["203.0.113.1"],
                               "own6": "2001:db8:1::1"}, ["ip route add 203.0.113.1/32 dev TUN"])],
            far=FAR4),
        "map-e": Plan(
            "map-e", **map_access, h1_lo=[f"{CE6}/128"], port=MAP_PORT,
            h1_planes=[_plane({"mechanism": "map-e", "role": "ce", "rule": RULE, "end_user": END_USER,
                               "br": "2001:db8:1::1", "forward": [f"192.168.1.1:{MAP_PORT}"]},
                              ["ip addr add 192.168.1.1/24 dev TUN", mtu["map-e"], f"{v4_default} src 192.168.1.1"])],
            i1_planes=[_plane({"mechanism": "map-e", "role": "br", "rule": RULE, "own6": "2001:db8:1::1",
                               "own4": "198.51.100.1"}, ["ip route add 192.0.2.0/24 dev TUN"])],
            far=FAR4),
        "map-t": Plan(
            "map-t", **map_access, port=MAP_PORT,
            h1_planes=[_plane({"mechanism": "map-t", "role": "ce", "rule": RULE, "end_user": END_USER, "dmr": DMR,
                               "mtu6": 1500, "forward": [f"192.168.1.1:{MAP_PORT}"]},
                              ["ip addr add 192.168.1.1/24 dev TUN", mtu["map-t"], f"{v4_default} src 192.168.1.1",
                               f"ip -6 route add {CE6}/128 dev TUN"])],
            i1_planes=[_plane({"mechanism": "map-t", "role": "br", "rule": RULE, "dmr": DMR, "own4": "198.51.100.1",
                               "own6": "2001:db8:1::1", "mtu6": 1500},
                              ["ip route add 192.0.2.0/24 dev TUN", f"ip -6 route add {DMR} dev TUN"])],
            far=FAR4),
        "464xlat": Plan(
            "464xlat", h1_routes=[("default", "2001:db8:1::1")], i1_routes=[("2001:db8:c::/64", "2001:db8:1::2")],
            **access6,
            h1_planes=[_plane({"mechanism": "464xlat", "role": "clat", "clat6": "2001:db8:c::64",
                               "pref64": "64:ff9b::/96", "mtu6": 1500},
                              ["ip addr add 192.0.0.1/29 dev TUN", mtu["464xlat"], v4_default,
                               "ip -6 route add 2001:db8:c::64/128 dev TUN"])],
            i1_planes=[_plane({"mechanism": "464xlat", "role": "plat", "pref64": "64:ff9b::/96",
                               "pool": ["203.0.113.1"], "own6": "2001:db8:1::1", "mtu6": 1500},
                              ["ip route add 203.0.113.1/32 dev TUN", "ip -6 route add 64:ff9b::/96 dev TUN"])],
            far=FAR4),
    }


PLANS = _plans()
TRANSLATORS = ("map-t", "464xlat")  # host sides that hand translated packets back to the kernel to send


class Access(Topo):
    """h1 behind ``mechanism``, its element i1, the far host h2 (single-stack in the carried family)."""

    def build(self, mechanism="dslite", delay=None, **_ignored):
        if mechanism not in PLANS:
            raise ValueError(f"no access network for {mechanism!r}; one of {', '.join(PLANS)}")
        plan = self.plan = PLANS[mechanism]
        link = {"delay": delay} if delay else {}
        h1 = dict(ip=None, ip6=None, routes=plan.h1_routes, planes=plan.h1_planes, mechanism=mechanism,
                  forward=mechanism in TRANSLATORS)
        if mechanism == "6over4":  # one multicast segment: h1 and h2 on switch s1, no element
            s1 = self.addSwitch("s1")
            self.addHost("h1", cls=TunnelHost, **h1, lo=plan.h1_lo)
            self.addLink("h1", s1, params1={"ip4": plan.h1}, **link)
            self.addHost("h2", cls=TunnelHost, ip=None, planes=[_plane(
                {"mechanism": "6over4", "own4": "10.1.0.2", "prefix": "2001:db8:64::/64"},
                ["ip route add 239.0.0.0/8 dev IF", "ip -6 addr add 2001:db8:64::a01:2/64 dev TUN",
                 "ip link set TUN mtu 1480"])])
            self.addLink("h2", s1, params1={"ip4": ["10.1.0.2/24"]}, **link)
            return
        self.addHost("h1", cls=TunnelHost, **h1, lo=plan.h1_lo)
        self.addHost("i1", cls=TunnelHost, ip=None, router=True, routes=plan.i1_routes, planes=plan.i1_planes)
        if plan.carried == "6":
            far, far_own, far_routes = ["3fff:ffff::1/64"], [f"{FAR6}/64"], [("default", "3fff:ffff::1")]
        else:
            far, far_own, far_routes = ["198.51.100.1/24"], [f"{FAR4}/24"], [("default", "198.51.100.1")]
        self.addHost("h2", cls=TunnelHost, ip=None, routes=far_routes)
        key = "ip4" if plan.access == "4" else "ip6"
        self.addLink("h1", "i1", params1={key: plan.h1}, params2={key: plan.i1_access}, **link)
        far_key = "ip6" if plan.carried == "6" else "ip4"
        self.addLink("i1", "h2", params1={far_key: far}, params2={far_key: far_own})


def wait_planes(net) -> None:
    """Wait for planes that need the network up (Teredo's qualification): an ``EmulatedNetwork`` or a Mininet."""
    nodes = [net.node(n) for n in net.hosts + net.routers] if hasattr(net, "routers") else net.hosts
    for node in nodes:
        if isinstance(node, TunnelHost):
            node.wait_planes()


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
    header = 40 if plan.carried == "6" else 20
    access_if = str(h1.defaultIntf())
    cap = net.popen("h1", [python or sys.executable, "-m", "topologies.capture", access_if, "tun0", "--seconds",
                           str(1.0 + 0.2 * count)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO_ROOT))
    _ping(net, plan.far, 56, 1)  # neighbour discovery and NAT state first: the figures are the steady state's
    assert cap.stdout.readline().strip() == b"ready", cap.stderr.read()
    rtt = _ping(net, plan.far, size, count, interval=0.2)
    counts = json.loads(cap.stdout.readline())
    cap.wait(5)
    inner = size + 8 + header
    outer = {int(k): v for k, v in counts[access_if]["out"].items() if inner <= int(k) <= inner + 100}
    overhead = max(outer, key=outer.get) - inner if outer else None
    configured = MECHANISMS[mechanism].mtu
    h1.cmd("ip link set tun0 mtu 1500")
    try:
        out = h1.cmd(f"ping -c 1 -W 2 -M do -s {1500 - header - 8} {plan.far}")
        found = re.search(r"mtu\s*=\s*(\d+)", out)
        mtu = int(found.group(1)) if found else None
        if mtu is not None and _ping(net, plan.far, mtu - header - 8, 1, df=True) is None:
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
