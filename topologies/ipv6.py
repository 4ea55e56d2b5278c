"""IPv6 (and the matching IPv4) configuration of Mininet nodes, and an IPv6 reachability check.

Everything here works on objects with Mininet's ``Node`` interface (``cmd``, ``intfList``, ``name``) and runs
its commands inside the node's network namespace through the node's shell. Addresses are always added with
``nodad`` and ``accept_dad=0`` is set (all, default and per interface), so an address is usable at once —
duplicate address detection would otherwise hold it "tentative" for a second or more. ``disable_ipv6=0`` is
set explicitly because a new namespace inherits nothing useful here and some distributions ship it off.

``BridgeNf`` turns ``net.bridge.bridge-nf-call-ip6tables`` (and ``…-iptables``, ``…-arptables``) off while a
network runs: with them on, frames crossing a Linux bridge in the root namespace are passed through the root
namespace's ip6tables/iptables/arptables, where a host firewall (or Docker's FORWARD policy) can drop them.

``reachability(net, hosts)`` replaces Mininet's IPv4-only ``pingall``: every host pings every other host's
IPv6 address, all pairs of one source at once (``xargs -P``) and all sources in parallel; it returns the
pairs that failed.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

BRIDGE_NF_KEYS = ("bridge-nf-call-ip6tables", "bridge-nf-call-iptables", "bridge-nf-call-arptables")
BRIDGE_NF_DIR = Path("/proc/sys/net/bridge")


class ConfigError(RuntimeError):
    """A command that configures a node printed an error."""


def run(node, command: str) -> str:
    """Run ``command`` in the node's shell; raise ConfigError when it exits non-zero (output included)."""
    out = node.cmd(f"{command}; echo __rc=$?")
    text, _, rc = out.rpartition("__rc=")
    if rc.strip() != "0":
        raise ConfigError(f"{node.name}: `{command}` failed ({rc.strip()}): {text.strip()}")
    return text


def sysctl(node, settings: dict[str, str | int]) -> None:
    """Write sysctls inside the node's namespace (``/proc/sys/net`` is per namespace)."""
    if settings:
        args = " ".join(f"{shlex.quote(key)}={value}" for key, value in settings.items())
        run(node, f"sysctl -q -w {args} >/dev/null")


def prepare_namespace(node, router: bool = False, ipv6: bool = True) -> None:
    """Namespace-wide settings, best done before interfaces exist (new interfaces copy ``default``)."""
    conf = "net.ipv6.conf"
    settings: dict[str, str | int] = {}
    for scope in ("all", "default"):
        settings[f"{conf}.{scope}.disable_ipv6"] = 0 if ipv6 else 1
        if ipv6:
            settings[f"{conf}.{scope}.accept_dad"] = 0
            settings[f"{conf}.{scope}.dad_transmits"] = 0
    if router:
        settings[f"{conf}.all.forwarding"] = 1
        settings["net.ipv4.ip_forward"] = 1
    sysctl(node, settings)


def prepare_interface(node, intf: str, ipv6: bool = True) -> None:
    conf = f"net.ipv6.conf.{intf}"
    if ipv6:
        sysctl(node, {f"{conf}.disable_ipv6": 0, f"{conf}.accept_dad": 0, f"{conf}.dad_transmits": 0})
    else:
        sysctl(node, {f"{conf}.disable_ipv6": 1})


def add_address6(node, intf: str, cidr: str) -> None:
    ipaddress.IPv6Interface(cidr)  # validate before the shell sees it
    run(node, f"ip -6 addr replace {cidr} dev {intf} nodad")


def add_address4(node, intf: str, cidr: str) -> None:
    ipaddress.IPv4Interface(cidr)
    run(node, f"ip -4 addr replace {cidr} dev {intf}")


def add_route(node, prefix: str, via: str, dev: str | None = None) -> None:
    """``prefix`` is a network or ``default``; the family follows ``via``."""
    family = "-6" if ipaddress.ip_address(via).version == 6 else "-4"
    if prefix != "default":
        ipaddress.ip_network(prefix)
    run(node, f"ip {family} route replace {prefix} via {via}" + (f" dev {dev}" if dev else ""))


def configure_node(node, router: bool = False, addresses: dict[str, Sequence[str]] | None = None,
                   routes: Iterable[tuple[str, str]] = ()) -> None:
    """Full configuration of one node: sysctls, IPv6/IPv4 addresses per interface name, static routes.

    ``addresses`` maps interface names to CIDRs of either family; ``routes`` are (prefix, via) pairs.
    """
    prepare_namespace(node, router=router)
    run(node, "ip link set lo up")
    for intf in node.intfList():
        name = str(intf)
        if name == "lo":
            continue
        prepare_interface(node, name)
    for intf, cidrs in (addresses or {}).items():
        for cidr in cidrs:
            if ipaddress.ip_interface(cidr).version == 6:
                add_address6(node, intf, cidr)
            else:
                add_address4(node, intf, cidr)
    for prefix, via in routes:
        add_route(node, prefix, via)


