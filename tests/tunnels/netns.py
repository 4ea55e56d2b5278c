"""Network namespaces, veth links and data-plane processes for the root tests: a few ``ip`` commands,
cleaned up whatever happens."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

SKIP = None
if sys.platform != "linux" or os.geteuid() != 0:
    SKIP = "needs root and Linux network namespaces (run with -m root)"
elif not shutil.which("ip") or not os.path.exists("/dev/net/tun"):
    SKIP = "needs iproute2 and /dev/net/tun"


def sh(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


class Net:
    """Namespaces named ``p2pt<pid>-<name>`` and the planes running in them."""

    def __init__(self, *names: str):
        self.tag = f"p2pt{os.getpid() % 100000}"
        self.ns = {name: f"{self.tag}-{name}" for name in names}
        self.procs: list[tuple[subprocess.Popen, str]] = []
        for name in self.ns.values():
            sh("ip", "netns", "add", name)
            self.run(name, "ip", "link", "set", "lo", "up")
            for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                        "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"):
                self.run(name, "sysctl", "-qw", key)

    def run(self, ns: str, *argv: str, check: bool = True) -> str:
        ns = self.ns.get(ns, ns)
        return sh("ip", "netns", "exec", ns, *argv, check=check)

    def link(self, a: str, a_dev: str, b: str, b_dev: str, a_addrs=(), b_addrs=()):
        sh("ip", "link", "add", f"{self.tag}x", "type", "veth", "peer", "name", f"{self.tag}y")
        sh("ip", "link", "set", f"{self.tag}x", "netns", self.ns[a], "name", a_dev)
        sh("ip", "link", "set", f"{self.tag}y", "netns", self.ns[b], "name", b_dev)
        for ns, dev, addrs in ((a, a_dev, a_addrs), (b, b_dev, b_addrs)):
            for addr in addrs:
                self.run(ns, "ip", "addr", "add", addr, "dev", dev, *(["nodad"] if ":" in addr else []))
            self.run(ns, "ip", "link", "set", dev, "up")

    def plane(self, ns: str, spec: dict, setup: list[str], tun: str = "tun0") -> tuple[subprocess.Popen, dict]:
        """Start a data plane in ``ns`` and wait for its ready line."""
        argv = ["ip", "netns", "exec", self.ns[ns], sys.executable, "-m", "p2pnode.tunnels", json.dumps(spec),
                "--tun", tun]
        for command in [f"ip link set {tun} up", *setup]:
            argv += ["--setup", command.replace("TUN", tun)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append((proc, ns))
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"data plane in {ns} did not start: {proc.stderr.read()}")
        return proc, json.loads(line)

    def wait_line(self, proc: subprocess.Popen, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line:
                return json.loads(line)
        raise TimeoutError("no line from the data plane")

    def stop(self) -> list[dict]:
        """Stop every plane; their final counters (checked: no endpoint raised)."""
        finals = []
        for proc, _ in self.procs:
            proc.terminate()
        for proc, ns in self.procs:
            try:
                out, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            final = next((x for x in reversed(lines) if "stats" in x), {"stats": {}, "drops": {}, "stderr": err})
            final["ns"] = ns
            finals.append(final)
        self.procs.clear()
        return finals

    def close(self):
        try:
            self.stop()
        finally:
            for name in self.ns.values():
                sh("ip", "netns", "del", name, check=False)

    def ping(self, ns: str, target: str, size: int = 56, count: int = 1, df: bool = False) -> bool:
        return self.ping_output(ns, target, size, count, df)[0]

    def ping_output(self, ns: str, target: str, size: int = 56, count: int = 1, df: bool = False) -> tuple[bool, str]:
        argv = ["ping", "-c", str(count), "-W", "2", "-s", str(size)]
        if df:
            argv += ["-M", "do"]
        proc = subprocess.run(["ip", "netns", "exec", self.ns[ns], *argv, target], capture_output=True, text=True,
                              timeout=30)
        return proc.returncode == 0, proc.stdout + proc.stderr
