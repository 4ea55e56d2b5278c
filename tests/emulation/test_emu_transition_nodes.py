"""Real nodes on both sides of each transition mechanism (topologies/transition.py's access networks): a DHT
request and a pub-sub message cross it each way over the connection the host behind it opened, and a peer
dialling it from outside gets through exactly where the model says inbound works (profiles.MECHANISMS)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from p2pnode.transition.profiles import MECHANISMS
from tests.emulation.conftest import leftovers, needs_root

pytestmark = [pytest.mark.root, needs_root]

PORT = 4002


def multiaddr(ip: str, port: int = PORT) -> str:
    return f"/{'ip6' if ':' in ip else 'ip4'}/{ip}/tcp/{port}"


async def spawn(net, host: str, directory, listen: str, bootstrap: list[str]):
    from emulator.driver import NodeProcess

    directory.mkdir(parents=True)
    (directory / "node.toml").write_text(f"""[network]
listen_addresses = {json.dumps([listen])}
transports = ["tcp"]
key_file = "node.key"
[bootstrap]
nodes = {json.dumps(bootstrap)}
[pubsub]
enabled = true
[mcp]
enabled = false
[log]
level = "warning"
""")
    with open(directory / "node.log", "wb") as log:
        popen = net.popen(host, [sys.executable, "-m", "p2pnode.cli", "run", "--config", str(directory / "node.toml"),
                                 "--control", "stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    node = NodeProcess(0, popen)
    await node.attach()
    return node


def external(mechanism: str, inner: str) -> str:
    """Where a peer outside dials the host: a MAP CE's own IPv4 address (its forward), else the host's."""
    from topologies.access import map_ce_ipv4

    return map_ce_ipv4() if mechanism in ("map-e", "map-t") else inner


async def cross(net, mechanism: str, tmp_path) -> dict:
    from topologies.access import PLANS
    from topologies.transition import FAR4, FAR6, inner_address

    far_ip, behind_ip = FAR6 if PLANS[mechanism].carried == "6" else FAR4, inner_address(net)
    port = PLANS[mechanism].port or PORT  # a MAP CE forwards one port of its set
    far = await spawn(net, "h2", tmp_path / "far", multiaddr(far_ip), [])
    far_addr = f"{multiaddr(far_ip)}/p2p/{far.ready['peer_id']}"
    behind = await spawn(net, "h1", tmp_path / "behind", multiaddr(behind_ip, port), [far_addr])
    got: dict[str, list] = {"far": [], "behind": []}
    far.on_event = got["far"].append
    behind.on_event = got["behind"].append
    out = {}
    for _ in range(100):  # the join crossed the mechanism outbound
        if (await behind.call("status")).get("peers", 0) >= 1:
            break
        await asyncio.sleep(0.1)
    out["put_behind"] = await behind.call("put", key_hex="aa" * 8, value_hex="01")  # stored at far: outbound
    out["put_far"] = await far.call("put", key_hex="bb" * 8, value_hex="02")  # stored behind: back in
    out["get_far"] = await far.call("get", key_hex="aa" * 8)
    out["get_behind"] = await behind.call("get", key_hex="bb" * 8)
    for node in (far, behind):
        await node.call("subscribe", topic="zoo")
    await asyncio.sleep(2.0)  # the subscriptions and the mesh cross over the connection
    await behind.call("publish", topic="zoo", data_hex="b0")
    await far.call("publish", topic="zoo", data_hex="f0")
    for _ in range(50):
        if len(got["far"]) >= 2 and len(got["behind"]) >= 2:
            break
        await asyncio.sleep(0.1)
    out["delivered"] = {side: [e for e in events if e.get("event") == "message"] for side, events in got.items()}
    # a peer outside that has never heard of the host dials it: an unsolicited inbound connection
    outsider = await spawn(net, "h2", tmp_path / "outsider", multiaddr(far_ip, PORT + 1), [])
    try:
        out["inbound"] = await outsider.call("ping", timeout=20, peer=behind.ready["peer_id"],
                                             addrs=[multiaddr(external(mechanism, behind_ip), port)])
    except (TimeoutError, ConnectionError) as exc:
        out["inbound"] = {"ok": False, "error": repr(exc)}
    for node in (outsider, behind, far):
        node.stop(graceful=True)
        await node.wait()
    return out


@pytest.mark.parametrize("mechanism", [name for name in MECHANISMS if name != "native"])
def test_dht_and_pubsub_cross_each_mechanism_and_inbound_is_the_models(caps, mechanism, tmp_path):
    from topologies.net import EmulatedNetwork
    from topologies.transition import Access, start_access

    net = EmulatedNetwork(Access(mechanism), caps)
    with net:
        start_access(net)
        out = asyncio.run(cross(net, mechanism, tmp_path))
        stats = [p.final["stats"] for p in net.node("h1").stop_planes()]
    assert out["put_behind"]["ok"] and out["put_behind"]["replicas"] >= 1, out
    assert out["put_far"]["ok"] and out["put_far"]["replicas"] >= 1, out
    assert out["get_far"]["found"] and out["get_far"]["value_hex"] == "01", out
    assert out["get_behind"]["found"] and out["get_behind"]["value_hex"] == "02", out
    for side in ("far", "behind"):  # its own message and the other side's, across the mechanism
        assert len({e["from"] for e in out["delivered"][side]}) == 2, out["delivered"]
    assert all(s.get("in_tun", 0) > 20 and s.get("out_tun", 0) > 20 for s in stats), stats  # through the plane
    inbound_ok = bool(out["inbound"].get("ok") and out["inbound"].get("rtts"))
    assert inbound_ok == (MECHANISMS[mechanism].inbound != "no"), out["inbound"]  # MAP: into its port set
    assert leftovers(net.tag) == {k: [] for k in leftovers(net.tag)}
