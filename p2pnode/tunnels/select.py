"""``python -m p2pnode.tunnels.select OFFER_JSON``: a host chooses its transition mechanism itself and runs it.

What the host observes: its own interface addresses (native global IPv6, its IPv4 address), read from the
kernel, and what its access network provisions (the offer: DHCPv4 option 212, DHCPv6 options 64, 94, 95 and a
delegated prefix, an ISATAP potential-router list, a Pref64 — learnt here by RFC 7050 from the DNS64 the offer
names, as a host does —, IPv4 multicast, Teredo servers). ``selection.Selector``, the one the simulator runs,
orders the candidates; each probe starts the candidate's host-side data plane (built here from the same
observations) and sends one ping through it to the offer's probe address; a failed probe stops its plane and
the cascade goes on. The chosen planes keep running until SIGTERM.

Offer keys beyond the provisioning: ``probe`` {"4": IPv4, "6": IPv6} to ping through a tunnel; ``aftr`` (the
address the AFTR name resolves to), ``relay_6to4``, ``teredo_relay`` ("ip:port"), ``sixover4`` {"prefix",
"router"}, ``clat6`` (the CLAT's IPv6 address, delegated to it), ``forward`` (a MAP CE's port forward,
"ip:port"), ``mtu6`` (the IPv6 path MTU the translators assume), ``preferred`` (``[tunneling]
preferred_protocols``). Lines printed (JSON): ``{"probe": name}``, ``{"probe_failed": name, "reason"}``,
``{"selected": name, "fallbacks", "selection_time", "endpoints", "data_planes", "tried"}``, at the end
``{"stopped": {plane: counters}}``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from p2pnode.transition import addresses
from p2pnode.transition.addresses import SixRdDomain
from p2pnode.transition.mapping import MapRule, derive_ce
from p2pnode.transition.options import S46Config
from p2pnode.transition.profiles import MECHANISMS
from p2pnode.transition.selection import MechanismSelected, Observations, ProbeStarted, Selector, candidates
from p2pnode.tunnels.launch import plane_argv, read_json_line

V6_DEFAULT, V4_DEFAULT = "ip -6 route add default dev TUN", "ip route add default dev TUN"
READY_TIMEOUT = 10.0
QUALIFY_TIMEOUT = 6.0  # a Teredo client retries its solicitation after 4 s (RFC 4380 §5.2.1)


def interface_addresses(dump: list[dict]) -> tuple[tuple[IPv6Address, ...], IPv4Address | None]:
    """Native global IPv6 addresses and the IPv4 address, from ``ip -j addr`` (tunnel devices left out)."""
    six, four = [], None
    for link in dump:
        if link.get("ifname", "").startswith(("tun", "lo")):
            continue
        for info in link.get("addr_info", ()):
            if info.get("scope") != "global":
                continue
            if info["family"] == "inet6":
                six.append(IPv6Address(info["local"]))
            elif four is None:
                four = IPv4Address(info["local"])
    return tuple(six), four


def _rule(data: dict) -> MapRule:
    return MapRule(IPv6Network(data["ipv6_prefix"]), IPv4Network(data["ipv4_prefix"]), int(data["ea_len"]),
                   psid_offset=int(data.get("psid_offset", 6)))


def observations(offer: dict, six: tuple[IPv6Address, ...], four: IPv4Address | None,
                 pref64: IPv6Network | None = None) -> Observations:
    """What the host knows: its addresses and what its network provisions."""
    rd = offer.get("dhcpv4_6rd")
    map_e, map_t = offer.get("map_e"), offer.get("map_t")
    return Observations(
        ipv6_global=six, ipv4=four, nat_type=offer.get("nat_type", "none"),
        dhcpv4_6rd=SixRdDomain(IPv6Network(rd["prefix"]), int(rd["ipv4_mask_len"]),
                               tuple(IPv4Address(a) for a in rd["br"])) if rd else None,
        aftr_name=offer.get("aftr_name"),
        map_e=S46Config(False, (_rule(map_e["rule"]),), border_relays=(IPv6Address(map_e["br"]),)) if map_e else None,
        map_t=S46Config(True, (_rule(map_t["rule"]),), dmr=IPv6Network(map_t["dmr"])) if map_t else None,
        delegated_prefix=IPv6Network(offer["delegated_prefix"]) if "delegated_prefix" in offer else None,
        pref64=pref64,
        isatap_prl=tuple(IPv4Address(a) for a in offer.get("isatap_prl", ())),
        isatap_prefix=IPv6Network(offer["isatap_prefix"]) if "isatap_prefix" in offer else None,
        ipv4_multicast=bool(offer.get("sixover4")),
        teredo_servers=tuple(IPv4Address(a) for a in offer.get("teredo_servers", ())))


def host_planes(name: str, obs: Observations, offer: dict, endpoints: tuple[IPv6Address, ...]) -> list[dict]:
    """The host side of ``name`` as data planes (``{"spec", "setup", "wait", "on_event"}``), from what the host
    observed: the same values a real host's provisioning would configure."""
    mtu = f"ip link set TUN mtu {MECHANISMS[name].mtu}"
    v4, first = str(obs.ipv4), str(endpoints[0]) if endpoints else None
    if name == "6to4":
        spec = {"mechanism": "6to4", "role": "host", "own4": v4,
                "relay": offer.get("relay_6to4", str(addresses.SIXTOFOUR_RELAY_ANYCAST))}
        return [{"spec": spec, "setup": [f"ip -6 addr add {first}/16 dev TUN", mtu, V6_DEFAULT]}]
    if name == "6rd":
        d = obs.dhcpv4_6rd
        spec = {"mechanism": "6rd", "role": "ce", "own4": v4, "prefix": str(d.prefix),
                "ipv4_mask_len": d.ipv4_mask_len, "br": str(d.border_relays[0])}
        return [{"spec": spec, "setup": [f"ip -6 addr add {first}/64 dev TUN", mtu, V6_DEFAULT]}]
    if name == "isatap":
        spec = {"mechanism": "isatap", "role": "host", "own4": v4, "prefix": str(obs.isatap_prefix),
                "router": str(obs.isatap_prl[0])}
        return [{"spec": spec, "setup": [f"ip -6 addr add {first}/64 dev TUN", mtu, V6_DEFAULT]}]
    if name == "6over4":
        site = offer["sixover4"]
        own6 = addresses.sixover4_address(site["prefix"], obs.ipv4)
        spec = {"mechanism": "6over4", "own4": v4, "prefix": site["prefix"], "router": site["router"]}
        return [{"spec": spec, "setup": ["ip route add 239.0.0.0/8 dev IF", f"ip -6 addr add {own6}/64 dev TUN", mtu,
                                         V6_DEFAULT]}]
    if name == "teredo":
        spec = {"mechanism": "teredo", "role": "client", "server": str(obs.teredo_servers[0]),
                "relay": offer["teredo_relay"], "port": int(offer.get("teredo_port", 40000))}
        return [{"spec": spec, "setup": [mtu], "wait": "qualified",
                 "on_event": ["qualified:ip -6 addr add {qualified}/32 dev TUN", f"qualified:{V6_DEFAULT}"]}]
    if name == "dslite":
        spec = {"mechanism": "dslite", "role": "b4", "aftr": offer["aftr"]}
        return [{"spec": spec, "setup": ["ip addr add 192.0.0.2/29 dev TUN", mtu, V4_DEFAULT]}]
    if name in ("map-e", "map-t"):
        config = obs.map_e if name == "map-e" else obs.map_t
        rule = config.bmr
        ce = derive_ce(rule, obs.delegated_prefix)
        data = {"ipv6_prefix": str(rule.ipv6_prefix), "ipv4_prefix": str(rule.ipv4_prefix), "ea_len": rule.ea_len,
                "psid_offset": rule.psid_offset}
        spec = {"mechanism": name, "role": "ce", "rule": data, "end_user": str(obs.delegated_prefix),
                **({"forward": [offer["forward"]]} if "forward" in offer else {})}
        setup = ["ip addr add 192.168.1.1/24 dev TUN", mtu, f"{V4_DEFAULT} src 192.168.1.1"]
        if name == "map-e":
            spec["br"] = str(config.border_relays[0])
            setup.insert(0, f"ip addr add {ce.ipv6}/128 dev lo")
        else:
            spec.update(dmr=str(config.dmr), mtu6=int(offer.get("mtu6", 1280)))
            setup.append(f"ip -6 route add {ce.ipv6}/128 dev TUN")
        return [{"spec": spec, "setup": setup}]
    if name == "464xlat":
        spec = {"mechanism": "464xlat", "role": "clat", "clat6": offer["clat6"], "pref64": str(obs.pref64),
                "mtu6": int(offer.get("mtu6", 1280))}
        return [{"spec": spec, "setup": ["ip addr add 192.0.0.1/29 dev TUN", mtu, V4_DEFAULT,
                                         f"ip -6 route add {offer['clat6']}/128 dev TUN"]}]
    raise ValueError(f"no host side for {name!r}")


