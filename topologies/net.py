"""Build and run a Mininet network from a topology in topologies/topos.py, with honest link emulation.

``EmulatedNetwork(topo, capabilities=None)`` (capabilities: ``topologies.probe.probe()``, probed when None):

* switches are Linux bridges made with iproute2 (STP off, multicast snooping off) by default; Open vSwitch
  bridges (standalone, no controller) with ``switch="ovs"`` (an error when the probe found no working OVS)
  or ``switch="auto"`` (OVS when present, else bridges). No controller either way.
* link delay/jitter/loss per direction: netem on both ends when the kernel has it; otherwise a relay node is
  inserted into the link (``A ── x<k> ── B``) running ``python -m topologies.relay``; otherwise (relay
  disabled) the property is recorded as not emulated. Rate: htb (else tbf, else netem's own ``rate``) on the
  egress of both ends — with a relay, on the relay's two interfaces — or the relay's token bucket when no
  qdisc works. ``links_report()`` says for every link which method emulates each property, with the values.
* every namespace, bridge, interface and Mininet shell is named ``p2pe<tag><node>`` (tag: one character per
  concurrent run), the namespaces are also bound to ``/run/netns/p2pe<tag><node>`` (so ``ip netns`` shows
  them), processes started by ``popen`` carry ``P2PE_RUN=<tag>:<pid>:<start>`` in their environment and die
  with the Python process that started them (PR_SET_PDEATHSIG; from the main thread); a state file
  ``/run/p2pe/<tag>.json`` names the owning process. ``stop()`` (idempotent; also from ``with``, atexit,
  SIGTERM/SIGHUP, and Ctrl-C through KeyboardInterrupt) removes everything; ``cleanup()`` removes what a
  killed run (SIGKILL) left behind, skipping runs whose owner is still alive. ``python -m topologies.net
  cleanup [--force]`` does the same from a shell.
* ``net.bridge.bridge-nf-call-{ip6tables,iptables,arptables}`` are set to 0 while any run is live and restored
  by the last one (the original values are kept in ``/run/p2pe/bridge-nf.json``, so cleanup restores them
  after a crash).

Interface: ``start()``, ``stop()``, ``hosts`` (end hosts h1..hN in order; no routers, relays), ``routers``,
``ip6(name)``, ``ip4(name)``, ``popen(name, argv, **kw)`` -> ``subprocess.Popen``, ``cmd(name, command)``,
``node(name)`` (the Mininet node), ``links_report()``, ``summary()``, ``capabilities``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from topologies.ipv6 import BRIDGE_NF_KEYS, BridgeNf, global_addresses6, prepare_namespace, restore_bridge_nf
from topologies.probe import Capability, probe

PREFIX = "p2pe"
TAGS = "0123456789abcdefghijklmnopqrstuvwxyz"
STATE_DIR = Path("/run/p2pe")
NETNS_DIR = Path("/run/netns")
ENV_MARK = "P2PE_RUN"
IFNAMSIZ = 15
REPO_ROOT = Path(__file__).resolve().parent.parent
SHAPING_KEYS = ("delay", "jitter", "loss", "bw", "max_queue_size", "use_tbf", "use_hfsc", "latency_ms",
                "enable_ecn", "enable_red", "speedup", "gro", "txo", "rxo")


class EmulationError(RuntimeError):
    pass


# -- small helpers ---------------------------------------------------------------------------------------------

def parse_ms(value) -> float:
    """Delay/jitter as Mininet writes them ('20ms', '500us', '0.1s') or a number of ms; None -> 0."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*(us|ms|s)?\s*", str(value))
    if not match:
        raise ValueError(f"cannot parse a delay from {value!r}")
    number = float(match.group(1))
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, None: 1.0}[match.group(2)]


def _sh(argv: list[str], timeout: float = 10.0) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _proc_start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(pid: int, start_time: int | None) -> bool:
    current = _proc_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


@contextlib.contextmanager
def _locked():
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_state(tag: str) -> dict | None:
    try:
        return json.loads((STATE_DIR / f"{tag}.json").read_text())
    except (OSError, ValueError):
        return None


def _live_tags(exclude: str | None = None) -> list[str]:
    live = []
    for path in STATE_DIR.glob("?.json"):
        tag = path.stem
        state = _read_state(tag)
        if tag != exclude and state and _alive(state.get("pid", -1), state.get("start_time")):
            live.append(tag)
    return live


