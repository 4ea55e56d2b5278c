"""``p2pnode run``: real processes, their HTTP endpoints, key and record persistence, bad configs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from p2pnode.cli import main
from p2pnode.identity import Keypair


def write_config(directory: Path, extra: str = "", listen: str = '"/ip6/::1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"',
                 bootstrap: str = "") -> Path:
    path = directory / "node.toml"
    path.write_text(f"""
[network]
peer_id = "auto"
listen_addresses = [{listen}]
[bootstrap]
nodes = [{bootstrap}]
[dht]
storage_path = "records.jsonl"
[mcp]
server_address = "127.0.0.1:0"
advertise = false
[log]
level = "info"
events_file = "events.csv"
node_index = 3
{extra}
""")
    return path


class NodeProcess:
    def __init__(self, config: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "p2pnode.cli", "run", "--config", str(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"node exited: {self.proc.stderr.read()}")
        self.ready = json.loads(line)

    def get(self, path: str):
        try:
            with urllib.request.urlopen(self.ready["http"] + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=15)
        finally:
            self.proc.kill()
        return self.proc.returncode, err


def test_run_serves_health_metrics_and_persists_key_and_records(tmp_path):
    config = write_config(tmp_path)
    first = NodeProcess(config)
    try:
        peer_id = first.ready["peer_id"]
        assert first.ready["listen_addrs"][0].startswith("/ip6/::1/udp/")  # IPv6 first
        status, body = first.get("/health")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok" and health["peer_id"] == peer_id
        assert health["listen_addrs"] == first.ready["listen_addrs"]
        status, _ = first.get("/ready")
        assert status == 503  # alone: nothing in its routing table
        status, metrics = first.get("/metrics")
        assert status == 200
        for name in ("p2p_peers_connected", "p2p_dht_records_stored", "p2p_bandwidth_bytes_total",
                     "p2p_tunnel_protocol", "process_resident_memory_bytes"):
            assert name in metrics
        status, peers = first.get("/debug/peers")
        assert status == 200 and json.loads(peers)["peers"] == []

        # a second node bootstraps from the first and stores a record on it
        other_dir = tmp_path / "b"
        other_dir.mkdir()
        second = NodeProcess(write_config(other_dir, bootstrap=f'"{first.ready["listen_addrs"][0]}"'))
        try:
            import asyncio

            from p2pnode.runtime.node import Node

            async def put():
                client = Node(listen=["/ip6/::1/udp/0/quic-v1"], bootstrap=[first.ready["listen_addrs"][0]])
                await client.start()
                await client.wait_bootstrapped(20)
                done = await client.dht.put(b"/p2pnode/kept", b"across restarts")
                await client.stop()
                return done

            assert asyncio.run(put()).replicas >= 1
            status, peers = first.get("/debug/peers")
            assert any(p["agent_version"] and p["agent_version"].startswith("p2pnode/")
                       for p in json.loads(peers)["peers"])
            status, _ = first.get("/ready")
            assert status == 200
        finally:
            second.stop()
        status, metrics = first.get("/metrics")
        assert "p2p_dht_records_stored 1.0" in metrics
    finally:
        code, err = first.stop()
    assert code == 0, err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert logs and all({"ts", "level", "logger", "node", "cid", "msg"} <= set(entry) for entry in logs)
    assert (tmp_path / "node.key").stat().st_mode & 0o777 == 0o600
    events = (tmp_path / "events.csv").read_text().splitlines()
    assert events[0] == "time,kind,node,latency,hops,ok,value,count"
    assert [row.split(",")[1:3] for row in events[1:]] == [["up", "3"], ["down", "3"]]

    again = NodeProcess(config)
    try:
        assert again.ready["peer_id"] == peer_id  # the key was kept
        _, metrics = again.get("/metrics")
        assert "p2p_dht_records_stored 1.0" in metrics  # and the record
    finally:
        assert again.stop()[0] == 0


def test_bootstrap_addresses_of_both_transports_are_accepted():
    from p2pnode.nodeconfig import parse_config

    peer = Keypair.generate().peer_id
    nodes = f'["/ip6/::1/tcp/4002/p2p/{peer}", "/ip4/10.0.0.1/udp/4001/quic-v1/p2p/{peer}"]'
    config = parse_config(f"[bootstrap]\nnodes = {nodes}")
    assert len(config.bootstrap.nodes) == 2


@pytest.mark.parametrize("text, complaint", [
    ("[network]\nlisten_adresses = []", "network.listen_adresses: unknown key"),
    ("[dht]\nrecord_ttl = 0", "dht.record_ttl"),
    ("[bootstrap]\nnodes = ['/ip4/127.0.0.1/tcp/1']", "does not end in /p2p/"),
    ("[network]\nlisten_addresses = ['/ip4/127.0.0.1/tcp/1/ws']", "only /ip4|ip6"),
    ("[network\n", "not valid TOML"),
    ("[security]\nenable_encryption = false", "no unencrypted transport"),
    ("[dht]\nrequest_timeout = 1\nslow_after = 2", "dht.slow_after must not exceed dht.request_timeout"),
    ("[dht]\nrecord_ttl = 60\nrepublish_interval = 60", "dht.republish_interval must be shorter"),
])
def test_bad_config_is_one_line_naming_the_key(tmp_path, capsys, text, complaint):
    path = tmp_path / "node.toml"
    path.write_text(text)
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert complaint in err and "Traceback" not in err


def test_configured_peer_id_must_match_the_key(tmp_path, capsys):
    other = Keypair.generate().peer_id
    (tmp_path / "node.key").write_bytes(Keypair.generate().to_protobuf())
    path = tmp_path / "node.toml"
    path.write_text(f'[network]\npeer_id = "{other}"\n')
    assert main(["run", "--config", str(path)]) == 2
    assert "is not the peer ID of the key" in capsys.readouterr().err


def test_missing_config_file(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such file" in capsys.readouterr().err


def test_http_listener_answers_unknown_paths_methods_and_garbage():
    import asyncio
    import socket

    from p2pnode.runtime.http import HttpServer
    from p2pnode.runtime.node import Node

    async def scenario():
        node = Node(listen=["/ip6/::1/tcp/0"], transports=["tcp"])
        await node.start()
        http = HttpServer(node, "127.0.0.1", 0)
        await http.start()

        async def exchange(raw: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
            writer.write(raw)
            await writer.drain()
            data = await reader.read()
            writer.close()
            return data

        try:
            assert (await exchange(b"GET /nope HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
            assert (await exchange(b"POST /health HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
            assert await exchange(b"\x00\xff garbage\r\n\r\n") == b""
            head = await exchange(b"HEAD /health HTTP/1.1\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
            ok = await exchange(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert json.loads(ok.split(b"\r\n\r\n", 1)[1])["status"] == "ok"
            with socket.create_connection(("127.0.0.1", http.port)):
                pass  # a client that connects and says nothing
        finally:
            await http.stop()
            await node.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("level, quic, multiaddr", [("warning", "ERROR", "WARNING"), ("debug", "ERROR", "WARNING")])
def test_library_loggers_are_quietened_never_made_louder(level, quic, multiaddr):
    import logging

    from p2pnode.cli import setup_logging
    from p2pnode.nodeconfig import parse_config

    root = logging.getLogger()
    saved = root.level, root.handlers[:]
    try:
        setup_logging(parse_config(f'[log]\nlevel = "{level}"'), "node", None)
        assert logging.getLevelName(logging.getLogger("quic").getEffectiveLevel()) == quic
        assert logging.getLevelName(logging.getLogger("multiaddr").getEffectiveLevel()) == multiaddr
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
