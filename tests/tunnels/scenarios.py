"""One small access network per mechanism, in namespaces: ``h`` the host side, ``i`` the
infrastructure element, ``f`` a far host on the other address family. Each builder starts the data
planes and returns what to ping from ``h``.

Address plan: the access link h0-i0, the far link i1-f0; 3fff::/20 (RFC 9637) is the native IPv6
beyond the infrastructure, 198.51.100.0/24 the IPv4 Internet, 2001:db8::/32 the operator's own.
"""

from __future__ import annotations

import time

from tests.tunnels.netns import Net

FAR6, FAR4 = "3fff:ffff::99", "198.51.100.80"


def _mtu(mtu: int, hint: bool) -> list[str]:
    """The TUN device's MTU: the tunnel's, or (``hint`` off) 1500, so the data plane itself must refuse
    what does not fit and say so with an ICMP error."""
    return [f"ip link set TUN mtu {mtu if hint else 1500}"]


def _far6(net: Net):
    net.link("i", "i1", "f", "f0", ["3fff:ffff::1/64"], [f"{FAR6}/64"])
    net.run("f", "ip", "-6", "route", "add", "default", "via", "3fff:ffff::1")


def _far4(net: Net):
    net.link("i", "i1", "f", "f0", ["198.51.100.1/24"], [f"{FAR4}/24"])
    net.run("f", "ip", "route", "add", "default", "via", "198.51.100.1")


def sixtofour(net: Net, hint_mtu: bool = True) -> str:
    net.link("h", "h0", "i", "i0", ["192.0.2.10/24"], ["192.0.2.1/24"])
    _far6(net)
    net.plane("i", {"mechanism": "6to4", "role": "relay", "own4": "192.0.2.1"}, ["ip -6 route add 2002::/16 dev TUN"])
    net.plane("h", {"mechanism": "6to4", "role": "host", "own4": "192.0.2.10", "relay": "192.0.2.1"},
              ["ip -6 addr add 2002:c000:20a::c000:20a/16 dev TUN", *_mtu(1480, hint_mtu),
               "ip -6 route add default dev TUN"])
    return FAR6


def sixrd(net: Net) -> str:
    net.link("h", "h0", "i", "i0", ["10.100.100.1/24"], ["10.100.100.254/24"])
    _far6(net)
    domain = {"prefix": "2001:db8::/32", "ipv4_mask_len": 8, "br": "10.100.100.254"}
    net.plane("i", {"mechanism": "6rd", "role": "br", "own4": "10.100.100.254", **domain},
              ["ip -6 route add 2001:db8::/32 dev TUN"])
    net.plane("h", {"mechanism": "6rd", "role": "ce", "own4": "10.100.100.1", **domain},
              ["ip -6 addr add 2001:db8:6464:100::1/64 dev TUN", "ip link set TUN mtu 1480",
               "ip -6 route add default dev TUN"])
    return FAR6


def isatap(net: Net) -> str:
    net.link("h", "h0", "i", "i0", ["10.0.0.5/24"], ["10.0.0.1/24"])
    _far6(net)
    net.plane("i", {"mechanism": "isatap", "role": "router", "own4": "10.0.0.1", "prefix": "2001:db8:5::/64"},
              ["ip -6 route add 2001:db8:5::/64 dev TUN"])
    net.plane("h", {"mechanism": "isatap", "role": "host", "own4": "10.0.0.5", "prefix": "2001:db8:5::/64",
                    "router": "10.0.0.1"},
              ["ip -6 addr add 2001:db8:5::5efe:a00:5/64 dev TUN", "ip link set TUN mtu 1480",
               "ip -6 route add default dev TUN"])
    return FAR6


def sixover4(net: Net) -> str:
    """Two hosts on one multicast-capable IPv4 segment (6over4 has no infrastructure): the far end is i."""
    net.link("h", "h0", "i", "i0", ["10.1.0.1/24"], ["10.1.0.2/24"])
    for ns, own, dev in (("h", "10.1.0.1", "h0"), ("i", "10.1.0.2", "i0")):
        net.run(ns, "ip", "route", "add", "239.0.0.0/8", "dev", dev)
        v6 = "2001:db8:64::a01:" + own.rsplit(".", 1)[1]
        net.plane(ns, {"mechanism": "6over4", "own4": own, "prefix": "2001:db8:64::/64"},
                  [f"ip -6 addr add {v6}/64 dev TUN", "ip link set TUN mtu 1480"])
    return "2001:db8:64::a01:2"


def teredo(net: Net, hint_mtu: bool = True) -> str:
    net.link("h", "h0", "i", "i0", ["192.0.2.10/24"], ["192.0.2.1/24"])
    _far6(net)
    net.plane("i", {"mechanism": "teredo", "role": "server", "own4": "192.0.2.1"}, [], tun="tun0")
    net.plane("i", {"mechanism": "teredo", "role": "relay", "own6": "3fff:ffff::1", "port": 3545},
              ["ip -6 route add 2001::/32 dev TUN"], tun="tun1")
    proc, _ = net.plane("h", {"mechanism": "teredo", "role": "client", "server": "192.0.2.1",
                              "relay": "192.0.2.1:3545", "port": 40000}, _mtu(1280, hint_mtu))
    address = net.wait_line(proc)["qualified"]
    net.run("h", "ip", "-6", "addr", "add", f"{address}/32", "dev", "tun0")
    net.run("h", "ip", "-6", "route", "add", "default", "dev", "tun0")
    return FAR6