class Agent:
    def __init__(self, offer: dict, python: str | None = None, interface: str = "eth0"):
        self.offer, self.python, self.interface = offer, python, interface
        self.running: dict[str, list[tuple[subprocess.Popen, dict]]] = {}  # mechanism -> its planes

    def emit(self, obj: dict) -> None:
        print(json.dumps(obj), flush=True)

    def observe(self) -> Observations:
        dump = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout)
        six, four = interface_addresses(dump)
        names = [link["ifname"] for link in dump if not link["ifname"].startswith(("tun", "lo"))]
        self.interface = names[0] if names else self.interface
        pref64 = None
        if "pref64" in self.offer:
            pref64 = IPv6Network(self.offer["pref64"])
        elif "dns64" in self.offer:  # RFC 7050: the AAAA records of ipv4only.arpa
            from p2pnode.tunnels.dns64 import discover_pref64

            host, _, port = self.offer["dns64"].rpartition(":")
            found = discover_pref64((host.strip("[]"), int(port)))
            pref64 = found[0] if found else None
        return observations(self.offer, six, four, pref64)

    def start(self, name: str, planes: list[dict]) -> tuple[bool, str, tuple[IPv6Address, ...]]:
        """Start ``name``'s planes; (started, why not, addresses obtained on the way)."""
        self.running[name] = []
        obtained: tuple[IPv6Address, ...] = ()
        for i, plane in enumerate(planes):
            setup = [c.replace("IF", self.interface) for c in plane["setup"]]
            argv = plane_argv(plane["spec"], setup, f"tun{i}", plane.get("on_event", ()), self.python)
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            ready = read_json_line(proc.stdout, time.monotonic() + READY_TIMEOUT)
            self.running[name].append((proc, ready or {}))
            if not ready or "ready" not in ready:
                return False, f"plane did not start: {proc.stderr.read1().decode(errors='replace').strip()}", ()
            wait = plane.get("wait")
            if wait:
                deadline, hooks = time.monotonic() + QUALIFY_TIMEOUT, len(plane.get("on_event", ()))
                while True:
                    line = read_json_line(proc.stdout, deadline)
                    if line is None:
                        return False, f"no {wait} in {QUALIFY_TIMEOUT:g} s", ()
                    if wait in line:
                        obtained = (IPv6Address(line[wait]),)
                        break
                for _ in range(hooks):
                    hook = read_json_line(proc.stdout, time.monotonic() + 5.0)
                    if hook is None or hook.get("rc"):
                        return False, f"configuring the {wait} address failed: {hook}", ()
        return True, "", obtained

    def stop(self, name: str) -> dict:
        finals = {}
        for i, (proc, _) in enumerate(self.running.pop(name, [])):
            proc.terminate()
            try:
                out, _ = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            lines = [json.loads(x) for x in out.decode(errors="replace").splitlines() if x.startswith("{")]
            finals[f"{name} tun{i}"] = next((x for x in reversed(lines) if "stats" in x), {})
        return finals

    def probe(self, name: str, obs: Observations, endpoints) -> tuple[bool, str, tuple[IPv6Address, ...]]:
        ok, reason, obtained = self.start(name, host_planes(name, obs, self.offer, endpoints))
        if ok:
            family = MECHANISMS[name].carries[-1]  # "ipv6" -> "6"
            target = self.offer["probe"][family]
            ping = subprocess.run(["ping", f"-{family}", "-c", "1", "-W", "2", target], capture_output=True, text=True)
            ok, reason = ping.returncode == 0, f"no answer from {target} through it"
        if not ok:
            self.stop(name)
        return ok, reason, obtained

    def select(self) -> MechanismSelected:
        obs = self.observe()
        preferred = tuple(self.offer.get("preferred", ("native", "dslite", "teredo")))
        selector = Selector(preferred, cascade=True)
        t0 = time.monotonic()
        selector.observe(obs, 0.0)
        offered = {c.name: c.endpoints for c in candidates(obs)}
        while selector.active is None:
            for name in list(selector.probes):
                selector.probes.remove(name)
                self.emit({"probe": name})
                ok, reason, obtained = self.probe(name, obs, offered.get(name, ()))
                if not ok:
                    self.emit({"probe_failed": name, "reason": reason})
                selector.probe_result(name, ok, time.monotonic() - t0, obtained, reason)
                if selector.active is not None:
                    break
            if selector.active is None:
                timer = selector.next_timer()
                if timer is not None:
                    time.sleep(max(0.0, timer - (time.monotonic() - t0)))
                selector.handle_timer(time.monotonic() - t0)
        chosen = next(e for e in reversed(selector.events) if isinstance(e, MechanismSelected))
        for name in [n for n in self.running if n != chosen.name]:  # probes still up that lost the race
            self.stop(name)
        tried = [e.name for e in selector.events if isinstance(e, ProbeStarted)]
        self.emit({"selected": chosen.name, "fallbacks": tried.index(chosen.name) if chosen.name in tried
                   else len(tried), "selection_time": round(chosen.now, 6),
                   "endpoints": [str(a) for a in chosen.endpoints], "tried": tried,
                   "data_planes": [ready.get("data_plane", "?") for _, ready in self.running.get(chosen.name, [])]})
        return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2pnode.tunnels.select", description=__doc__.split("\n\n")[0])
    parser.add_argument("offer", help="what the access network provisions, as JSON")
    args = parser.parse_args(argv)
    agent = Agent(json.loads(args.offer))
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    chosen = agent.select()
    while not stopping:
        signal.pause()
    agent.emit({"stopped": agent.stop(chosen.name)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