def global_addresses6(node) -> list[str]:
    """The node's global IPv6 addresses (without prefix length), in the kernel's order."""
    out = node.cmd("ip -6 -o addr show scope global")
    return [line.split()[3].split("/")[0] for line in out.splitlines() if " inet6 " in line]


class BridgeNf:
    """Set ``net.bridge.bridge-nf-call-*`` to 0 for the lifetime of a run; ``restore()`` puts the old values back.

    ``saved`` (key -> previous value) is what a crashed run's cleanup needs to restore; it is empty when the
    bridge netfilter module is not loaded (nothing to do then).
    """

    def __init__(self, keys: Sequence[str] = BRIDGE_NF_KEYS):
        self.keys = tuple(keys)
        self.saved: dict[str, str] = {}

    def disable(self) -> dict[str, str]:
        for key in self.keys:
            path = BRIDGE_NF_DIR / key
            try:
                value = path.read_text().strip()
            except OSError:
                continue
            if value != "0":
                path.write_text("0\n")
                self.saved[key] = value
        return dict(self.saved)

    def restore(self) -> None:
        restore_bridge_nf(self.saved)
        self.saved.clear()

    def __enter__(self) -> BridgeNf:
        self.disable()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def restore_bridge_nf(saved: dict[str, str]) -> None:
    for key, value in saved.items():
        if key in BRIDGE_NF_KEYS:
            try:
                (BRIDGE_NF_DIR / key).write_text(f"{value}\n")
            except OSError:
                pass


def _nodes_and_addresses(net, hosts: Sequence[str] | None):
    """(name -> node, name -> IPv6 address) for an EmulatedNetwork or a plain Mininet network."""
    if hasattr(net, "node") and hasattr(net, "ip6") and hasattr(net, "hosts"):  # EmulatedNetwork
        names = list(net.hosts if hosts is None else hosts)
        return {n: net.node(n) for n in names}, {n: net.ip6(n) for n in names}
    names = [h.name for h in net.hosts] if hosts is None else list(hosts)
    nodes = {n: net[n] for n in names}
    addresses = {}
    for name, node in nodes.items():
        found = global_addresses6(node)
        if found:
            addresses[name] = found[0]
    return nodes, addresses


def reachability(net, hosts: Sequence[str] | None = None, timeout_s: float = 3.0,
                 parallel: int = 32) -> list[tuple[str, str, str]]:
    """Ping6 every ordered pair of ``hosts`` (default: all end hosts); returns the failed (src, dst, address).

    A pair counts as reachable when one echo reply arrives within ``timeout_s`` (requests every 0.2 s, so the
    first neighbour discovery does not cost a failure). Sources run in parallel, each with up to ``parallel``
    pings at a time.
    """
    nodes, addresses = _nodes_and_addresses(net, hosts)
    failures: list[tuple[str, str, str]] = []
    names = list(nodes)
    deadline = max(1, int(round(timeout_s)))
    started = []
    for src in names:
        pairs = [(dst, addresses.get(dst)) for dst in names if dst != src]
        for dst, addr in pairs:
            if addr is None:
                failures.append((src, dst, ""))
        lines = " ".join(shlex.quote(f"{dst} {addr}") for dst, addr in pairs if addr)
        if not lines:
            continue
        # One line only: the node's shell is interactive, a newline would end the command.
        script = (f"printf '%s\\n' {lines} | xargs -P {parallel} -L 1 sh -c "
                  + shlex.quote(f'ping -6 -n -q -c 1 -i 0.2 -w {deadline} "$1" >/dev/null 2>&1 '
                                '&& echo "P2PE-OK $0 $1" || echo "P2PE-FAIL $0 $1"'))
        nodes[src].sendCmd(script)
        started.append(src)
    for src in started:
        out = nodes[src].waitOutput()
        seen = set()
        for line in out.splitlines():
            parts = line.strip().split()
            if len(parts) == 3 and parts[0] in ("P2PE-OK", "P2PE-FAIL"):
                seen.add(parts[1])
                if parts[0] == "P2PE-FAIL":
                    failures.append((src, parts[1], parts[2]))
        for dst in names:
            if dst != src and dst not in seen and addresses.get(dst) and (src, dst, addresses[dst]) not in failures:
                failures.append((src, dst, addresses[dst]))
    return sorted(failures)
