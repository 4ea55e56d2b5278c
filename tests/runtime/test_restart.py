"""A crashed node that comes back (same key, same port) before its peers' idle timeout notices the crash:
its peers must switch to the new connection at once, not keep writing into the dead one (found by
emulating ``delivery-small.yaml``, where restarted subscribers missed messages for about 20 s)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import time
from pathlib import Path

from p2pnode.identity import Keypair


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind(("::1", 0))
        return sock.getsockname()[1]


class Proc:
    """One ``p2pnode run --control stdio`` process on loopback."""

    def __init__(self, config: Path):
        self.config = config
        self.messages: list[float] = []  # reception times
        self._ids = 0
        self._waiting: dict[int, asyncio.Future] = {}

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "p2pnode.cli", "run", "--config", str(self.config), "--control", "stdio",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        ready = json.loads(await self.proc.stdout.readline())
        assert ready["event"] == "ready"
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while line := await self.proc.stdout.readline():
            message = json.loads(line)
            future = self._waiting.pop(message.get("id"), None)
            if future is not None:
                future.set_result(message)
            elif message.get("event") == "message":
                self.messages.append(time.monotonic())

    async def call(self, cmd: str, **args) -> dict:
        self._ids += 1
        future = self._waiting[self._ids] = asyncio.get_running_loop().create_future()
        self.proc.stdin.write((json.dumps({"id": self._ids, "cmd": cmd, **args}) + "\n").encode())
        answer = await asyncio.wait_for(future, 10)
        assert answer["ok"], answer
        return answer

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)  # a crash: no goodbye on any connection
        await self.proc.wait()
        self._reader.cancel()


def test_a_restarted_subscriber_gets_messages_before_the_dead_connection_times_out(tmp_path):
    keys = [Keypair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
    ports = [free_udp_port() for _ in keys]
    configs = []
    for i, key in enumerate(keys):
        (tmp_path / f"{i}.key").write_bytes(key.to_protobuf())
        boot = [] if i == 0 else [f"/ip6/::1/udp/{ports[0]}/quic-v1/p2p/{keys[0].peer_id}"]
        path = tmp_path / f"{i}.toml"
        path.write_text(f'[network]\nlisten_addresses = ["/ip6/::1/udp/{ports[i]}/quic-v1"]\ntransports = ["quic"]\n'
                        f'key_file = "{i}.key"\n[bootstrap]\nnodes = {json.dumps(boot)}\n[mcp]\nenabled = false\n'
                        '[pubsub]\nscoring = false\n[log]\nlevel = "warning"\n')
        configs.append(path)

    async def scenario() -> float:
        nodes = [Proc(c) for c in configs]
        try:
            for node in nodes:
                await node.start()
            for node in nodes:
                await node.call("subscribe", topic="t")

            async def publish() -> None:
                while True:
                    await nodes[1].call("publish", topic="t", size=64)
                    await asyncio.sleep(0.2)

            publisher = asyncio.ensure_future(publish())
            await asyncio.sleep(3)
            assert nodes[3].messages, "no messages before the crash"
            await nodes[3].kill()
            await asyncio.sleep(1)
            nodes[3] = Proc(configs[3])
            await nodes[3].start()
            await nodes[3].call("subscribe", topic="t")
            back = time.monotonic()
            while not nodes[3].messages and time.monotonic() - back < 8:  # the idle timeout is longer
                await asyncio.sleep(0.1)
            publisher.cancel()
            return nodes[3].messages[0] - back if nodes[3].messages else float("inf")
        finally:
            for node in nodes:
                if node.proc.returncode is None:
                    node.proc.kill()
                    await node.proc.wait()

    assert asyncio.run(scenario()) < 5.0
