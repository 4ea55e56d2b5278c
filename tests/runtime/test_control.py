"""``p2pnode run --control stdio``: commands in, answers and events out, mistakes answered, EOF stops."""

from __future__ import annotations

import json
import subprocess
import sys


def test_control_over_stdio(tmp_path):
    (tmp_path / "node.toml").write_text('[network]\nlisten_addresses = ["/ip6/::1/tcp/0"]\n'
                                        'transports = ["tcp"]\n[mcp]\nenabled = false\n')
    commands = [
        {"id": 1, "cmd": "status"},
        {"id": 2, "cmd": "put", "key_hex": b"k".hex(), "value_hex": b"v".hex()},
        {"id": 3, "cmd": "get", "key_hex": b"k".hex()},
        {"id": 4, "cmd": "no-such-command"},
        {"id": 5, "cmd": "get"},  # missing argument
        {"id": 6, "cmd": "subscribe", "topic": "t"},
        {"id": 7, "cmd": "publish", "topic": "t", "data_hex": "0102"},
        {"id": 8, "cmd": "publish", "topic": "t", "size": 300},  # random bytes made by the node
        {"id": 9, "cmd": "publish", "topic": "t"},  # neither data nor size
        {"id": 10, "cmd": "status"},
    ]
    text = "\n".join(json.dumps(c) for c in commands) + "\nnot json\n"
    proc = subprocess.Popen([sys.executable, "-m", "p2pnode.cli", "run", "--config", str(tmp_path / "node.toml"),
                             "--control", "stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdin.write(text)
    proc.stdin.flush()
    lines = []
    while len([x for x in lines if "id" in x]) < len(commands) + 1:
        lines.append(json.loads(proc.stdout.readline()))
    proc.stdin.close()  # EOF stops the node
    assert proc.wait(15) == 0
    answers = {x["id"]: x for x in lines if "id" in x}
    assert lines[0]["event"] == "ready"
    assert answers[1]["ok"] and answers[1]["bootstrapped"] is True and answers[1]["table"] == []
    assert answers[2]["ok"] and answers[2]["version"] == 1
    assert answers[3]["found"] and answers[3]["value_hex"] == b"v".hex()
    assert not answers[4]["ok"] and "unknown command" in answers[4]["error"]
    assert not answers[5]["ok"] and "key_hex" in answers[5]["error"]
    assert not answers[None]["ok"]
    assert any(x.get("event") == "message" and x["size"] == 2 for x in lines)
    assert any(x.get("event") == "message" and x["size"] == 300 for x in lines)
    assert answers[8]["ok"] and not answers[9]["ok"] and "data_hex or size" in answers[9]["error"]
    assert answers[10]["pubsub"] == {"mesh": {"t": 0}, "received": 0, "first_received": 0}
