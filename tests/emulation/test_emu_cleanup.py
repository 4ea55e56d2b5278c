"""Nothing remains after stop(), nor after a run whose Python process was SIGKILLed, once cleanup() ran."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.emulation.conftest import leftovers, needs_root

pytestmark = [pytest.mark.root, needs_root]

REPO = Path(__file__).resolve().parents[2]
CLEAN = {"log_dirs": [], "namespaces": [], "links": [], "processes": [], "state": []}

# A run that starts a network with a relayed link and two long-lived processes, then waits to be killed.
KILLED_RUN = """
import subprocess, sys, time
from topologies.net import EmulatedNetwork
from topologies.topos import FlatLan
net = EmulatedNetwork(FlatLan(3, delay="5ms"), force_relay=True).start()
net.popen("h1", ["sleep", "300"])
net.popen("h2", ["sh", "-c", "sleep 300 & sleep 300"])  # a grandchild too
print(net.tag, flush=True)
time.sleep(300)
"""


def test_stop_removes_everything(caps):
    from topologies.net import EmulatedNetwork
    from topologies.topos import Regions

    net = EmulatedNetwork(Regions(4, 2, access_delay="1ms"), caps, force_relay=True)
    net.start()
    tag = net.tag
    sleeper = net.popen("h1", ["sh", "-c", "sleep 300 & sleep 300"])
    net.cmd("h2", "sleep 300 &")  # started through the node's shell, not popen
    assert leftovers(tag)["namespaces"] and leftovers(tag)["processes"]
    net.stop()
    net.stop()  # idempotent
    assert sleeper.poll() is not None
    assert leftovers(tag) == CLEAN


def test_failed_start_cleans_up(caps, monkeypatch):
    from topologies.net import EmulatedNetwork
    from topologies.topos import FlatLan

    net = EmulatedNetwork(FlatLan(2), caps)

    def boom():
        raise RuntimeError("injected failure after the build")

    monkeypatch.setattr(net, "_start_relays", boom)
    with pytest.raises(RuntimeError, match="injected"):
        net.start()
    assert net.tag is not None
    assert leftovers(net.tag) == CLEAN


# A run that is stopped by a signal: SIGTERM (our handler) or SIGINT (KeyboardInterrupt, then atexit).
SIGNALLED_RUN = """
import time
from topologies.net import EmulatedNetwork
from topologies.topos import Pair
net = EmulatedNetwork(Pair(delay="5ms")).start()
net.popen("h1", ["sleep", "300"])
print(net.tag, flush=True)
time.sleep(300)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_run(signum):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", SIGNALLED_RUN], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO)
    try:
        tag = proc.stdout.readline().strip()
        assert len(tag) == 1, f"child did not start a network: {proc.stderr.read() if proc.poll() else ''}"
        assert leftovers(tag)["namespaces"]
        proc.send_signal(signum)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert leftovers(tag) == CLEAN


def test_two_networks_at_once(caps):
    from topologies.ipv6 import reachability
    from topologies.net import EmulatedNetwork
    from topologies.topos import FlatLan

    with EmulatedNetwork(FlatLan(2), caps) as one, EmulatedNetwork(FlatLan(2), caps) as two:
        assert one.tag != two.tag
        assert reachability(one) == [] and reachability(two) == []
    assert leftovers(one.tag)["namespaces"] == leftovers(two.tag)["namespaces"] == []


def test_tc_failure_fails_the_start_cleanly(caps):
    """A kernel that refuses a qdisc (here: netem claimed but missing) makes start() raise, leaving nothing."""
    from topologies.net import EmulatedNetwork, EmulationError
    from topologies.probe import Capability
    from topologies.topos import Pair

    if caps["netem"].available:
        pytest.skip("netem works here; the failure needs a kernel without it")
    lying = dict(caps, netem=Capability(True, "pretend"))
    net = EmulatedNetwork(Pair(delay="20ms"), lying)
    with pytest.raises(EmulationError, match="netem"):
        net.start()
    assert leftovers(net.tag) == CLEAN


def test_cleanup_after_sigkill():
    from topologies.net import cleanup

    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN], stdout=subprocess.PIPE, text=True, env=env,
                            cwd=REPO)
    try:
        tag = proc.stdout.readline().strip()
        assert len(tag) == 1, f"child did not start a network (exit {proc.poll()})"
        before = leftovers(tag)
        assert before["namespaces"] and before["links"] and before["processes"] and before["log_dirs"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    time.sleep(0.3)  # PR_SET_PDEATHSIG and the closed ptys take the processes down; the namespaces stay
    after_kill = leftovers(tag)
    assert after_kill["namespaces"], "bound namespaces should survive the SIGKILL until cleanup()"
    summary = cleanup()
    assert tag in summary["runs"]
    assert leftovers(tag) == CLEAN
    print(f"\n  left by the killed run: {len(after_kill['namespaces'])} namespaces, {len(after_kill['links'])} links,"
          f" {len(after_kill['processes'])} processes; cleanup removed {summary['runs'][tag]}")