_LIBC = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _load_libc() -> None:
    global _LIBC
    if _LIBC is None:
        with contextlib.suppress(OSError):
            _LIBC = ctypes.CDLL(None, use_errno=True)


# -- leftovers: discovery and removal ---------------------------------------------------------------------------

def _our_name(name: str) -> bool:
    return name.startswith(PREFIX) and len(name) > len(PREFIX) and name[len(PREFIX)] in TAGS


def _netns_names() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except OSError:
        return []


def _root_links() -> list[str]:
    code, out = _sh(["ip", "-o", "link", "show"])
    names = []
    for line in out.splitlines() if code == 0 else []:
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _ovs_bridges() -> list[str]:
    if not shutil.which("ovs-vsctl"):
        return []
    code, out = _sh(["ovs-vsctl", "--timeout=2", "list-br"], timeout=3)
    return out.split() if code == 0 else []


def _scan_processes() -> list[tuple[int, str, str, int | None]]:
    """(pid, cmdline, P2PE_RUN value, net namespace inode) of every process but ourselves."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            netns = os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
        mark = ""
        for item in environ:
            if item.startswith(ENV_MARK.encode() + b"="):
                mark = item.split(b"=", 1)[1].decode(errors="replace")
                break
        found.append((pid, cmdline, mark, netns))
    return found


def _kill(pids: set[int], grace: float = 1.0) -> list[int]:
    pids = {p for p in pids if p != os.getpid()}
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_proc_start_time(p) is not None for p in pids):
        for pid in pids:  # reap our own children so they do not linger as zombies
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    for pid in pids:
        if _proc_start_time(pid) is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    return sorted(pids)


def _remove_run(tag: str, protect: set[int] = frozenset()) -> dict:
    """Kill the processes, delete the namespaces, interfaces and OVS bridges of run ``tag``.

    Processes: Mininet shells named ``mininet:p2pe<tag>…``, anything inside the run's namespaces, anything
    carrying the run's environment mark (also when it left the namespaces)."""
    prefix = PREFIX + tag
    report: dict[str, list] = {"processes": [], "namespaces": [], "links": [], "ovs_bridges": [], "log_dirs": []}
    state = _read_state(tag) or {}
    namespaces = [n for n in _netns_names() if n.startswith(prefix)]
    inodes = set()
    for name in namespaces:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(NETNS_DIR / name).st_ino)
    victims = set()
    for pid, cmdline, mark, netns in _scan_processes():
        if pid in protect:
            continue
        if f"mininet:{prefix}" in cmdline or netns in inodes or mark.startswith(f"{tag}:"):
            victims.add(pid)
    report["processes"] = _kill(victims)
    for name in namespaces:
        if _sh(["ip", "netns", "delete", name])[0] == 0:
            report["namespaces"].append(name)
    for name in _root_links():
        if name.startswith(prefix) and _sh(["ip", "link", "delete", name])[0] == 0:
            report["links"].append(name)
    for name in _ovs_bridges():
        if name.startswith(prefix) and _sh(["ovs-vsctl", "--timeout=2", "--if-exists", "del-br", name])[0] == 0:
            report["ovs_bridges"].append(name)
    log_dir = state.get("log_dir")
    if state.get("own_log_dir") and log_dir and Path(log_dir).name.startswith(prefix) and Path(log_dir).is_dir():
        shutil.rmtree(log_dir, ignore_errors=True)
        report["log_dirs"].append(log_dir)
    with contextlib.suppress(OSError):
        (STATE_DIR / f"{tag}.json").unlink()
    return report


def _restore_bridge_nf_if_last(exclude: str | None = None) -> None:
    """Called under the lock: when no run is live any more, put the original bridge-nf values back."""
    path = STATE_DIR / "bridge-nf.json"
    if _live_tags(exclude) or not path.exists():
        return
    with contextlib.suppress(OSError, ValueError):
        restore_bridge_nf(json.loads(path.read_text()))
    with contextlib.suppress(OSError):
        path.unlink()


