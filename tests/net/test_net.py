"""The test network's contract, on each runtime (``make_net``): timers, requests, one-way messages, dials,
closes, crashes and graceful exits, drop rules, partitions and latencies as ``p2pnode.interface`` and
``tests.net`` describe them; and both runtimes giving the same run for a seed."""

from __future__ import annotations

import pytest

from p2pnode.config import GossipConfig, KadConfig, ScoreConfig
from p2pnode.host import Host
from tests.net import DIAL_TIMEOUT, NETS, MemoryNet, SimNet, TestNet

GOSSIP = GossipConfig()
NO_SCORE = ScoreConfig(enabled=False)
ECHO = "/echo/1"


def pubsub_hosts(net: TestNet, count: int, **host_args) -> list[Host]:
    return [net.add_host(gossip=GOSSIP, score=NO_SCORE, **host_args) for _ in range(count)]


def echoing(net: TestNet, count: int) -> list[Host]:
    hosts = [net.add_host() for _ in range(count)]
    for host in hosts:
        host.set_handler(ECHO, lambda sender, data: data[::-1])
    return hosts


def ask(net: TestNet, a: Host, b: Host, timeout: float = 2.0) -> list:
    """``a`` asks ``b`` to echo; returns the list its outcome, with the time it came, lands in."""
    outcome: list = []
    a.request(b.info, ECHO, b"abc", lambda data: outcome.append((net.time, data)),
              lambda why: outcome.append((net.time, why)), timeout=timeout)
    return outcome


def test_timers_run_in_order_and_honour_cancel(make_net):
    net = make_net()
    host = net.add_host()
    fired = []
    host.runtime.call_later(2.0, lambda: fired.append("b"))
    host.runtime.call_later(1.0, lambda: fired.append("a"))
    host.runtime.call_later(2.0, lambda: fired.append("c"))  # same time: in the order scheduled
    host.runtime.call_later(1.5, lambda: fired.append("x")).cancel()
    net.call_at(1.0, lambda: fired.append("at"))
    net.advance(1.0)
    assert fired == ["a", "at"] and net.time == 1.0
    net.advance(5.0)
    assert fired == ["a", "at", "b", "c"] and net.time == 6.0
    net.settle()  # nothing in flight: returns at once, timers or not
    assert net.time == 6.0


# ---- requests and one-way messages ---------------------------------------------------------------


def test_a_request_is_answered_after_a_round_trip(make_net):
    net = make_net(latency=0.05)
    a, b = echoing(net, 2)
    outcome = ask(net, a, b)
    net.settle()
    assert outcome == [(pytest.approx(0.1), b"cba")]
    assert net.requests == 1 and [(s.src, s.dst) for s in net.sent] == [(a, b)]


@pytest.mark.parametrize(("fault", "expected"), [("crash", (2.0, "timeout")), ("stop", (0.02, "refused")),
                                                ("drop request", (2.0, "timeout")),
                                                ("drop response", (2.0, "timeout")),
                                                ("slow", (2.0, "timeout"))])
def test_a_request_that_cannot_be_answered_in_time_fails(make_net, fault, expected):
    net = make_net()
    a, b = echoing(net, 2)
    if fault == "crash":
        net.crash(b)
    elif fault == "stop":
        net.stop(b)
    elif fault == "drop request":
        net.drop(lambda src, dst, message: src is a)
    elif fault == "drop response":
        net.drop(lambda src, dst, message: src is b)
    else:
        net.set_latency(b, 1.2)  # the answer would come after 2.4 s
    outcome = ask(net, a, b, timeout=2.0)
    net.settle()
    assert outcome == [(pytest.approx(expected[0]), expected[1])]


def test_a_one_way_message_arrives_after_one_way_unless_lost(make_net):
    net = make_net(latency=0.03)
    a, b, c = pubsub_hosts(net, 3)
    net.connect(a, b)
    net.connect(a, c)
    got = {b: [], c: []}
    b.subscribe("t", got[b].append)
    c.subscribe("t", got[c].append)
    net.settle()
    rule = net.drop(lambda src, dst, message: dst is c)
    start = net.time
    a.publish("t", b"x")
    net.run(start + 0.029)
    assert got == {b: [], c: []}
    net.run(start + 0.03)
    assert [m.data for m in got[b]] == [b"x"] and got[c] == []
    net.undrop(rule)
    net.crash(b)
    a.publish("t", b"y")
    net.settle()
    assert [m.data for m in got[b]] == [b"x"] and [m.data for m in got[c]] == [b"y"]


# ---- connections ---------------------------------------------------------------------------------


def test_a_dial_opens_at_the_listener_after_one_way_and_at_the_dialer_after_a_round_trip(make_net):
    net = make_net(latency=0.05)
    a, b = pubsub_hosts(net, 2)
    a.dial(b.info)
    net.run(0.05)
    assert b.connections == {a.info: False} and a.connections == {} and a.dialing == {b.info}
    net.run(0.1)
    assert a.connections == {b.info: True} and not a.dialing
    assert [(h, peer) for h, peer in net.dials] == [(a, b.info)]


def test_the_listeners_hello_never_reaches_the_dialer_before_its_connection_is_open(make_net):
    # The listener sends its subscriptions the moment it accepts; they arrive with the handshake's answer
    # and must count, not be ignored as coming from a peer the dialer is not connected to.
    net = make_net()
    a, b = pubsub_hosts(net, 2)
    b.subscribe("t", lambda m: None)
    net.connect(a, b)
    net.settle()
    assert b.info in a.pubsub.topics["t"]


