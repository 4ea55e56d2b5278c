"""Drive a py-libp2p 0.8.1 peer (tests/interop/pylibp2p_peer.py) as a subprocess, from plain threads.

    from tests.interop.pylibp2p import PyLibp2pPeer, interop_python

    with PyLibp2pPeer() as peer:
        ready = peer.start("tcp", "/ip4/127.0.0.1/tcp/0", seed=1, topic="t")
        peer.call("connect", addr=other_addr)            # -> {"id":.., "ok": True, "peer_id": ...}
        peer.call("ping", peer=other_id)["rtt_ms"]
        peer.wait_event(lambda e: e["event"] == "message", timeout=10)

The peer runs with the interop venv's python: $INTEROP_VENV if set (relative paths are taken from the repo root),
else <repo>/.venv-interop (made by scripts/setup-interop.sh). This module imports nothing outside the standard
library, so tests of our own node can use it as the other side.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_SCRIPT = Path(__file__).resolve().with_name("pylibp2p_peer.py")
LIBP2P_VERSION = "0.8.1"
DEFAULT_LISTEN = {"tcp": "/ip4/127.0.0.1/tcp/0", "quic": "/ip4/127.0.0.1/udp/0/quic-v1"}


def interop_venv() -> Path:
    """The interop virtualenv's path (it may not exist)."""
    env = os.environ.get("INTEROP_VENV")
    if env:
        p = Path(env)
        return p if p.is_absolute() else REPO_ROOT / p
    return REPO_ROOT / ".venv-interop"


def interop_python() -> Path | None:
    """The interop venv's python, or None when the venv is missing."""
    py = interop_venv() / "bin" / "python"
    return py if py.exists() else None


class PeerError(RuntimeError):
    """A command answered {"ok": false}; .reply holds the whole answer."""

    def __init__(self, cmd: str, reply: dict[str, Any], stderr_tail: str = "") -> None:
        msg = f"{cmd}: {reply.get('error')}"
        if stderr_tail:
            msg += f"\n--- peer stderr (tail) ---\n{stderr_tail}"
        super().__init__(msg)
        self.reply = reply