def cleanup(force: bool = False) -> dict:
    """Remove leftovers of emulation runs whose owning process is gone (all runs with ``force``).

    Returns what was removed: ``{"runs": {tag: {...}}, "skipped_live": [...], "probe_namespaces": [...]}``.
    Live networks of this very process are stopped properly first when ``force`` is set.
    """
    if force:
        for network in list(_LIVE):
            network.stop()
    summary: dict = {"runs": {}, "skipped_live": [], "probe_namespaces": []}
    if os.geteuid() != 0:
        raise EmulationError("cleanup needs root")
    with _locked():
        tags = {p.stem for p in STATE_DIR.glob("?.json")}
        tags |= {n[len(PREFIX)] for n in _netns_names() + _root_links() + _ovs_bridges() if _our_name(n)}
        for _pid, cmdline, mark, _ in _scan_processes():
            match = re.search(r"mininet:" + PREFIX + "([0-9a-z])", cmdline)
            if match:
                tags.add(match.group(1))
            if mark[:1] in TAGS and mark[1:2] == ":":
                tags.add(mark[0])
        for tag in sorted(tags):
            state = _read_state(tag)
            alive = bool(state) and _alive(state.get("pid", -1), state.get("start_time"))
            if alive and not force:
                summary["skipped_live"].append(tag)
                continue
            report = _remove_run(tag)
            if any(report.values()):
                summary["runs"][tag] = report
        for name in _netns_names():
            match = re.fullmatch(PREFIX + r"-probe-(\d+)", name)
            if match and (force or not _alive(int(match.group(1)), None)):
                if _sh(["ip", "netns", "delete", name])[0] == 0:
                    summary["probe_namespaces"].append(name)
        _restore_bridge_nf_if_last()
    return summary


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

@dataclass
class _LinkPlan:
    index: int
    node1: str
    node2: str
    port1: int | None
    port2: int | None
    params1: dict
    params2: dict
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    rate_mbit: float = 0.0
    queue: int | None = None
    delay: dict = field(default_factory=lambda: {"method": "none"})
    loss: dict = field(default_factory=lambda: {"method": "none"})
    rate: dict = field(default_factory=lambda: {"method": "none"})
    qdisc_on: list[str] = field(default_factory=list)  # topo nodes whose link-side interface gets the qdiscs
    relay: str | None = None  # topo name of the inserted relay node
    relay_rate: bool = False
    relay_info: dict = field(default_factory=dict)
    interfaces: list[str] = field(default_factory=list)


_LIVE: set[EmulatedNetwork] = set()
_HANDLERS_INSTALLED = False


def _stop_all() -> None:
    for network in list(_LIVE):
        with contextlib.suppress(Exception):
            network.stop()


def _on_signal(signum, _frame):
    _stop_all()
    raise SystemExit(128 + signum)


