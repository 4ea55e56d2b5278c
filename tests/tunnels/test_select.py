"""The selection agent's reading of what a host observes, and the host sides it builds from it (no root)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from p2pnode.transition.selection import candidates
from p2pnode.tunnels.select import host_planes, interface_addresses, observations
from p2pnode.tunnels.spec import build
from topologies.access import PLANS

DUMP = [{"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "scope": "host"}]},
        {"ifname": "eth0", "addr_info": [{"family": "inet6", "local": "2001:db8:1::2", "scope": "global"},
                                         {"family": "inet6", "local": "fe80::1", "scope": "link"}]},
        {"ifname": "tun0", "addr_info": [{"family": "inet", "local": "192.0.0.2", "scope": "global"}]}]


def test_interface_addresses_leave_out_tunnels_loopback_and_link_local():
    assert interface_addresses(DUMP) == ((IPv6Address("2001:db8:1::2"),), None)


@pytest.mark.parametrize("mechanism", list(PLANS))
def test_each_access_network_offers_its_mechanism_and_the_host_side_builds(mechanism):
    plan = PLANS[mechanism]
    address = plan.host[0].split("/")[0]
    six = (IPv6Address(address),) if plan.access == "6" else ()
    four = IPv4Address(address) if plan.access == "4" else None
    pref64 = "64:ff9b::/96" if "dns64" in plan.offer else None  # what RFC 7050 discovery finds
    obs = observations(plan.offer, six, four, pref64 and __import__("ipaddress").IPv6Network(pref64))
    found = candidates(obs)
    assert [c.name for c in found] == [mechanism]
    for plane in host_planes(mechanism, obs, plan.offer, found[0].endpoints):
        endpoint = build(plane["spec"])
        assert (endpoint.mechanism, endpoint.role in ("host", "ce", "b4", "client", "clat")) == (mechanism, True)