@pytest.mark.parametrize(("fault", "fails_after"), [("crash", DIAL_TIMEOUT), ("stop", 0.02),
                                                    ("drop", DIAL_TIMEOUT), ("outsider", DIAL_TIMEOUT),
                                                    ("full", 0.02)])
def test_a_dial_that_cannot_open_fails(make_net, fault, fails_after):
    net = make_net()
    a, b, c = pubsub_hosts(net, 3, peers=1, max_peers=1)
    target = b.info
    if fault == "crash":
        net.crash(b)
    elif fault == "stop":
        net.stop(b)
    elif fault == "drop":
        net.drop(lambda src, dst, message: message is None)  # dials only: requests still get through
    elif fault == "outsider":
        target = net.outsider()
    else:
        net.connect(c, b)  # b takes one inbound connection and refuses the next
    start = net.time
    a.dial(target)
    net.run(start + fails_after - 0.001)
    assert a.dialing == {target}
    net.run(start + fails_after)
    assert not a.dialing and not a.connections


def test_a_close_reaches_the_other_end_after_one_way(make_net):
    net = make_net(latency=0.04)
    a, b = pubsub_hosts(net, 2)
    net.connect(a, b)
    start = net.time
    a.runtime.disconnect(b.info)
    net.run(start + 0.039)
    assert a.info in b.connections
    net.run(start + 0.04)
    assert a.info not in b.connections
    assert b.info in a.connections  # no callback for one's own close


@pytest.mark.parametrize(("graceful", "noticed_after"), [(True, 0.01), (False, 30.0)])
def test_a_departed_host_is_noticed_after_one_way_or_the_idle_timeout(make_net, graceful, noticed_after):
    net = make_net(idle_timeout=30.0)
    a, b = pubsub_hosts(net, 2)
    net.connect(a, b)
    start = net.time
    (net.stop if graceful else net.crash)(b)
    net.run(start + noticed_after - 0.001)
    assert b.info in a.connections
    net.run(start + noticed_after)
    assert b.info not in a.connections


# ---- faults and latencies ------------------------------------------------------------------------


def test_a_partition_loses_what_crosses_it_until_healed(make_net):
    net = make_net()
    hosts = echoing(net, 4)
    left, right = hosts[:2], hosts[2:]
    split = net.partition(left)
    across, within = ask(net, left[0], right[0]), ask(net, right[1], right[0])
    back = ask(net, right[1], left[1])
    net.settle()
    assert [o[0][1] for o in (across, within, back)] == ["timeout", b"cba", "timeout"]
    net.undrop(split)
    again = ask(net, left[0], right[0])
    net.settle()
    assert again[0][1] == b"cba"


def test_link_and_host_latencies(make_net):
    net = make_net(latency=0.01)
    a, b, c, d = echoing(net, 4)
    net.set_latency(b, 0.2)
    net.set_delay(a, c, 0.3)
    outcomes = [ask(net, a, peer) for peer in (b, c, d)]
    ask(net, b, c)  # b's latency is the larger end
    net.settle()
    assert [o[0][0] for o in outcomes] == [pytest.approx(0.4), pytest.approx(0.6), pytest.approx(0.02)]


def test_settle_stops_while_heartbeats_go_on(make_net):
    net = make_net()
    hosts = pubsub_hosts(net, 6)
    for host in hosts:
        host.subscribe("t", lambda m: None)
    net.connect_randomly(hosts, 3)
    net.advance(5.0)
    net.settle()
    ticks = hosts[0].pubsub.ticks
    assert ticks >= 4
    net.advance(3.0)
    assert hosts[0].pubsub.ticks >= ticks + 3


def test_a_host_without_its_own_heartbeat_beats_only_when_told(make_net):
    net = make_net()
    a, b = (net.add_host(gossip=GOSSIP, heartbeat=False) for _ in range(2))
    net.connect(a, b)
    net.advance(5.0)
    assert a.pubsub.ticks == 0
    net.beat(a)
    net.advance(5.0)
    assert a.pubsub.ticks == 1


# ---- determinism ---------------------------------------------------------------------------------


def run_of(net: TestNet) -> list:
    """A mixed run (DHT joins and lookups, a crash, pub-sub meshes and publishing); returns its trace."""
    dht = net.populate(12, KadConfig(k=4))
    net.crash(dht[5])
    for i, j in ((0, 5), (3, 9)):
        net.complete(dht[i].dht.find_node, dht[j].peer_id.raw)
    hosts = pubsub_hosts(net, 10)
    for host in hosts:
        host.subscribe("t", lambda m: None)
    net.connect_randomly(hosts, 3)
    net.advance(3.0)
    hosts[2].publish("t", b"hello")
    net.advance(3.0)
    return [(round(s.time, 9), net.hosts.index(s.src), net.hosts.index(s.dst), repr(s.message)) for s in net.sent]


def test_same_seed_same_run(make_net):
    first = run_of(make_net(seed=4))
    assert run_of(make_net(seed=4)) == first
    assert run_of(make_net(seed=5)) != first


def test_both_runtimes_give_the_same_run():
    """The same hosts, latencies and seed on our heap and on the simulator's network: the same messages
    at the same times. A difference means one runtime no longer does what the interface says."""
    assert NETS == (MemoryNet, SimNet)
    memory, simpy = (run_of(net(seed=6)) for net in NETS)
    kinds = [message.split("(", 1)[0] for *_, message in memory]
    assert kinds.count("FindNode") > 100 and kinds.count("RPC") > 100
    assert memory == simpy
