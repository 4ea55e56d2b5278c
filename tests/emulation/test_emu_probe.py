"""The capability probe: every feature reported, fast, nothing left behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.emulation.conftest import needs_root

pytestmark = [pytest.mark.root, needs_root]


def test_probe_reports_every_feature_quickly_and_cleans_up():
    from topologies.probe import FEATURES, Capability, probe
    from topologies.registry import netns_names

    started = time.monotonic()
    caps = probe()
    elapsed = time.monotonic() - started
    assert list(caps) == list(FEATURES)
    assert all(isinstance(c, Capability) and isinstance(c.available, bool) and c.detail for c in caps.values())
    # What every supported kernel has (the emulation cannot work without them).
    for name in ("veth", "relay", "mininet"):
        assert caps[name].available, f"{name}: {caps[name].detail}"
    assert caps["bridge"].available or caps["ovs"].available
    assert elapsed < 2.0, f"probe took {elapsed:.2f}s"
    assert not [n for n in netns_names() if n.startswith("p2pe-probe-")]
    print("\n" + "\n".join(f"  {k:9} {'yes' if v.available else 'no ':3} {v.detail}" for k, v in caps.items()))
    print(f"  probe took {elapsed:.3f}s")


def test_probe_cli_prints_json():
    out = subprocess.run([sys.executable, "-m", "topologies.probe"], capture_output=True, text=True, timeout=20,
                         check=True).stdout
    report = json.loads(out)
    assert report["veth"]["available"] is True
    assert set(report["netem"]) == {"available", "detail"}
