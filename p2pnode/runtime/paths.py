"""The files a node's configuration names, checked at start the way the node will use them.

A path that cannot work must stop the node before it listens, with a line naming the key, rather than later
(records lost at shutdown because ``dht.storage_path`` sits below a regular file) or misreported ("cannot
listen" for a storage path that is a directory). How each key's file is used:

* ``network.key_file``: read if it exists (a regular file), else created with ``peer_id = "auto"`` (its folder
  made if missing); ``<key_file>.lock`` is created beside it either way (``keylock``);
* ``dht.storage_path``: read at start if it exists (a regular UTF-8 file), written at stop through a temporary
  file renamed over it (its folder made if missing);
* ``log.events_file``: created or truncated at start, in a folder that must exist.

A folder "can be made" if its nearest existing ancestor is a folder we can create a file in: we try, with a
temporary file removed at once, since permission bits do not tell (root ignores them; a read-only mount does not).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from p2pnode.nodeconfig import NodeConfig
from p2pnode.runtime.record_file import MAX_RECORD_FILE_BYTES
from p2pnode.userinput import InputFileError, quote, read_bytes, read_text

MAX_KEY_FILE_BYTES = 64 << 10  # a protobuf private key is well under 10 KiB (RSA-4096 included)


class PathProblem(ValueError):
    pass


def _kind(path: Path) -> str | None:
    """None if nothing is at `path`, else 'file', 'folder' or what else it is."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise PathProblem("a part of it is a file, not a folder") from None
    except OSError as exc:
        raise PathProblem(f"cannot be looked at: {exc.strerror}") from None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    return "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"


def _writable_folder(folder: Path, create: bool) -> None:
    """`folder` exists (or, with `create`, can be made) and a file can be created in it."""
    existing = folder
    while _kind(existing) is None:
        if not create:
            raise PathProblem(f"its folder {quote(str(folder), 120)} does not exist")
        existing = existing.parent
    if _kind(existing) != "folder":
        raise PathProblem(f"{quote(str(existing), 120)} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise PathProblem(f"cannot create files in {quote(str(existing), 120)}: {exc.strerror}") from None


def _existing_file(path: Path, writable: bool) -> bool:
    """True if a regular file is at `path` (readable, and writable if asked), False if nothing is."""
    kind = _kind(path)
    if kind is None:
        return False
    if kind != "file":
        raise PathProblem(f"is {'a folder' if kind == 'folder' else kind}; expected a file")
    if not os.access(path, os.R_OK | (os.W_OK if writable else 0)):
        raise PathProblem("permission denied")
    return True


def _check_key_file(config: NodeConfig, path: Path) -> None:
    exists = _existing_file(path, writable=False)
    if exists:
        _readable(read_bytes, path, MAX_KEY_FILE_BYTES)
    elif config.network.peer_id != "auto":
        raise PathProblem(f"does not exist, and network.peer_id is {config.network.peer_id} (not auto)")
    _writable_folder(path.parent, create=not exists)  # its lock file, and the key when it is made


def _check_storage(path: Path) -> None:
    if _existing_file(path, writable=True):
        _readable(read_text, path, MAX_RECORD_FILE_BYTES)
    _writable_folder(path.parent, create=True)


def _check_events(path: Path) -> None:
    _existing_file(path, writable=True)
    _writable_folder(path.parent, create=False)


def _readable(read, path: Path, limit: int) -> None:
    try:
        read(path, limit)
    except InputFileError as exc:
        raise PathProblem(exc.reason) from None


def path_problems(config: NodeConfig) -> list[str]:
    """One line per configured path the node could not use as it will: "key: path: what is wrong"."""
    checks = [("network.key_file", config.network.key_file, lambda p: _check_key_file(config, p))]
    if config.dht.storage_path:
        checks.append(("dht.storage_path", config.dht.storage_path, _check_storage))
    if config.log.events_file:
        checks.append(("log.events_file", config.log.events_file, _check_events))
    problems = []
    for key, value, check in checks:
        try:
            check(config.path(value))
        except PathProblem as exc:
            problems.append(f"{key}: {quote(value, 120)}: {exc}")
    return problems
