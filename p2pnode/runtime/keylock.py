"""One running node per key on a machine: an advisory lock next to the key file, held while the process lives.

Two ``p2pnode run`` processes whose config files sit in one folder share the default ``node.key``, so both have
the same peer ID: each refuses the other as itself, and the second ends alone, unready. ``lock_key`` takes an
exclusive ``flock`` on ``<key file>.lock`` before the key is read or created. The kernel drops the lock when the
process dies, however it dies (SIGKILL included), so a lock file left behind is never stale: the next start takes
it again. The file holds the holder's PID, only to name it in the error.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import BinaryIO


class KeyInUseError(RuntimeError):
    """Another running process holds the key's lock."""


def lock_path(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".lock")


def lock_key(key_file: Path) -> BinaryIO:
    """Lock ``key_file`` for this process; keep the returned file open for as long as the node runs (closing
    it, or exiting, releases the lock). Raises ``KeyInUseError`` naming the holder."""
    path = lock_path(key_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")  # noqa: SIM115 -- held open for the process lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().decode(errors="replace").strip() or "unknown"
        handle.close()
        raise KeyInUseError(f"{key_file} is in use by another running node (pid {holder}, lock {path}): "
                            "each node needs its own network.key_file") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()
    return handle
