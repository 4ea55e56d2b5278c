"""Fuzz target: a node's TOML configuration. Any bytes end in a NodeConfig or a NodeConfigError whose lines are
short and printable; anything else is a bug."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz._runner import target  # noqa: E402
from p2pnode.nodeconfig import NodeConfigError, parse_config  # noqa: E402
from p2pnode.userinput import InputFileError, decode  # noqa: E402


@target("node_toml")
def check(data: bytes) -> None:
    try:
        parse_config(decode(data), source="n.toml")
    except InputFileError:
        return
    except NodeConfigError as exc:
        for line in str(exc).splitlines():
            assert len(line) <= 320 and line.isprintable(), line
