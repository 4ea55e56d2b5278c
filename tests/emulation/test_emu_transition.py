"""One emulated access network per transition mechanism (topologies/transition.py): traffic crosses each,
and what a packet measures on the wire (overhead, MTU) is the model's table (p2pnode/transition/profiles.py)."""

from __future__ import annotations

import pytest

from p2pnode.transition.profiles import MECHANISMS
from tests.emulation.conftest import leftovers, needs_root

pytestmark = [pytest.mark.root, needs_root]

TUNNELLED = [name for name in MECHANISMS if name != "native"]


@pytest.mark.parametrize("mechanism", TUNNELLED)
def test_overhead_and_mtu_measured_across_each_mechanism_are_the_models(caps, mechanism):
    from topologies.net import EmulatedNetwork
    from topologies.transition import Access, measure, start_access

    net = EmulatedNetwork(Access(mechanism), caps)
    with net:
        chosen = start_access(net)["h1"]
        found = measure(net, mechanism)
        finals = [p.final for name in net.hosts + net.routers for p in net.node(name).stop_planes()]
    model = MECHANISMS[mechanism]
    assert (chosen["selected"], chosen["fallbacks"]) == (mechanism, 0), chosen  # the host chose it itself
    assert found["rtt_ms"] is not None, found  # every ping crossed
    assert found["tun_out"] >= 5, found  # through the data plane, not around it
    assert (found["overhead_bytes"], found["mtu"]) == (model.overhead, model.mtu), found
    assert all(p.startswith("h") or "user-space" in p for p in found["data_planes"])
    assert not any(key.startswith("endpoint error") for f in finals for key in f["stats"]), finals
    assert leftovers(net.tag) == {k: [] for k in leftovers(net.tag)}


@pytest.mark.parametrize(("mechanism", "fallback"), [("dslite", "native"), ("6rd", "none")])
def test_a_host_whose_element_drops_its_probes_falls_back(caps, mechanism, fallback):
    """An IPv6 host keeps IPv6 alone; an IPv4 host offered nothing else has no IPv6 ("none")."""
    from topologies.net import EmulatedNetwork
    from topologies.transition import Access, start_access

    with EmulatedNetwork(Access(mechanism, blackhole=True), caps) as net:
        chosen = start_access(net)["h1"]
    assert chosen["selected"] == fallback and chosen["tried"] == [mechanism], chosen
    assert [f["probe_failed"] for f in chosen["failed"]] == [mechanism]
