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
    from topologies.transition import Access, measure, wait_planes

    net = EmulatedNetwork(Access(mechanism), caps)
    with net:
        wait_planes(net)
        found = measure(net, mechanism)
        finals = [p.final for name in net.hosts + net.routers for p in net.node(name).stop_planes()]
    model = MECHANISMS[mechanism]
    assert found["rtt_ms"] is not None, found  # every ping crossed
    assert found["tun_out"] >= 5, found  # through the data plane, not around it
    assert (found["overhead_bytes"], found["mtu"]) == (model.overhead, model.mtu), found
    assert all(p.startswith("h") or "user-space" in p for p in found["data_planes"])
    assert not any(key.startswith("endpoint error") for f in finals for key in f["stats"]), finals
    assert leftovers(net.tag) == {k: [] for k in leftovers(net.tag)}
