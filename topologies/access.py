"""The access network of each IPv6 transition mechanism, as data: the host's and its element's addresses, what
the network provisions to the host (the offer ``p2pnode.tunnels.select`` chooses from), the element's data
planes, and what the rest of the network routes to the element. ``plan(mechanism, slot)``: ``slot`` keeps the
prefixes of several access networks apart in one network (the zoo gives each mechanism its own); slot 1 is
the plan of tests/tunnels/scenarios.py and RFC 7599's example 1.

Beyond the element: ``3fff:ffff::/64`` (RFC 9637) and ``198.51.100.0/24``, the element at ``::<slot>`` and
``.<slot>``; ``2001:db8::/32`` is the operators' own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network

from p2pnode.transition import addresses
from p2pnode.transition.mapping import MapRule, derive_ce
from p2pnode.transition.profiles import MECHANISMS

CORE6, CORE4 = IPv6Network("3fff:ffff::/64"), IPv4Network("198.51.100.0/24")
MAP_PORT = 1232  # the first port of the CE's port set (PSID 0x34), forwarded to the host behind it
TRANSLATORS = ("map-t", "464xlat")  # host sides that hand translated packets back to the kernel to send


@dataclass(frozen=True)
class Plan:
    mechanism: str
    access: str  # the access network's family: "4" (IPv6 over IPv4) or "6" (IPv4 over IPv6)
    host: list[str]  # the host's addresses on its access link
    element: list[str]  # the element's on the access link
    offer: dict  # what the network provisions (p2pnode.tunnels.select)
    element_planes: list[dict]
    routed: list[str]  # prefixes beyond the element, routed to its core address
    element_routes: list[tuple[str, str]] = field(default_factory=list)
    services: list[list[str]] = field(default_factory=list)  # other processes of the element (a DNS64)
    port: int | None = None  # the one port a listener behind it can be reached at (MAP: a forward in its set)
    core6: str = ""
    core4: str = ""

    @property
    def carried(self) -> str:
        return "6" if self.access == "4" else "4"

    @property
    def probe(self) -> str:
        """What the host pings through its mechanism: the element's own address beyond it."""
        return self.core6 if self.carried == "6" else self.core4

    @property
    def host_routes(self) -> list[tuple[str, str]]:
        return [("default", self.element[0].split("/")[0])] if self.access == "6" else []


def _plane(spec: dict, setup: list[str], tun: str = "tun0") -> dict:
    return {"spec": spec, "setup": setup, "tun": tun}


def _map(slot: int):
    """A MAP domain per slot: its rule, the CE's End-user prefix (EA bits 0x1234: IPv4 suffix .18, PSID 0x34),
    its DMR."""
    rule6 = IPv6Network((int(IPv6Network("2001:db8::/40").network_address) + ((slot - 1) << 88), 40))
    rule4 = IPv4Network("192.0.2.0/24") if slot == 1 else IPv4Network(f"198.18.{slot}.0/24")
    end_user = IPv6Network((int(rule6.network_address) + (0x1234 << 72), 56))
    dmr = IPv6Network(f"2001:db8:ffff:{slot - 1:x}::/64")
    rule = {"ipv6_prefix": str(rule6), "ipv4_prefix": str(rule4), "ea_len": 16}
    return rule, end_user, dmr


def map_ce_ipv4(slot: int = 1) -> str:
    rule, end_user, _ = _map(slot)
    ce = derive_ce(MapRule(IPv6Network(rule["ipv6_prefix"]), IPv4Network(rule["ipv4_prefix"]), 16), end_user)
    return str(ce.address)


