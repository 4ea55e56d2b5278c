"""A node and its own peer ID, with real processes: two ``p2pnode run`` whose config files sit in one folder share
the default ``node.key``; the second must say so and exit (not run as the first's twin, alone and unready, with
no line saying why), a lock left by a killed node must not block the next start, and a node must refuse to
bootstrap from, dial, or accept a connection from its own peer ID.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from multiaddr import Multiaddr

from p2pnode.cli import main
from p2pnode.identity import Keypair
from p2pnode.runtime.swarm import Swarm
from p2pnode.transports.base import TransportError
from p2pnode.transports.tcp import TcpTransport
from tests.runtime.test_cli import NodeProcess


def config_in(directory: Path, name: str, bootstrap: str = "") -> Path:
    path = directory / name
    path.write_text(f"""
[network]
listen_addresses = ["/ip4/127.0.0.1/tcp/0"]
transports = ["tcp"]
[bootstrap]
nodes = [{bootstrap}]
[mcp]
enabled = false
[log]
format = "text"
""")
    return path


def run_to_exit(config: Path, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "p2pnode.cli", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=timeout)


def test_a_second_node_with_the_same_key_file_says_so_and_exits(tmp_path):
    first = NodeProcess(config_in(tmp_path, "a.toml"))
    try:
        second = run_to_exit(config_in(tmp_path, "b.toml"))
        assert second.returncode == 2 and second.stdout == ""
        assert "network.key_file" in second.stderr and str(tmp_path / "node.key") in second.stderr
        assert f"in use by another running node (pid {first.proc.pid}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1  # one line, no traceback
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    # The kernel released the lock with the killed process: the file left behind does not block a restart.
    assert (tmp_path / "node.key.lock").exists()
    again = NodeProcess(config_in(tmp_path, "b.toml"))
    assert again.ready["peer_id"] == first.ready["peer_id"]
    code, _ = again.stop()
    assert code == 0


def test_bootstrapping_from_our_own_peer_id_is_refused_naming_the_key(tmp_path, capsys):
    keypair = Keypair.from_seed(b"k" * 32)
    (tmp_path / "node.key").write_bytes(keypair.to_protobuf())
    own = f'"/ip4/127.0.0.1/tcp/4001/p2p/{keypair.peer_id}"'
    other = f'"/ip4/127.0.0.1/tcp/4002/p2p/{Keypair.generate().peer_id}"'
    config = config_in(tmp_path, "node.toml", bootstrap=f"{other}, {own}")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("p2pnode: bootstrap.nodes[1]: ") and "own peer ID" in err
    assert str(tmp_path / "node.key") in err


def test_a_connection_from_our_own_peer_id_is_refused_with_a_log_line(tmp_path):
    """A twin with a copy of our key (another machine, or a copied file the lock cannot see) connects: the node
    closes the connection and says why; dialling our own ID is refused before any packet leaves."""
    keypair = Keypair.from_seed(b"t" * 32)
    (tmp_path / "node.key").write_bytes(keypair.to_protobuf())
    node = NodeProcess(config_in(tmp_path, "node.toml"))
    addr = Multiaddr(node.ready["listen_addrs"][0].split("/p2p/")[0])

    async def twin() -> None:
        transport = TcpTransport(keypair)
        try:
            conn = await transport.dial(addr, keypair.peer_id)
            async with asyncio.timeout(10):
                while not conn.closed:
                    await asyncio.sleep(0.05)
        finally:
            await transport.close()
        swarm = Swarm(keypair, [TcpTransport(keypair)])
        with pytest.raises(TransportError, match="our own peer ID"):
            await swarm.dial(keypair.peer_id, [addr])
        await swarm.close()

    try:
        asyncio.run(twin())
        time.sleep(0.2)
    finally:
        code, err = node.stop()
    assert code == 0
    assert "refusing a connection from /ip4/127.0.0.1/tcp/" in err and "our own peer ID" in err


def test_a_node_given_its_own_peer_id_as_bootstrap_refuses_to_start():
    from p2pnode.runtime.node import Node

    keypair = Keypair.from_seed(b"s" * 32)
    with pytest.raises(ValueError, match="own peer ID"):
        Node(keypair, bootstrap=[f"/ip4/127.0.0.1/tcp/4001/p2p/{keypair.peer_id}"])
