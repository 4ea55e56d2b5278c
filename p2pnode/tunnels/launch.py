"""Starting a data plane (``python -m p2pnode.tunnels``) as a process and reading what it says: shared by the
selection agent (``p2pnode.tunnels.select``) and the emulated hosts (``topologies/transition.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import time


def plane_argv(spec: dict, setup: list[str] = (), tun: str = "tun0", on_event: list[str] = (),
               python: str | None = None) -> list[str]:
    """The command line of one data plane; ``TUN`` in setup and event commands is the device's name."""
    argv = [python or sys.executable, "-m", "p2pnode.tunnels", json.dumps(spec), "--tun", tun]
    for command in [f"ip link set {tun} up", *setup]:
        argv += ["--setup", command.replace("TUN", tun)]
    for hook in on_event:
        argv += ["--on-event", hook.replace("TUN", tun)]
    return argv


def read_json_line(stream, deadline: float) -> dict | None:
    """The next JSON line of a process's stdout before ``deadline`` (other lines skipped), None at the end."""
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return None
        chunk = os.read(stream.fileno(), 1)
        if not chunk:
            return None
        if chunk != b"\n":
            buf += chunk
            continue
        with contextlib.suppress(ValueError):
            return json.loads(buf)
        buf = b""
    return None
