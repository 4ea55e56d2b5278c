"""The sans-IO rule (DESIGN.md): protocol code under ``p2pnode/`` imports no asyncio, SimPy, sockets or
clock, and draws no global randomness. Only runtime, transport, tunnel, HTTP and CLI code may.

The check reads each module's syntax tree; it does not import anything."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "p2pnode"
FORBIDDEN_MODULES = {"asyncio", "simpy", "socket", "trio", "time", "selectors"}
# path parts (directories or file stems) whose code may do I/O: runtime/, transports/, asyncio_runtime.py, ...
IO_PART = re.compile(r"^(.*_)?(runtime|transports?|tunnels?|http|cli)(_.*)?$")
ALLOWED_RANDOM_NAMES = {"Random"}  # the type of the generator a runtime hands in


def is_protocol_module(path: Path) -> bool:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return path.name != "__main__.py" and not any(IO_PART.match(part) for part in parts)


def protocol_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if is_protocol_module(p))


def violations(source: str, filename: str = "<source>") -> list[str]:
    """What in ``source`` breaks the sans-IO rule, one line per finding."""
    tree = ast.parse(source, filename)
    found = []
    random_aliases = set()  # names bound to the random module in this file

    def where(node: ast.AST) -> str:
        return f"{filename}:{node.lineno}"

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{where(node)}: import {alias.name}")
                if alias.name == "random":
                    random_aliases.add(alias.asname or "random")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top in FORBIDDEN_MODULES:
                found.append(f"{where(node)}: from {node.module} import ...")
            if node.module == "random":
                for alias in node.names:
                    if alias.name not in ALLOWED_RANDOM_NAMES:
                        found.append(f"{where(node)}: from random import {alias.name} (global randomness)")
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            # __import__("socket") / importlib.import_module("socket")
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if name in ("__import__", "import_module") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{where(node)}: dynamic import of {arg.value}")
    for node in ast.walk(tree):
        uses_random = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and node.value.id in random_aliases
        if uses_random and node.attr not in ALLOWED_RANDOM_NAMES:
            found.append(f"{where(node)}: {node.value.id}.{node.attr} (global randomness)")
        # an unseeded generator is seeded from the OS: as non-deterministic as the global one
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Random"
                and isinstance(node.func.value, ast.Name) and node.func.value.id in random_aliases
                and not node.args and not node.keywords):
            found.append(f"{where(node)}: unseeded {node.func.value.id}.Random()")
    return found


def test_there_is_protocol_code_to_check():
    names = {p.relative_to(PACKAGE).as_posix() for p in protocol_modules()}
    assert {"kad/node.py", "kad/routing.py", "kad/query.py", "identity.py", "interface.py"} <= names


@pytest.mark.parametrize("path", protocol_modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_protocol_module_is_sans_io(path):
    assert violations(path.read_text(), str(path.relative_to(PACKAGE.parent))) == []


# ---- the checker itself can fail ------------------------------------------------------------------


@pytest.mark.parametrize("source", [
    "import socket",
    "import asyncio.events",
    "from asyncio import sleep",
    "import time as clock",
    "from time import monotonic",
    "import simpy",
    "from simpy.core import Environment",
    "import trio",
    "import selectors",
    "import os, socket",
    "def f():\n    import socket",
    "import random\nx = random.random()",
    "import random\nx = random.randint(1, 6)",
    "import random as r\nr.shuffle([1, 2])",
    "from random import choice",
    "from random import Random, getrandbits",
    "import random\nrng = random.Random()",
    "__import__('socket')",
    "import importlib\nimportlib.import_module('asyncio')",
])
def test_checker_flags(source):
    assert violations(source)


@pytest.mark.parametrize("source", [
    "import random\ndef f(rng: random.Random) -> int:\n    return rng.randint(1, 6)",
    "from random import Random\nrng = Random(42)",
    "import random\nrng = random.Random(7)",
    "from p2pnode.interface import Runtime\nimport hashlib",
    "import timeit_helpers\nfrom time_model import x",  # names that merely start like a forbidden one
    "from .time import now",  # a relative import of our own module
    "def f(runtime):\n    return runtime.now()",
])
def test_checker_allows(source):
    assert violations(source) == []


def test_io_code_is_exempt_and_protocol_code_is_not():
    assert not is_protocol_module(PACKAGE / "runtime" / "asyncio.py")
    assert not is_protocol_module(PACKAGE / "transports" / "quic.py")
    assert not is_protocol_module(PACKAGE / "tunnel.py")
    assert not is_protocol_module(PACKAGE / "http" / "server.py")
    assert not is_protocol_module(PACKAGE / "cli.py")
    assert not is_protocol_module(PACKAGE / "__main__.py")
    assert not is_protocol_module(PACKAGE / "asyncio_runtime.py")
    assert is_protocol_module(PACKAGE / "kad" / "node.py")
    assert is_protocol_module(PACKAGE / "interface.py")
    assert is_protocol_module(PACKAGE / "gossipsub" / "router.py")
