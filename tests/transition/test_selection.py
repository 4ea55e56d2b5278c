"""Selection over network situations: what the RFCs' logic picks in each, and the Happy-Eyeballs
cascade when probes fail or are blackholed."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest

from p2pnode.nodeconfig import parse_config
from p2pnode.transition.addresses import SixRdDomain
from p2pnode.transition.mapping import MapRule
from p2pnode.transition.options import S46Config
from p2pnode.transition.selection import MechanismSelected, Observations, ProbeFailed, Selector, candidates

V6 = (IPv6Address("2001:db8:1::10"),)
PUBLIC = IPv4Address("192.0.2.10")
PRIVATE = IPv4Address("10.1.2.3")
RULE = MapRule(IPv6Network("2001:db8::/40"), IPv4Network("192.0.2.0/24"), ea_len=16)
MAPE = S46Config(translation=False, rules=(RULE,), border_relays=(IPv6Address("2001:db8:ffff::1"),))
MAPT = S46Config(translation=True, rules=(RULE,), dmr=IPv6Network("2001:db8:ffff::/64"))
SIXRD = SixRdDomain(IPv6Network("2001:db8::/32"), 8, (IPv4Address("10.0.0.1"),))
TEREDO = (IPv4Address("192.0.2.200"),)

ALL = ("native", "dslite", "teredo", "map-e", "map-t", "464xlat", "6rd", "isatap", "6to4", "6over4")

# (situation, observations, preferred order, the candidates in cascade order)
SITUATIONS = [
    ("dual stack", Observations(ipv6_global=V6, ipv4=PRIVATE, nat_type="port-restricted"), ALL, ["native"]),
    ("IPv6-only with DS-Lite (AFTR-Name)", Observations(ipv6_global=V6, aftr_name="aftr.example.net"), ALL,
     ["dslite"]),
    ("IPv6-only mobile with a Pref64 (RFC 7050)", Observations(ipv6_global=V6, pref64=IPv6Network("64:ff9b::/96")),
     ALL, ["464xlat"]),
    ("IPv6-only, MAP-E and DS-Lite offered, default order", Observations(
        ipv6_global=V6, aftr_name="aftr", map_e=MAPE, delegated_prefix=IPv6Network("2001:db8:12:3400::/56")),
     ("native",), ["map-e", "dslite"]),
    ("IPv6-only, MAP-T offered, DS-Lite preferred", Observations(
        ipv6_global=V6, aftr_name="aftr", map_t=MAPT, delegated_prefix=IPv6Network("2001:db8:12:3400::/56")),
     ("native", "dslite"), ["dslite", "map-t"]),
    ("MAP-E whose rule does not cover the delegated prefix", Observations(
        ipv6_global=V6, map_e=MAPE, delegated_prefix=IPv6Network("2001:db9::/56")), ALL, []),
    ("IPv4-only with 6rd (option 212)", Observations(ipv4=PRIVATE, nat_type="none", dhcpv4_6rd=SIXRD,
                                                     teredo_servers=TEREDO), ALL, ["teredo", "6rd"]),
    ("public IPv4 alone", Observations(ipv4=PUBLIC), ALL, ["6to4"]),
    ("public IPv4, Teredo configured, default order", Observations(ipv4=PUBLIC, teredo_servers=TEREDO), ("native",),
     ["6to4", "teredo"]),
    ("private IPv4 behind a cone NAT", Observations(ipv4=PRIVATE, nat_type="full-cone", teredo_servers=TEREDO), ALL,
     ["teredo"]),
    ("enterprise site with an ISATAP router list", Observations(
        ipv4=PRIVATE, isatap_prl=(IPv4Address("10.0.0.1"),), ipv4_multicast=True), ("isatap", "6over4"),
     ["isatap", "6over4"]),
    ("multicast site only", Observations(ipv4=PRIVATE, ipv4_multicast=True), ALL, ["6over4"]),
    ("private IPv4, nothing offered", Observations(ipv4=PRIVATE, nat_type="symmetric"), ALL, []),
]


@pytest.mark.parametrize("situation,obs,preferred,expected", SITUATIONS, ids=[s[0] for s in SITUATIONS])
def test_candidates_per_situation(situation, obs, preferred, expected):
    selector = Selector(preferred)
    selector.observe(obs, now=0.0)
    tried = []
    now = 0.0
    while selector.probes or (selector.next_timer() is not None and selector.active is None):
        while selector.probes:
            name = selector.probes.pop(0)
            tried.append(name)
            selector.probe_result(name, False, now)  # refuse every probe: the whole cascade shows
        timer = selector.next_timer()
        if timer is None or selector.active is not None:
            break
        now = max(now, timer)
        selector.handle_timer(now)
    if expected == ["native"]:
        assert selector.active == "native" and not tried
    else:
        assert tried == expected
        assert selector.active == ("native" if obs.ipv6_global else "none")


def test_first_success_wins_and_endpoints_are_reported():
    selector = Selector(("6rd", "teredo"))
    obs = Observations(ipv4=PRIVATE, dhcpv4_6rd=SIXRD, teredo_servers=TEREDO)
    selector.observe(obs, 0.0)
    assert selector.probes == ["6rd"]
    selector.probes.clear()
    selector.probe_result("6rd", True, 0.05)
    assert selector.active == "6rd"
    assert selector.endpoints == (IPv6Address("2001:db8:102:300::1"),)  # 6rd prefix of 10.1.2.3, host ::1
    assert isinstance(selector.events[-1], MechanismSelected) and selector.events[-1].fallbacks == 0


def test_a_blackholed_probe_falls_back_happy_eyeballs_style():
    selector = Selector(("dslite", "464xlat"), attempt_delay=0.25, probe_timeout=2.0)
    obs = Observations(ipv6_global=V6, aftr_name="aftr", pref64=IPv6Network("64:ff9b::/96"))
    selector.observe(obs, 0.0)
    assert selector.probes == ["dslite"]
    selector.probes.clear()
    assert selector.next_timer() == 0.25  # no answer from the AFTR: the next attempt starts staggered
    selector.handle_timer(0.25)
    assert selector.probes == ["464xlat"]
    selector.probes.clear()
    selector.probe_result("464xlat", True, 0.30)
    assert selector.active == "464xlat"
    assert selector.probe_result("dslite", True, 0.5) is None and selector.active == "464xlat"  # too late


def test_timeout_alone_moves_down_the_cascade():
    selector = Selector(("dslite", "464xlat"), attempt_delay=5.0, probe_timeout=2.0)
    selector.observe(Observations(ipv6_global=V6, aftr_name="aftr", pref64=IPv6Network("64:ff9b::/96")), 0.0)
    selector.probes.clear()
    assert selector.next_timer() == 2.0
    selector.handle_timer(2.0)
    assert [type(e).__name__ for e in selector.events] == ["ProbeStarted", "ProbeFailed", "ProbeStarted"]
    assert selector.probes == ["464xlat"] and "no answer" in selector.events[1].reason


def test_reprobe_moves_to_a_better_mechanism_and_leaves_a_dead_one():
    selector = Selector(("6rd", "teredo"), probe_interval=300.0)
    obs = Observations(ipv4=PRIVATE, dhcpv4_6rd=SIXRD, teredo_servers=TEREDO)
    selector.observe(obs, 0.0)
    selector.probes.clear()
    selector.probe_result("6rd", False, 0.1)
    selector.probes.clear()
    selector.probe_result("teredo", True, 0.2, endpoints=(IPv6Address("2001:0:c000:2c8::1"),))
    assert selector.active == "teredo" and selector.next_timer() == pytest.approx(300.2)
    selector.handle_timer(300.2)  # re-probe from the top: the 6rd relay is back
    assert selector.probes == ["6rd"] and selector.reprobes == 1
    selector.probes.clear()
    selector.probe_result("6rd", True, 300.3)
    assert selector.active == "6rd" and selector.events[-1].previous == "teredo"
    selector.handle_timer(600.3)
    selector.probes.clear()
    selector.probe_result("6rd", False, 600.4)  # the active one fails: down to Teredo again
    assert isinstance(selector.events[-1], type(selector.events[-1])) and selector.probes == ["teredo"]
    assert any(isinstance(e, ProbeFailed) and e.name == "6rd" for e in selector.events)


def test_without_cascade_only_preferred_mechanisms_are_tried():
    selector = Selector(("teredo",), cascade=False)
    selector.observe(Observations(ipv4=PUBLIC, teredo_servers=TEREDO), 0.0)
    assert selector.probes == ["teredo"]
    selector.probes.clear()
    selector.probe_result("teredo", False, 0.1)
    assert selector.probes == [] and selector.active == "none"


def test_from_config_and_unknown_names():
    config = parse_config('[tunneling]\npreferred_protocols = ["6rd", "teredo"]\nfallback_cascade = false\n'
                          'probe_interval = 60\n')
    selector = Selector.from_config(config.tunneling)
    assert selector.preferred == ("6rd", "teredo") and not selector.cascade and selector.probe_interval == 60
    with pytest.raises(ValueError, match="unknown transition mechanisms: gre"):
        Selector(("gre",))


def test_candidates_give_the_addresses_each_mechanism_makes():
    by_name = {c.name: c for c in candidates(Observations(ipv4=PUBLIC, ipv4_multicast=True,
                                                          isatap_prl=(IPv4Address("192.0.2.1"),)))}
    assert by_name["6to4"].endpoints == (IPv6Address("2002:c000:20a::c000:20a"),)
    assert by_name["isatap"].endpoints == (IPv6Address("fe80::200:5efe:c000:20a"),)
    assert by_name["6over4"].endpoints == (IPv6Address("fe80::c000:20a"),)