def plan(mechanism: str, slot: int = 1) -> Plan:
    if mechanism not in MECHANISMS or mechanism == "native":
        raise ValueError(f"no access network for {mechanism!r}")
    core6, core4 = str(CORE6.network_address + slot), str(CORE4.network_address + slot)
    mtu = {name: f"ip link set TUN mtu {m.mtu}" for name, m in MECHANISMS.items()}
    common = {"core6": core6, "core4": core4}
    six = f"2001:db8:{slot:x}::"  # an IPv6 access network: host ::2, element ::1
    access6 = {"access": "6", "host": [f"{six}2/64"], "element": [f"{six}1/64"]}
    pool = f"203.0.113.{slot}"
    if mechanism == "6to4":
        return Plan("6to4", "4", ["192.0.2.10/24"], ["192.0.2.1/24"], {"relay_6to4": "192.0.2.1"},
                    [_plane({"mechanism": "6to4", "role": "relay", "own4": "192.0.2.1"},
                            ["ip -6 route add 2002::/16 dev TUN"])], ["2002::/16"], **common)
    if mechanism == "6rd":
        domain = {"prefix": "2001:db8::/32", "ipv4_mask_len": 8, "br": "10.100.100.254"}
        rd = addresses.SixRdDomain(IPv6Network(domain["prefix"]), 8)
        delegated = rd.delegated_prefix(IPv4Address("10.100.100.1"))
        return Plan("6rd", "4", ["10.100.100.1/24"], ["10.100.100.254/24"],
                    {"dhcpv4_6rd": {**domain, "br": [domain["br"]]}},
                    [_plane({"mechanism": "6rd", "role": "br", "own4": "10.100.100.254", **domain},
                            [f"ip -6 route add {delegated} dev TUN"])], [str(delegated)], **common)
    if mechanism == "isatap":
        prefix = "2001:db8:5::/64"
        return Plan("isatap", "4", ["10.0.0.5/24"], ["10.0.0.1/24"],
                    {"isatap_prl": ["10.0.0.1"], "isatap_prefix": prefix},
                    [_plane({"mechanism": "isatap", "role": "router", "own4": "10.0.0.1", "prefix": prefix},
                            [f"ip -6 route add {prefix} dev TUN"])], [prefix], **common)
    if mechanism == "6over4":  # a multicast segment with a 6over4 router on it
        prefix = "2001:db8:64::/64"
        return Plan("6over4", "4", ["10.1.0.1/24"], ["10.1.0.254/24"],
                    {"sixover4": {"prefix": prefix, "router": "10.1.0.254"}},
                    [_plane({"mechanism": "6over4", "own4": "10.1.0.254", "prefix": prefix},
                            ["ip route add 239.0.0.0/8 dev IF", "ip -6 addr add 2001:db8:64::a01:fe/64 dev TUN",
                             mtu["6over4"]])], [prefix], **common)
    if mechanism == "teredo":
        # the client's network is private (a NAT's inside, where Teredo is for): 6to4 is no candidate
        return Plan("teredo", "4", ["10.2.0.10/24"], ["10.2.0.1/24"],
                    {"teredo_servers": ["10.2.0.1"], "teredo_relay": "10.2.0.1:3545"},
                    [_plane({"mechanism": "teredo", "role": "server", "own4": "10.2.0.1"}, []),
                     _plane({"mechanism": "teredo", "role": "relay", "own6": core6, "port": 3545},
                            ["ip -6 route add 2001::/32 dev TUN"], tun="tun1")], ["2001::/32"], **common)
    if mechanism == "dslite":
        return Plan("dslite", **access6, offer={"aftr_name": "aftr.example.net", "aftr": f"{six}1"},
                    element_planes=[_plane({"mechanism": "dslite", "role": "aftr", "pool": [pool], "own6": f"{six}1"},
                                           [f"ip route add {pool}/32 dev TUN"])],
                    routed=[f"{six}/64", f"{pool}/32"], **common)
    if mechanism in ("map-e", "map-t"):
        rule, end_user, dmr = _map(slot)
        offer = {"delegated_prefix": str(end_user), "forward": f"192.168.1.1:{MAP_PORT}"}
        br = {"mechanism": mechanism, "role": "br", "rule": rule, "own6": f"{six}1", "own4": core4}
        setup = [f"ip route add {rule['ipv4_prefix']} dev TUN"]
        if mechanism == "map-e":
            offer["map_e"] = {"rule": rule, "br": f"{six}1"}
        else:
            offer.update(map_t={"rule": rule, "dmr": str(dmr)}, mtu6=1500)
            br.update(dmr=str(dmr), mtu6=1500)
            setup.append(f"ip -6 route add {dmr} dev TUN")
        return Plan(mechanism, **access6, offer=offer, element_planes=[_plane(br, setup)],
                    routed=[f"{six}/64", str(end_user), rule["ipv4_prefix"]],
                    element_routes=[(str(end_user), f"{six}2")], port=MAP_PORT, **common)
    # 464XLAT: a CLAT /64 delegated to the host, the PLAT with a DNS64 for RFC 7050 discovery
    clat = f"2001:db8:c:{slot - 1:x}::"
    return Plan("464xlat", **access6, offer={"dns64": f"[{six}1]:53", "clat6": f"{clat}64", "mtu6": 1500},
                element_planes=[_plane({"mechanism": "464xlat", "role": "plat", "pref64": "64:ff9b::/96",
                                        "pool": [pool], "own6": f"{six}1", "mtu6": 1500},
                                       [f"ip route add {pool}/32 dev TUN", "ip -6 route add 64:ff9b::/96 dev TUN"])],
                services=[["-m", "p2pnode.tunnels.dns64", "--pref64", "64:ff9b::/96", "--listen", f"[{six}1]:53"]],
                routed=[f"{six}/64", f"{clat}/64", f"{pool}/32"], element_routes=[(f"{clat}/64", f"{six}2")],
                **common)


PLANS = {name: plan(name) for name in MECHANISMS if name != "native"}
