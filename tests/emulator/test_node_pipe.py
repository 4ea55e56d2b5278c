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


def test_mcp_calls_over_the_pipe(tmp_path):
    """The emulator's MCP workload hands a local agent's request to the node's server over the pipe; the
    answer carries the server's own time for it."""
    (tmp_path / "node.toml").write_text('[network]\nlisten_addresses = ["/ip6/::1/tcp/0"]\ntransports = ["tcp"]\n'
                                        '[mcp]\nserver_address = "127.0.0.1:0"\n[pubsub]\nenabled = false\n')
    proc = subprocess.Popen([sys.executable, "-m", "p2pnode.cli", "run", "--config", str(tmp_path / "node.toml"),
                             "--control", "stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready"
        for rid, message in ((1, {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                  "params": {"name": "get_status", "arguments": {}, "_meta": meta}}),
                             (2, {"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                                  "params": {"name": "no_such_tool", "arguments": {}, "_meta": meta}})):
            proc.stdin.write(json.dumps({"id": rid, "cmd": "mcp", "message": message}) + "\n")
        proc.stdin.flush()
        answers = {}
        while len(answers) < 2:
            line = json.loads(proc.stdout.readline())
            if "id" in line:
                answers[line["id"]] = line
        status = answers[1]["response"]
        assert answers[1]["ok"] and status["id"] == 7 and 0 <= answers[1]["latency"] < 5
        assert status["result"]["structuredContent"]["peer_id"] == ready["peer_id"]
        assert answers[2]["ok"] and answers[2]["response"]["error"]["code"] == -32602  # the server's own answer
    finally:
        proc.stdin.close()
        assert proc.wait(15) == 0


def test_mcp_over_the_pipe_needs_mcp_on(tmp_path):
    (tmp_path / "node.toml").write_text('[network]\nlisten_addresses = ["/ip6/::1/tcp/0"]\ntransports = ["tcp"]\n'
                                        '[mcp]\nenabled = false\n[pubsub]\nenabled = false\n')
    proc = subprocess.Popen([sys.executable, "-m", "p2pnode.cli", "run", "--config", str(tmp_path / "node.toml"),
                             "--control", "stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(proc.stdout.readline())["event"] == "ready"
        proc.stdin.write(json.dumps({"id": 1, "cmd": "mcp", "message": {}}) + "\n")
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())
        assert not answer["ok"] and "[mcp] enabled = false" in answer["error"]
    finally:
        proc.stdin.close()
        assert proc.wait(15) == 0
