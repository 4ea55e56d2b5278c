"""A LAN in network namespaces for the root tests: hosts on one Ethernet segment (a Linux bridge in a
namespace of its own), optionally a gateway between the segment and a "WAN" segment, and real nodes
(tests/nat/lanpeer.py) running in the hosts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.tunnels.netns import sh

REPO = Path(__file__).resolve().parents[2]
SKIP = None
if sys.platform != "linux" or os.geteuid() != 0:
    SKIP = "needs root and Linux network namespaces (run with -m root)"
elif not shutil.which("ip"):
    SKIP = "needs iproute2"
MINIUPNPD = shutil.which("miniupnpd") or "/usr/sbin/miniupnpd"
GATEWAY_SKIP = SKIP or (None if os.path.exists(MINIUPNPD) and shutil.which("nft") else
                        "needs miniupnpd and nft (scripts/provision.sh installs them)")


class Lan:
    """Namespaces ``natd<pid>-<name>``; ``segment(name, hosts, prefix)`` joins hosts to a bridge."""

    def __init__(self) -> None:
        self.tag = f"natd{os.getpid() % 100000}"
        self.names: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self._links = 0
        self._tmp: str | None = None

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

    def link(self, a: str, a_dev: str, a_addr: str, b: str, b_dev: str, b_addr: str) -> None:
        """A veth between hosts ``a`` and ``b`` with an address at each end."""
        self._links += 1
        x, y = f"{self.tag}x{self._links}", f"{self.tag}y{self._links}"
        sh("ip", "link", "add", x, "type", "veth", "peer", "name", y)
        for host, end, dev, addr in ((a, x, a_dev, a_addr), (b, y, b_dev, b_addr)):
            sh("ip", "link", "set", end, "netns", self.ns(host), "name", dev)
            self.run(host, "ip", "addr", "add", addr, "dev", dev)
            self.run(host, "ip", "link", "set", dev, "up")

    def gateway(self, home: str, gw: str, wan: str, upnp: bool = True) -> None:
        """``home`` (192.168.77.2) behind the router ``gw`` (192.168.77.1 / 11.88.0.1: miniupnpd wants a
        public-looking external address; these namespaces reach nothing else) on the "internet" segment with
        ``wan`` (11.88.0.2). The router masquerades and forwards only what it mapped; with ``upnp`` it runs
        miniupnpd (UPnP IGD, NAT-PMP, PCP) for the home network."""
        self.link(home, "eth0", "192.168.77.2/24", gw, "lan0", "192.168.77.1/24")
        self.link(gw, "wan0", "11.88.0.1/24", wan, "eth0", "11.88.0.2/24")
        self.run(home, "ip", "route", "add", "default", "via", "192.168.77.1")
        self.run(gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.run(gw, "nft", "-f", str(REPO / "tests/nat/miniupnpd.nft"))
        if upnp:
            conf = Path(self.tmp(), "miniupnpd.conf")
            conf.write_text((REPO / "tests/nat/miniupnpd.conf").read_text())
            proc = subprocess.Popen(["ip", "netns", "exec", self.ns(gw), MINIUPNPD, "-f", str(conf), "-d"],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True)
            self.procs.append(proc)
            deadline = time.monotonic() + 10
            while ":5351 " not in self.run(gw, "ss", "-lun", check=False):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"miniupnpd did not start: {proc.stderr.read()[-2000:]}")
                time.sleep(0.1)

    def dnat_rules(self, gw: str) -> list[str]:
        """The router's port forwards (what miniupnpd put in its nftables chain)."""
        return [line.strip() for line in self.run(gw, "nft", "list", "chain", "inet", "miniupnpd",
                                                   "prerouting_upnp").splitlines() if "dnat" in line]

    def tmp(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix=f"{self.tag}-")
        return self._tmp

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
                if proc.args[4] == MINIUPNPD:
                    proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for name in reversed(self.names):
            sh("ip", "netns", "del", name, check=False)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


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
