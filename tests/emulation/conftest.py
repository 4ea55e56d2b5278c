"""Shared skip logic and fixtures for the emulation tests (root, Linux, Mininet; run with -m root)."""

from __future__ import annotations

import os
import shutil
import sys

import pytest


def _skip_reason() -> str | None:
    if sys.platform != "linux":
        return f"emulation needs Linux network namespaces (platform is {sys.platform})"
    if os.geteuid() != 0:
        return "emulation needs root (network namespaces, veth, bridges): run as root with -m root"
    try:
        import mininet.net  # noqa: F401
    except ImportError as exc:
        return f"cannot import mininet ({exc}): pip install mininet==2.3.0.dev6 (the 'emu' extra)"
    if not shutil.which("mnexec"):
        return "mnexec not found: apt-get install mininet"
    return None


SKIP_REASON = _skip_reason()
needs_root = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


@pytest.fixture(scope="session")
def caps():
    from topologies.probe import probe

    return probe()


def leftovers(tag: str) -> dict[str, list]:
    """Everything of run ``tag`` that still exists: namespaces, root-namespace links, processes, state file and
    temporary log directory."""
    from topologies.registry import NETNS_DIR, PREFIX, STATE_DIR, netns_names, root_links, scan_processes

    prefix = PREFIX + tag
    inodes = set()
    for name in netns_names():
        if name.startswith(prefix):
            try:
                inodes.add(os.stat(NETNS_DIR / name).st_ino)
            except OSError:
                pass
    processes = [
        (pid, cmdline.strip()) for pid, cmdline, mark, netns in scan_processes()
        if f"mininet:{prefix}" in cmdline or mark.startswith(f"{tag}:") or netns in inodes
    ]
    import tempfile
    from pathlib import Path

    return {
        "log_dirs": [str(p) for p in Path(tempfile.gettempdir()).glob(f"{prefix}-*")],
        "namespaces": [n for n in netns_names() if n.startswith(prefix)],
        "links": [n for n in root_links() if n.startswith(prefix)],
        "processes": processes,
        "state": [str(p) for p in STATE_DIR.glob(f"{tag}.json")],
    }


def ping6_rtt(net, src: str, dst: str, count: int = 20, interval: float = 0.05) -> tuple[float, float, int]:
    """(min, avg, received) of ``count`` pings from src to dst's IPv6 address, after one warm-up ping."""
    addr = net.ip6(dst)
    net.cmd(src, f"ping -6 -n -c 1 -w 3 {addr} >/dev/null 2>&1")  # neighbour discovery out of the way
    out = net.cmd(src, f"ping -6 -n -q -c {count} -i {interval} -w {int(count * interval + 10)} {addr}")
    received = 0
    for line in out.splitlines():
        if "received" in line:
            received = int(line.split(",")[1].split()[0])
        if line.startswith(("rtt", "round-trip")):
            low, avg, _high, _mdev = (float(v) for v in line.split("=")[1].split()[0].split("/"))
            return low, avg, received
    raise AssertionError(f"no RTT from {src} to {dst}:\n{out}")