class PyLibp2pPeer:
    """One py-libp2p peer process. Not reusable: start() once, close() once (close() is idempotent)."""

    def __init__(self, python: str | os.PathLike[str] | None = None, name: str = "pylibp2p",
                 env: dict[str, str] | None = None) -> None:
        py = python if python is not None else interop_python()
        if py is None:
            raise FileNotFoundError(f"no interop venv at {interop_venv()}; run scripts/setup-interop.sh")
        self.python = str(py)
        self.name = name
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] | None = None
        self.peer_id: str | None = None
        self.addrs: list[str] = []
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._replies: dict[Any, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._noise: list[str] = []  # stdout lines that were not JSON (should never happen)
        self._eof = False
        self._reader: threading.Thread | None = None
        self._stderr_file: Any = None
        self._write_lock = threading.Lock()

    # ---- process -------------------------------------------------------------------------------------------

    def start(self, transport: str, listen: str | None = None, seed: int | None = None, topic: str | None = None,
              extra_args: list[str] | tuple[str, ...] = (), ready_timeout: float = 30.0) -> dict[str, Any]:
        """Start the process and wait for its ready line; returns it (also in .ready, .peer_id, .addrs)."""
        cmd = [self.python, str(PEER_SCRIPT), "--transport", transport, "--listen", listen or DEFAULT_LISTEN[transport]]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        if topic is not None:
            cmd += ["--topic", topic]
        return self.launch(cmd + list(extra_args), ready_timeout)

    def launch(self, cmd: list[str], ready_timeout: float = 30.0) -> dict[str, Any]:
        """Run ``cmd`` (a peer speaking this JSON-line protocol, whatever its implementation) and wait for its
        ready line."""
        if self.proc is not None:
            raise RuntimeError("already started")
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._stderr_file = tempfile.TemporaryFile(prefix=f"{self.name}-", suffix=".log")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr_file,
                                     env=env, cwd=str(REPO_ROOT), start_new_session=True)
        self._reader = threading.Thread(target=self._read_stdout, name=f"{self.name}-stdout", daemon=True)
        self._reader.start()
        try:
            ev = self.wait_event(lambda e: e.get("event") in ("ready", "error"), timeout=ready_timeout)
        except TimeoutError:
            self.close()
            raise
        if ev.get("event") == "error":
            tail = self.stderr_tail()
            self.close()
            raise RuntimeError(f"{self.name} failed to start: {ev.get('error')}\n{tail}")
        self.ready = ev
        self.peer_id = ev["peer_id"]
        self.addrs = list(ev["addrs"])
        return ev

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                with self._cond:
                    self._noise.append(line)
                continue
            with self._cond:
                if isinstance(obj, dict) and "event" not in obj and "id" in obj:
                    self._replies[obj["id"]] = obj
                else:
                    self._events.append(obj)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self, timeout: float = 5.0) -> int | None:
        """Ask the peer to quit, wait up to timeout, then kill it. Always leaves no process behind."""
        proc = self.proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                try:
                    self._send({"id": "close", "cmd": "quit"})
                    if proc.stdin is not None:
                        proc.stdin.close()
                except (OSError, ValueError):
                    pass
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, 9)
                except (ProcessLookupError, PermissionError):
                    proc.kill()
                proc.wait(timeout=10)
            for f in (proc.stdin, proc.stdout):
                try:
                    if f is not None:
                        f.close()
                except OSError:
                    pass
            if self._reader is not None:
                self._reader.join(timeout=2)
        return proc.returncode

    def __enter__(self) -> PyLibp2pPeer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
        if self._stderr_file is not None:
            self._stderr_file.close()

    def stderr_text(self) -> str:
        f = self._stderr_file
        if f is None:
            return ""
        try:
            f.flush()
            f.seek(0)
            return f.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def stderr_tail(self, lines: int = 40) -> str:
        return "\n".join(self.stderr_text().splitlines()[-lines:])

    # ---- commands ------------------------------------------------------------------------------------------

    def _send(self, obj: dict[str, Any]) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise RuntimeError("not started")
        data = (json.dumps(obj) + "\n").encode()
        with self._write_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def send(self, cmd: str, timeout: float | None = None, **args: Any) -> int:
        """Send a command without waiting; returns its id (use wait_reply)."""
        rid = next(self._ids)
        req: dict[str, Any] = {"id": rid, "cmd": cmd, **args}
        if timeout is not None:
            req["timeout"] = timeout
        self._send(req)
        return rid

    def wait_reply(self, rid: Any, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._replies:
                left = deadline - time.monotonic()
                if self._eof:
                    raise RuntimeError(f"{self.name} exited (rc={self.proc.poll() if self.proc else None}) "
                                       f"before answering #{rid}\n{self.stderr_tail()}")
                if left <= 0:
                    raise TimeoutError(f"{self.name}: no answer to #{rid} within {timeout:g}s")
                self._cond.wait(left)
            return self._replies.pop(rid)

    def call(self, cmd: str, timeout: float | None = None, check: bool = True, **args: Any) -> dict[str, Any]:
        """Run one command and return its answer; raises PeerError on {"ok": false} unless check=False.

        timeout is the peer-side command timeout (default 10 s there); we wait a few seconds longer.
        """
        rid = self.send(cmd, timeout=timeout, **args)
        reply = self.wait_reply(rid, timeout=(timeout if timeout is not None else 10.0) + 5.0)
        if check and not reply.get("ok"):
            raise PeerError(cmd, reply, self.stderr_tail(15))
        return reply

    # ---- events --------------------------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """All events so far (ready, message, ...), oldest first."""
        with self._cond:
            return list(self._events)

    def wait_event(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """First event (already received or future) for which pred(event) is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for ev in self._events[seen:]:
                    if pred(ev):
                        return ev
                seen = len(self._events)
                if self._eof:
                    raise RuntimeError(f"{self.name} exited (rc={self.proc.poll() if self.proc else None})\n"
                                       f"{self.stderr_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: no matching event within {timeout:g}s")
                self._cond.wait(left)

    def wait_message(self, topic: str, data: bytes | None = None, sender: str | None = None,
                     timeout: float = 10.0) -> dict[str, Any]:
        """Wait for a pub-sub message event on topic (optionally with these bytes / from this peer)."""
        def match(e: dict[str, Any]) -> bool:
            return (e.get("event") == "message" and e.get("topic") == topic
                    and (data is None or e.get("data_hex") == data.hex())
                    and (sender is None or e.get("from") == sender))
        return self.wait_event(match, timeout=timeout)
