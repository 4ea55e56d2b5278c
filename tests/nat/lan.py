"""A LAN in network namespaces for the root tests: hosts on one Ethernet segment (a Linux bridge in a
namespace of its own), optionally a gateway between the segment and a "WAN" segment, and real nodes
(tests/nat/lanpeer.py) running in the hosts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.tunnels.netns import sh

REPO = Path(__file__).resolve().parents[2]
SKIP = None
if sys.platform != "linux" or os.geteuid() != 0:
    SKIP = "needs root and Linux network namespaces (run with -m root)"
elif not shutil.which("ip"):
    SKIP = "needs iproute2"


class Lan:
    """Namespaces ``natd<pid>-<name>``; ``segment(name, hosts, prefix)`` joins hosts to a bridge."""

    def __init__(self) -> None:
        self.tag = f"natd{os.getpid() % 100000}"
        self.names: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self._links = 0

    def ns(self, name: str) -> str:
        full = f"{self.tag}-{name}"
        if full not in self.names:
            sh("ip", "netns", "add", full)
            self.names.append(full)
            self.run(name, "ip", "link", "set", "lo", "up")
        return full

    def run(self, name: str, *argv: str, check: bool = True) -> str:
        return sh("ip", "netns", "exec", f"{self.tag}-{name}", *argv, check=check)

    def segment(self, name: str, hosts: dict[str, str]) -> None:
        """A bridge ``br0`` in namespace ``name`` and a veth ``eth-<name>`` from each host to it, with the
        host's address (``10.1.0.2/24``)."""
        self.ns(name)
        self.run(name, "ip", "link", "add", "name", "br0", "type", "bridge")
        self.run(name, "ip", "link", "set", "br0", "up")
        for host, addr in hosts.items():
            self.ns(host)
            self._links += 1
            a, b = f"{self.tag}a{self._links}", f"{self.tag}b{self._links}"
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "netns", f"{self.tag}-{host}", "name", f"eth-{name}")
            sh("ip", "link", "set", b, "netns", f"{self.tag}-{name}", "name", f"p{self._links}")
            self.run(name, "ip", "link", "set", f"p{self._links}", "master", "br0", "up")
            self.run(host, "ip", "addr", "add", addr, "dev", f"eth-{name}")
            self.run(host, "ip", "link", "set", f"eth-{name}", "up")

    def peer(self, host: str, **args) -> Peer:
        proc = subprocess.Popen(["ip", "netns", "exec", f"{self.tag}-{host}", sys.executable, "-m",
                                 "tests.nat.lanpeer", json.dumps(args)], cwd=REPO, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return Peer(proc)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for name in reversed(self.names):
            sh("ip", "netns", "del", name, check=False)


class Peer:
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"LAN peer did not start: {proc.stderr.read()[-2000:]}")
        self.ready = json.loads(line)
        self.peer_id = self.ready["peer_id"]

    def status(self) -> dict:
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"LAN peer died: {self.proc.stderr.read()[-2000:]}")
        return json.loads(line)

    def until(self, condition, timeout: float = 20.0, step: float = 0.1) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if condition(status) or time.monotonic() > deadline:
                return status
            time.sleep(step)