def dslite(net: Net, hint_mtu: bool = True) -> str:
    net.link("h", "h0", "i", "i0", ["2001:db8:1::2/64"], ["2001:db8:1::1/64"])
    _far4(net)
    net.plane("i", {"mechanism": "dslite", "role": "aftr", "pool": ["203.0.113.1"], "own6": "2001:db8:1::1"},
              ["ip route add 203.0.113.1/32 dev TUN"])
    net.plane("h", {"mechanism": "dslite", "role": "b4", "aftr": "2001:db8:1::1"},
              ["ip addr add 192.0.0.2/29 dev TUN", *_mtu(1460, hint_mtu), "ip route add default dev TUN"])
    return FAR4


RULE = {"ipv6_prefix": "2001:db8::/40", "ipv4_prefix": "192.0.2.0/24", "ea_len": 16}
END_USER = "2001:db8:12:3400::/56"
CE6 = "2001:db8:12:3400:0:c000:212:34"  # RFC 7599 Appendix A, example 1


def _map_access(net: Net):
    net.link("h", "h0", "i", "i0", ["2001:db8:1::2/64"], ["2001:db8:1::1/64"])
    net.run("i", "ip", "-6", "route", "add", END_USER, "via", "2001:db8:1::2")
    net.run("h", "ip", "-6", "route", "add", "default", "via", "2001:db8:1::1")
    _far4(net)


def map_e(net: Net) -> str:
    _map_access(net)
    net.run("h", "ip", "-6", "addr", "add", f"{CE6}/128", "dev", "lo")
    net.plane("i", {"mechanism": "map-e", "role": "br", "rule": RULE, "own6": "2001:db8:1::1",
                    "own4": "198.51.100.1"}, ["ip route add 192.0.2.0/24 dev TUN"])
    net.plane("h", {"mechanism": "map-e", "role": "ce", "rule": RULE, "end_user": END_USER, "br": "2001:db8:1::1"},
              ["ip addr add 192.168.1.1/24 dev TUN", "ip link set TUN mtu 1460",
               "ip route add default dev TUN src 192.168.1.1"])
    return FAR4


def map_t(net: Net) -> str:
    _map_access(net)
    dmr = "2001:db8:ffff::/64"
    net.plane("i", {"mechanism": "map-t", "role": "br", "rule": RULE, "dmr": dmr, "own4": "198.51.100.1",
                    "own6": "2001:db8:1::1"}, ["ip route add 192.0.2.0/24 dev TUN", f"ip -6 route add {dmr} dev TUN"])
    net.plane("h", {"mechanism": "map-t", "role": "ce", "rule": RULE, "end_user": END_USER, "dmr": dmr},
              ["ip addr add 192.168.1.1/24 dev TUN", "ip link set TUN mtu 1480",
               "ip route add default dev TUN src 192.168.1.1", f"ip -6 route add {CE6}/128 dev TUN"])
    return FAR4


def xlat464(net: Net) -> str:
    net.link("h", "h0", "i", "i0", ["2001:db8:1::2/64"], ["2001:db8:1::1/64"])
    net.run("h", "ip", "-6", "route", "add", "default", "via", "2001:db8:1::1")
    net.run("i", "ip", "-6", "route", "add", "2001:db8:c::/64", "via", "2001:db8:1::2")
    _far4(net)
    net.plane("i", {"mechanism": "464xlat", "role": "plat", "pref64": "64:ff9b::/96", "pool": ["203.0.113.1"],
                    "own6": "2001:db8:1::1"},
              ["ip route add 203.0.113.1/32 dev TUN", "ip -6 route add 64:ff9b::/96 dev TUN"])
    net.plane("h", {"mechanism": "464xlat", "role": "clat", "clat6": "2001:db8:c::64", "pref64": "64:ff9b::/96"},
              ["ip addr add 192.0.0.1/29 dev TUN", "ip link set TUN mtu 1480", "ip route add default dev TUN",
               "ip -6 route add 2001:db8:c::64/128 dev TUN"])
    return FAR4


SCENARIOS = {"6to4": sixtofour, "6rd": sixrd, "isatap": isatap, "6over4": sixover4, "teredo": teredo,
             "dslite": dslite, "map-e": map_e, "map-t": map_t, "464xlat": xlat464}


def settle():
    time.sleep(0.2)


def native4(net: Net) -> str:
    """The kernel's own forwarding between h and f over IPv4: the baseline the tunnels are compared with."""
    net.link("h", "h0", "i", "i0", ["10.9.0.2/24"], ["10.9.0.1/24"])
    net.run("h", "ip", "route", "add", "default", "via", "10.9.0.1")
    _far4(net)
    return FAR4


def native6(net: Net) -> str:
    net.link("h", "h0", "i", "i0", ["2001:db8:9::2/64"], ["2001:db8:9::1/64"])
    net.run("h", "ip", "-6", "route", "add", "default", "via", "2001:db8:9::1")
    _far6(net)
    return FAR6


RECEIVER = {"6over4": "i"}  # the namespace the pinged address lives in (6over4 has no far side)