def _install_handlers() -> None:
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, _on_signal)
    _HANDLERS_INSTALLED = True


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
        self._plans: list[_LinkPlan] = []
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
        report = []
        for plan in self._plans:
            entry = {
                "link": f"{plan.node1}-{plan.node2}",
                "nodes": [plan.node1, plan.node2],
                "interfaces": list(plan.interfaces),
                "configured": {"delay_ms": plan.delay_ms, "jitter_ms": plan.jitter_ms, "loss_pct": plan.loss_pct,
                               "rate_mbit": plan.rate_mbit or None, "queue": plan.queue},
                "delay": dict(plan.delay),
                "loss": dict(plan.loss),
                "rate": dict(plan.rate),
            }
            if plan.relay:
                entry["relay"] = dict(plan.relay_info)
            report.append(entry)
        return report

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
            _install_handlers()
            self._allocate_tag()
            _LIVE.add(self)
            self._started = True
            try:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                self._disable_bridge_nf()
                self._plan_links()
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
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        me, start = os.getpid(), _proc_start_time(os.getpid())
        with _locked():
            for tag in TAGS:
                state = _read_state(tag)
                if state is not None:
                    if _alive(state.get("pid", -1), state.get("start_time")):
                        continue
                    _remove_run(tag)  # a killed run's leftovers: its tag is free again
                elif any(n.startswith(PREFIX + tag) for n in _netns_names() + _root_links()):
                    _remove_run(tag)  # leftovers without a state file
                self.tag = tag
                self._mark = f"{tag}:{me}:{start}"
                if self.log_dir is None:  # relay logs; removed with the run (also by cleanup() after a crash)
                    self.log_dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{tag}-"))
                self._write_state()
                return
        raise EmulationError(f"all {len(TAGS)} run tags are in use (see {STATE_DIR})")

    def _write_state(self) -> None:
        state = {"pid": os.getpid(), "start_time": _proc_start_time(os.getpid()), "tag": self.tag,
                 "topology": type(self.topo).__name__, "started": time.time(),
                 "log_dir": str(self.log_dir) if self.log_dir else None, "own_log_dir": self._own_log_dir}
        path = STATE_DIR / f"{self.tag}.json"
        path.write_text(json.dumps(state))

    def _disable_bridge_nf(self) -> None:
        with _locked():
            saved = self._bridge_nf.disable()
            path = STATE_DIR / "bridge-nf.json"
            original = {}
            with contextlib.suppress(OSError, ValueError):
                original = json.loads(path.read_text())
            for key, value in saved.items():
                original.setdefault(key, value)  # the first run to change a value keeps the original
            if original:
                path.write_text(json.dumps(original))
            self._bridge_nf.saved.clear()  # restored by the last run, from the shared file

    def _plan_links(self) -> None:
        caps = self.capabilities

        def has(name: str) -> bool:
            cap = caps.get(name)
            return bool(cap and cap.available)

        netem = has("netem") and not self.force_relay
        relay_ok = self.use_relay and has("relay")
        for index, (n1, n2, info) in enumerate(self.topo.links(sort=False, withInfo=True), start=1):
            info = dict(info)
            plan = _LinkPlan(index, n1, n2, info.get("port1"), info.get("port2"),
                             dict(info.get("params1") or {}), dict(info.get("params2") or {}))
            plan.delay_ms = parse_ms(info.get("delay"))
            plan.jitter_ms = parse_ms(info.get("jitter"))
            plan.loss_pct = float(info.get("loss") or 0.0)
            plan.rate_mbit = float(info.get("bw") or 0.0)
            plan.queue = int(info["max_queue_size"]) if info.get("max_queue_size") else None
            if not 0 <= plan.loss_pct <= 100:
                raise ValueError(f"link {n1}-{n2}: loss is a percentage, 0..100")
            want_delay = plan.delay_ms > 0 or plan.jitter_ms > 0
            want_loss = plan.loss_pct > 0
            want_rate = plan.rate_mbit > 0
            values_delay = {"value_ms": plan.delay_ms, "jitter_ms": plan.jitter_ms, "per": "direction"}
            values_loss = {"value_pct": plan.loss_pct, "per": "direction"}
            values_rate = {"value_mbit": plan.rate_mbit, "per": "direction"}
            qdisc_rate = "htb" if has("htb") else "tbf" if has("tbf") else None
            if want_delay or want_loss:
                if netem:
                    plan.qdisc_on = [n1, n2]
                    if want_delay:
                        plan.delay = {"method": "netem", **values_delay, "where": "egress of both ends"}
                    if want_loss:
                        plan.loss = {"method": "netem", **values_loss, "where": "egress of both ends"}
                    if want_rate:
                        method = qdisc_rate or "netem-rate"
                        plan.rate = {"method": method, **values_rate, "where": "egress of both ends"}
                elif relay_ok:
                    plan.relay = f"x{index}"
                    where = f"relay node x{index} (python -m topologies.relay)"
                    if want_delay:
                        plan.delay = {"method": "relay", **values_delay, "where": where}
                    if want_loss:
                        plan.loss = {"method": "relay", **values_loss, "where": where}
                    if want_rate:
                        if qdisc_rate:
                            plan.qdisc_on = [plan.relay]
                            plan.rate = {"method": qdisc_rate, **values_rate,
                                         "where": f"egress of both interfaces of relay node x{index}"}
                        else:
                            plan.relay_rate = True
                            plan.rate = {"method": "relay-token-bucket", **values_rate, "where": where}
                else:
                    why = ("netem unavailable (" + caps.get("netem", Capability(False, "not probed")).detail
                           + ") and " + ("the relay is disabled" if not self.use_relay else
                                         "the relay is unavailable: " + caps["relay"].detail))
                    if want_delay:
                        plan.delay = {"method": "not-emulated", **values_delay, "reason": why}
                    if want_loss:
                        plan.loss = {"method": "not-emulated", **values_loss, "reason": why}
                    if want_rate:
                        if qdisc_rate:
                            plan.qdisc_on = [n1, n2]
                            plan.rate = {"method": qdisc_rate, **values_rate, "where": "egress of both ends"}
                        else:
                            plan.rate = {"method": "not-emulated", **values_rate, "reason": "no htb/tbf"}
            elif want_rate:
                if qdisc_rate:
                    plan.qdisc_on = [n1, n2]
                    plan.rate = {"method": qdisc_rate, **values_rate, "where": "egress of both ends"}
                elif netem:
                    plan.qdisc_on = [n1, n2]
                    plan.rate = {"method": "netem-rate", **values_rate, "where": "egress of both ends"}
                elif relay_ok:
                    plan.relay = f"x{index}"
                    plan.relay_rate = True
                    plan.rate = {"method": "relay-token-bucket", **values_rate,
                                 "where": f"relay node x{index} (python -m topologies.relay)"}
                else:
                    plan.rate = {"method": "not-emulated", **values_rate, "reason": "no htb, tbf, netem or relay"}
            self._plans.append(plan)

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
        code, out = _sh(["ip", "netns", "attach", mn, str(node.pid)])
        if code != 0:
            raise EmulationError(f"ip netns attach {mn} {node.pid}: {out}")

    def _intf_of(self, plan: _LinkPlan, name: str) -> tuple[object, str]:
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
                    for command in self._tc_commands(plan, intf):
                        out = node.cmd(f"{command} && echo __ok")
                        if "__ok" not in out:
                            raise EmulationError(f"{name}: `{command}` failed: {out.strip()}")

    def _tc_commands(self, plan: _LinkPlan, intf: str) -> list[str]:
        cmds = []
        parent = "root"
        rate_method = plan.rate.get("method")
        netem_args = []
        if plan.delay.get("method") == "netem":
            netem_args.append(f"delay {plan.delay_ms:g}ms")
            if plan.jitter_ms:
                netem_args.append(f"{plan.jitter_ms:g}ms")
        if plan.loss.get("method") == "netem":
            netem_args.append(f"loss {plan.loss_pct:g}%")
        if plan.queue and netem_args:
            netem_args.append(f"limit {plan.queue}")
        if rate_method == "htb":
            cmds.append(f"tc qdisc replace dev {intf} root handle 5: htb default 1")
            cmds.append(f"tc class add dev {intf} parent 5: classid 5:1 htb rate {plan.rate_mbit:g}mbit burst 15k")
            parent = "parent 5:1"
        elif rate_method == "netem-rate":
            netem_args.append(f"rate {plan.rate_mbit:g}mbit")
        if netem_args:
            cmds.append(f"tc qdisc replace dev {intf} {parent} handle 10: netem {' '.join(netem_args)}")
            parent = "parent 10:1"
        if rate_method == "tbf":
            latency = max(50.0, 15000 * 8 / (plan.rate_mbit * 1000))
            cmds.append(f"tc qdisc replace dev {intf} {parent} handle 20: tbf rate {plan.rate_mbit:g}mbit "
                        f"burst 15k latency {latency:g}ms")
        return cmds

    def _start_relays(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        pending = []
        for plan in self._plans:
            if not plan.relay:
                continue
            _node, intfs = self._intf_of(plan, plan.relay)
            eth0, eth1 = sorted(intfs, key=lambda i: int(i.rsplit("eth", 1)[1]))
            argv = [self.relay_python, "-m", "topologies.relay", eth0, eth1]
            if plan.delay.get("method") == "relay":
                argv += ["--delay-ms", f"{plan.delay_ms:g}"]
                if plan.jitter_ms:
                    argv += ["--jitter-ms", f"{plan.jitter_ms:g}"]
            if plan.loss.get("method") == "relay":
                argv += ["--loss", f"{plan.loss_pct:g}"]
            if plan.relay_rate:
                argv += ["--rate-mbit", f"{plan.rate_mbit:g}"]
            if plan.queue:
                argv += ["--queue", str(plan.queue)]
            seed = (self.seed * 1000 + plan.index) % 2**32
            argv += ["--seed", str(seed)]
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
                with _locked():
                    _remove_run(self.tag, protect={os.getpid()})
                    _restore_bridge_nf_if_last(exclude=self.tag)
                _LIVE.discard(self)
                if self._own_log_dir:  # _remove_run deleted the temporary log directory
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
            code, out = _sh(["ip", "netns", "pids", mn])
            if code == 0:
                victims |= {int(p) for p in out.split() if p.isdigit() and int(p) not in protect}
        _kill(victims)


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
