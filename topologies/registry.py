"""The registry of emulation runs, and removal of what a run leaves behind, also after a crash.

Every namespace, bridge, interface and Mininet shell of a run is named ``p2pe<tag><node>`` (tag: one character
per concurrent run), its namespaces are also bound to ``/run/netns/p2pe<tag><node>``, the processes it starts
carry ``P2PE_RUN=<tag>:<pid>:<start>`` in their environment, and a state file ``/run/p2pe/<tag>.json`` names the
owning process. From those marks ``cleanup()`` finds and removes the leftovers of runs whose owner is gone
(SIGKILL), skipping runs whose owner is still alive. The networks live in this process are stopped at exit and on
SIGTERM/SIGHUP. The bridge-nf sysctls are saved in ``/run/p2pe/bridge-nf.json`` by the first live run and
restored by the last one (or by cleanup after a crash).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from topologies.ipv6 import BridgeNf, restore_bridge_nf

if TYPE_CHECKING:
    from topologies.net import EmulatedNetwork

PREFIX = "p2pe"
TAGS = "0123456789abcdefghijklmnopqrstuvwxyz"
STATE_DIR = Path("/run/p2pe")
NETNS_DIR = Path("/run/netns")
ENV_MARK = "P2PE_RUN"


class EmulationError(RuntimeError):
    pass


def sh(argv: list[str], timeout: float = 10.0) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def proc_start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(pid: int, start_time: int | None) -> bool:
    current = proc_start_time(pid)
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


# -- leftovers: discovery and removal ---------------------------------------------------------------------------

def _our_name(name: str) -> bool:
    return name.startswith(PREFIX) and len(name) > len(PREFIX) and name[len(PREFIX)] in TAGS


def netns_names() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except OSError:
        return []


def root_links() -> list[str]:
    code, out = sh(["ip", "-o", "link", "show"])
    names = []
    for line in out.splitlines() if code == 0 else []:
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _ovs_bridges() -> list[str]:
    if not shutil.which("ovs-vsctl"):
        return []
    code, out = sh(["ovs-vsctl", "--timeout=2", "list-br"], timeout=3)
    return out.split() if code == 0 else []


def scan_processes() -> list[tuple[int, str, str, int | None]]:
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


def kill(pids: set[int], grace: float = 1.0) -> list[int]:
    pids = {p for p in pids if p != os.getpid()}
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(proc_start_time(p) is not None for p in pids):
        for pid in pids:  # reap our own children so they do not linger as zombies
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    for pid in pids:
        if proc_start_time(pid) is not None:
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
    namespaces = [n for n in netns_names() if n.startswith(prefix)]
    inodes = set()
    for name in namespaces:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(NETNS_DIR / name).st_ino)
    victims = set()
    for pid, cmdline, mark, netns in scan_processes():
        if pid in protect:
            continue
        if f"mininet:{prefix}" in cmdline or netns in inodes or mark.startswith(f"{tag}:"):
            victims.add(pid)
    report["processes"] = kill(victims)
    for name in namespaces:
        if sh(["ip", "netns", "delete", name])[0] == 0:
            report["namespaces"].append(name)
    for name in root_links():
        if name.startswith(prefix) and sh(["ip", "link", "delete", name])[0] == 0:
            report["links"].append(name)
    for name in _ovs_bridges():
        if name.startswith(prefix) and sh(["ovs-vsctl", "--timeout=2", "--if-exists", "del-br", name])[0] == 0:
            report["ovs_bridges"].append(name)
    log_dir = state.get("log_dir")
    if state.get("own_log_dir") and log_dir and Path(log_dir).name.startswith(prefix) and Path(log_dir).is_dir():
        shutil.rmtree(log_dir, ignore_errors=True)
        report["log_dirs"].append(log_dir)
    with contextlib.suppress(OSError):
        (STATE_DIR / f"{tag}.json").unlink()
        report["state_files"] = [str(STATE_DIR / f"{tag}.json")]
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
        tags |= {n[len(PREFIX)] for n in netns_names() + root_links() + _ovs_bridges() if _our_name(n)}
        for _pid, cmdline, mark, _ in scan_processes():
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
        for name in netns_names():
            match = re.fullmatch(PREFIX + r"-probe-(\d+)", name)
            if match and (force or not _alive(int(match.group(1)), None)):
                if sh(["ip", "netns", "delete", name])[0] == 0:
                    summary["probe_namespaces"].append(name)
        _restore_bridge_nf_if_last()
    return summary


def remove_dead_runs() -> str | None:
    """Remove what emulation runs whose process is gone (a SIGKILL, a crash, a power cut of the shell) left:
    ``cleanup()`` without force, which skips live runs. Returns one line saying what was removed, or None.
    ``emulate`` calls it before it builds its own network, so leftovers never outlive the next run."""
    summary = cleanup()
    runs = summary["runs"]
    if not runs and not summary["probe_namespaces"]:
        return None

    def count(key: str) -> int:
        return sum(len(report.get(key, [])) for report in runs.values())

    return (f"removed what {len(runs)} dead emulation run(s) left (tags {', '.join(sorted(runs)) or '-'}): "
            f"{count('namespaces') + len(summary['probe_namespaces'])} namespaces, {count('links')} interfaces and "
            f"bridges, {count('processes')} processes, {count('log_dirs')} temporary folders, "
            f"{count('state_files')} registry entries")


# -- the runs of this process ----------------------------------------------------------------------------------

_LIVE: set[EmulatedNetwork] = set()  # started by this process and not yet stopped
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


def register(network: EmulatedNetwork) -> None:
    """Stop ``network`` when this process exits or gets SIGTERM/SIGHUP (and on ``cleanup(force=True)``)."""
    _install_handlers()
    _LIVE.add(network)


def unregister(network: EmulatedNetwork) -> None:
    _LIVE.discard(network)


def claim_tag(state: Callable[[str], dict]) -> str:
    """Take a free run tag (removing what dead runs left under it) and write its state file: ``state(tag)``
    and the owning process, under the registry lock."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    me = os.getpid()
    with _locked():
        for tag in TAGS:
            found = _read_state(tag)
            if found is not None:
                if _alive(found.get("pid", -1), found.get("start_time")):
                    continue
                _remove_run(tag)  # a killed run's leftovers: its tag is free again
            elif any(n.startswith(PREFIX + tag) for n in netns_names() + root_links()):
                _remove_run(tag)  # leftovers without a state file
            entry = {"pid": me, "start_time": proc_start_time(me), "tag": tag, **state(tag)}
            (STATE_DIR / f"{tag}.json").write_text(json.dumps(entry))
            return tag
    raise EmulationError(f"all {len(TAGS)} run tags are in use (see {STATE_DIR})")


def disable_bridge_nf(bridge_nf: BridgeNf) -> None:
    """Turn the bridge-nf sysctls off. The first live run to change a value keeps its original in the shared
    file, and the last run to stop restores it (``release``)."""
    with _locked():
        saved = bridge_nf.disable()
        path = STATE_DIR / "bridge-nf.json"
        original = {}
        with contextlib.suppress(OSError, ValueError):
            original = json.loads(path.read_text())
        for key, value in saved.items():
            original.setdefault(key, value)
        if original:
            path.write_text(json.dumps(original))
        bridge_nf.saved.clear()  # restored by the last run, from the shared file


def release(tag: str) -> None:
    """Remove everything of run ``tag`` except this process, and restore bridge-nf if no other run is live."""
    with _locked():
        _remove_run(tag, protect={os.getpid()})
        _restore_bridge_nf_if_last(exclude=tag)
