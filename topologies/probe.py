"""What the kernel (and userland) offers for network emulation, probed in a scratch network namespace.

``probe()`` creates one namespace (``p2pe-probe-<pid>``), tries each feature there for real — a netem qdisc
on a veth, htb and tbf qdiscs, sit/ip6tnl/gre/VXLAN/bridge devices, a TUN device (``ip tuntap`` opens
/dev/net/tun and issues the TUNSETIFF ioctl), an nftables table and a NAT (masquerade) chain — and deletes
the namespace again, also on errors, which removes everything created inside it. Nothing is sent: the
devices stay down. Open vSwitch counts as available only when ``ovs-vsctl show`` reaches a running
ovsdb-server *and* the kernel datapath (module ``openvswitch``) is present. ``relay`` says whether the
user-space link emulator (``topologies.relay``) can run: AF_PACKET sockets with PACKET_VNET_HDR.

``python -m topologies.probe`` prints the result as JSON (exit status 0 even when features are missing).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

FEATURES = ("veth", "netem", "htb", "tbf", "sit", "ip6tnl", "gre", "ovs", "tun", "vxlan", "nftables", "nat",
            "bridge", "relay", "mininet")
TIMEOUT = 2.0


@dataclass(frozen=True)
class Capability:
    available: bool
    detail: str


def _run(argv: list[str], stdin: str | None = None, timeout: float = TIMEOUT) -> tuple[bool, str]:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return False, f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return False, f"{' '.join(argv)}: timed out after {timeout}s"
    out = " ".join((proc.stderr.strip() or proc.stdout.strip()).split())
    return proc.returncode == 0, out


def _cmd(argv: list[str], ok_detail: str, stdin: str | None = None) -> Capability:
    ok, out = _run(argv, stdin)
    if ok:
        return Capability(True, ok_detail)
    shown = [a for a in argv if a not in ("-n",) and not a.startswith("p2pe-probe-")]
    return Capability(False, f"`{' '.join(shown)}`: {out or 'failed'}")


def _probe_qdisc(ns: str, dev: str, kind: str, cmds: list[list[str]], detail: str) -> Capability:
    for argv in cmds:
        ok, out = _run(["tc", "-n", ns, *argv])
        if not ok:
            _run(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"])
            return Capability(False, f"`tc {' '.join(argv)}`: {out or 'failed'}")
    ok, out = _run(["tc", "-n", ns, "qdisc", "show", "dev", dev])
    _run(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"])
    if not ok or f"qdisc {kind}" not in out:
        return Capability(False, f"qdisc {kind} was accepted but is not installed: {out}")
    return Capability(True, detail)


def _probe_ovs() -> Capability:
    if not shutil.which("ovs-vsctl"):
        return Capability(False, "ovs-vsctl not installed")
    ok, out = _run(["ovs-vsctl", "--timeout=1", "show"])
    if not ok:
        return Capability(False, f"ovs-vsctl show failed: {out}")
    if os.path.exists("/sys/module/openvswitch"):
        return Capability(True, "ovsdb-server reachable, kernel module openvswitch loaded")
    ok, out = _run(["ip", "-d", "link", "show", "ovs-system"])
    if ok:
        return Capability(True, "ovsdb-server reachable, kernel datapath ovs-system present")
    return Capability(False, "ovs-vsctl show works but the kernel module openvswitch is not loaded")


def _probe_relay() -> Capability:
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: receives nothing
    except (OSError, AttributeError) as exc:
        return Capability(False, f"AF_PACKET socket: {exc}")
    try:
        sock.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
    except OSError as exc:
        return Capability(False, f"PACKET_VNET_HDR: {exc.strerror}")
    finally:
        sock.close()
    return Capability(True, "AF_PACKET with PACKET_VNET_HDR (python -m topologies.relay)")


def _probe_mininet() -> Capability:
    try:
        import mininet  # noqa: F401
        from mininet.net import Mininet  # noqa: F401
    except ImportError as exc:
        return Capability(False, f"cannot import mininet ({exc}); pip install mininet==2.3.0.dev6")
    if not shutil.which("mnexec"):
        return Capability(False, "mnexec not found (apt-get install mininet)")
    version = getattr(sys.modules["mininet.net"], "VERSION", "?")
    return Capability(True, f"mininet {version}, mnexec at {shutil.which('mnexec')}")


NFT_FILTER = "table inet p2pe_probe {\n chain c {\n  type filter hook output priority 0;\n }\n}\n"
NFT_NAT = ("table ip p2pe_probe_nat {\n chain post {\n  type nat hook postrouting priority 100;\n"
           '  oifname "pv0" masquerade persistent\n  oifname "pv1" masquerade fully-random\n }\n}\n')


def probe() -> dict[str, Capability]:
    """Probe every feature in ``FEATURES``; takes well under 2 s and leaves nothing behind."""
    if platform.system() != "Linux":
        return {name: Capability(False, f"not Linux ({platform.system()})") for name in FEATURES}
    result: dict[str, Capability] = {}
    result["mininet"] = _probe_mininet()
    result["relay"] = _probe_relay()
    result["ovs"] = _probe_ovs()
    if os.geteuid() != 0:
        for name in FEATURES:
            result.setdefault(name, Capability(False, "needs root (network namespaces)"))
        return {name: result[name] for name in FEATURES}
    ns = f"p2pe-probe-{os.getpid()}"
    ok, out = _run(["ip", "netns", "add", ns])
    if not ok:
        for name in FEATURES:
            result.setdefault(name, Capability(False, f"cannot create a network namespace: {out}"))
        return {name: result[name] for name in FEATURES}
    try:
        ipn = ["ip", "-n", ns]
        result["veth"] = _cmd([*ipn, "link", "add", "pv0", "type", "veth", "peer", "name", "pv1"], "veth pair")
        if result["veth"].available:
            result["netem"] = _probe_qdisc(ns, "pv0", "netem", [["qdisc", "add", "dev", "pv0", "root", "netem",
                                                                 "delay", "1ms", "loss", "1%"]],
                                           "netem qdisc on a veth")
            result["htb"] = _probe_qdisc(ns, "pv0", "htb", [
                ["qdisc", "add", "dev", "pv0", "root", "handle", "5:", "htb", "default", "1"],
                ["class", "add", "dev", "pv0", "parent", "5:", "classid", "5:1", "htb", "rate", "10mbit"],
            ], "htb qdisc and class on a veth")
            result["tbf"] = _probe_qdisc(ns, "pv1", "tbf", [["qdisc", "add", "dev", "pv1", "root", "tbf", "rate",
                                                             "10mbit", "burst", "15k", "latency", "50ms"]],
                                         "tbf qdisc on a veth")
        else:
            for name in ("netem", "htb", "tbf"):
                result[name] = Capability(False, "no veth pair to probe on")
        result["bridge"] = _cmd([*ipn, "link", "add", "pbr", "type", "bridge"], "Linux bridge")
        result["sit"] = _cmd([*ipn, "link", "add", "psit", "type", "sit"], "sit (IPv6-in-IPv4) tunnel device")
        result["ip6tnl"] = _cmd([*ipn, "link", "add", "p6tnl", "type", "ip6tnl"], "ip6tnl tunnel device")
        result["gre"] = _cmd([*ipn, "link", "add", "pgre", "type", "gre"], "GRE tunnel device")
        result["vxlan"] = _cmd([*ipn, "link", "add", "pvx", "type", "vxlan", "id", "42", "dstport", "4789"],
                               "VXLAN device")
        result["tun"] = _cmd([*ipn, "tuntap", "add", "dev", "ptun", "mode", "tun"],
                             "/dev/net/tun open + TUNSETIFF (ip tuntap)")
        if shutil.which("nft"):
            result["nftables"] = _cmd(["ip", "netns", "exec", ns, "nft", "-f", "-"], "nftables table in a netns",
                                      stdin=NFT_FILTER)
            if result["veth"].available:
                result["nat"] = _cmd(["ip", "netns", "exec", ns, "nft", "-f", "-"],
                                     "nftables nat chain: masquerade persistent / fully-random", stdin=NFT_NAT)
            else:
                result["nat"] = Capability(False, "no veth pair to probe on")
        else:
            result["nftables"] = result["nat"] = Capability(False, "nft not installed (apt-get install nftables)")
    finally:
        deleted, out = _run(["ip", "netns", "delete", ns])
        if not deleted:  # retry once; a busy namespace (should not happen) is reported on stderr
            time.sleep(0.05)
            deleted, out = _run(["ip", "netns", "delete", ns])
            if not deleted:
                print(f"probe: could not delete namespace {ns}: {out}", file=sys.stderr)
    return {name: result[name] for name in FEATURES}


def main() -> int:
    started = time.monotonic()
    caps = probe()
    report = {name: asdict(cap) for name, cap in caps.items()}
    report["_elapsed_s"] = round(time.monotonic() - started, 3)  # type: ignore[assignment]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
