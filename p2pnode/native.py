"""Compiled hot paths: mypyc builds of a few pure-Python modules, used only when built from today's source.

``scripts/build-native.py`` compiles ``MODULES`` (the same source, nothing rewritten) into ``build/native/``
and writes ``stamp.json``: each module's extension file and the SHA-256 of the source it was compiled from,
and mypyc's shared library. ``install()`` (run when ``p2pnode`` or ``sim`` is imported) puts a finder first
on ``sys.meta_path`` that loads these modules from the build when every stamp matches the source in the
tree (``P2PNODE_NATIVE_DIR`` names another build); otherwise (no compiler, no build, a source edited since,
or ``P2PNODE_PURE=1``) they are imported from their ``.py`` files as always, so an edit never runs stale
compiled code. Both ways give the same results; ``status()`` says which one this process uses (the
simulator records it in the run's figures).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path

# The simulator's per-message work: the routing table, the lookup state machine, the SimPy runtime.
MODULES = ("p2pnode.kad.routing", "p2pnode.kad.query", "sim.runtime")
ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("P2PNODE_NATIVE_DIR") or ROOT / "build" / "native")  # the tests point it elsewhere


def source_of(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plan(build: Path = BUILD) -> tuple[dict[str, Path], str]:
    """The extension file for each module name to load, and why: ``compiled``, or why not (then empty)."""
    if os.environ.get("P2PNODE_PURE"):
        return {}, "pure (P2PNODE_PURE)"
    try:
        stamp = json.loads((build / "stamp.json").read_text())
    except FileNotFoundError:
        return {}, "pure (not built)"
    except (OSError, ValueError) as exc:
        return {}, f"pure (unreadable build stamp: {exc})"
    if stamp.get("python") != sys.implementation.cache_tag or set(stamp.get("modules", {})) != set(MODULES):
        return {}, "pure (built for another Python or module list: run scripts/build-native.py)"
    files: dict[str, Path] = {}
    for name, entry in stamp["modules"].items():
        source = source_of(name)
        if not source.is_file() or digest(source) != entry["sha256"]:
            return {}, f"pure ({source.relative_to(ROOT)} changed since the build: run scripts/build-native.py)"
        files[name] = build / entry["file"]
    files.update({name: build / file for name, file in stamp.get("shared", {}).items()})
    if not all(path.is_file() for path in files.values()):
        return {}, "pure (build incomplete: run scripts/build-native.py)"
    return files, "compiled"


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(self, name, path, target=None):  # noqa: ANN001 (importlib's signature)
        file = self.files.get(name)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(name, str(file))
        return importlib.util.spec_from_file_location(name, file, loader=loader)


_status: str | None = None


def install() -> str:
    """Use the compiled modules if the build is current (once per process); returns ``status()``."""
    global _status
    if _status is None:
        files, _status = plan()
        already = [name for name in MODULES if name in sys.modules]
        if files and already:  # imported before the finder could act: keep them pure, all together
            _status = f"pure ({', '.join(already)} imported first)"
        elif files:
            sys.meta_path.insert(0, _Finder(files))
    return _status


def status() -> str:
    """``compiled``, or ``pure (why)``: how this process runs ``MODULES``."""
    return install()
