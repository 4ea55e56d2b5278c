"""Real ``p2pnode run`` processes on loopback, for MCP tests and benchmarks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path


def write_config(directory: Path, bootstrap: str = "", transport: str = "tcp", extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    listen = '"/ip4/127.0.0.1/tcp/0"' if transport == "tcp" else '"/ip4/127.0.0.1/udp/0/quic-v1"'
    path = directory / "node.toml"
    path.write_text(f"""
[network]
listen_addresses = [{listen}]
transports = ["{transport}"]
[bootstrap]
nodes = [{f'"{bootstrap}"' if bootstrap else ""}]
[mcp]
server_address = "127.0.0.1:0"
service_ttl = 60
{extra}
[pubsub]
enabled = false
[log]
level = "warning"
""")
    return path


class NodeProcess:
    def __init__(self, config: Path):
        self.config = config
        self.log = open(config.parent / "node.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "p2pnode.cli", "run", "--config", str(config)],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise AssertionError(f"node exited: {(config.parent / 'node.log').read_text()}")
        self.ready = json.loads(line)
        self.url = self.ready["http"] + "/mcp"
        self.addr = self.ready["listen_addrs"][0]
        self.peer_id = self.ready["peer_id"]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        finally:
            self.proc.kill()
            self.log.close()
        return self.proc.returncode


def start_network(root: Path, count: int, transport: str = "tcp", extra: str = "") -> list[NodeProcess]:
    first = NodeProcess(write_config(root / "n0", transport=transport, extra=extra))
    nodes = [first]
    try:
        for i in range(1, count):
            nodes.append(NodeProcess(write_config(root / f"n{i}", first.addr, transport, extra)))
    except BaseException:
        for node in nodes:
            node.kill()
        raise
    return nodes


def wait_registered(node: NodeProcess, count: int, within: float = 30.0) -> None:
    """Until ``node`` discovers ``count`` other providers of run_inference (their descriptors are in the DHT)."""
    import time
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "find_peers", "arguments": {"capability": "run_inference", "fresh": True},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "find_peers"}
    deadline = time.monotonic() + within
    found = 0
    while time.monotonic() < deadline:
        request = urllib.request.Request(node.url, body, headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            found = len(json.loads(response.read())["result"]["structuredContent"]["peers"])
        if found >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"only {found} of {count} providers registered within {within:g} s")
