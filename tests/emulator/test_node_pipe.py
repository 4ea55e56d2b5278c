"""What the emulator relies on from a node's ``--control stdio`` pipe: after ``join`` the node says when its
join lookup has finished, so the driver lets only members of the network act (experiment.workload)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_a_deferred_node_says_when_it_has_bootstrapped(tmp_path):
    (tmp_path / "node.toml").write_text('[network]\nlisten_addresses = ["/ip6/::1/tcp/0"]\n'
                                        'transports = ["tcp"]\n[mcp]\nenabled = false\n')
    proc = subprocess.Popen([sys.executable, "-m", "p2pnode.cli", "run", "--config", str(tmp_path / "node.toml"),
                             "--control", "stdio", "--defer-join"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(proc.stdout.readline())["event"] == "ready"
        proc.stdin.write(json.dumps({"id": 1, "cmd": "status"}) + "\n" + json.dumps({"id": 2, "cmd": "join"}) + "\n")
        proc.stdin.flush()
        lines = []
        while not any(x.get("event") == "bootstrapped" for x in lines):
            lines.append(json.loads(proc.stdout.readline()))
        answers = {x["id"]: x for x in lines if "id" in x}
        assert answers[1]["ok"] and answers[1]["bootstrapped"] is False  # not joined yet
        assert answers[2]["ok"]
        event = next(x for x in lines if x.get("event") == "bootstrapped")
        assert isinstance(event["time"], float)
    finally:
        proc.stdin.close()
        assert proc.wait(15) == 0
