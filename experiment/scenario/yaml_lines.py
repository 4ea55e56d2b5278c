"""YAML read with a line number for every value, so that errors can say where a problem is.

PyYAML's composer keeps each node's position; converting nodes to plain Python ourselves (instead of
``yaml.safe_load``) lets us record path -> line, refuse duplicate keys and cap alias expansion.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from p2pnode.userinput import one_line, quote


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario. `line` is 1-based, None when no line applies."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return one_line(text)  # whatever went into it, a problem is one line




class Lines:
    """Where each value of the converted document sits: path -> line (1-based)."""

    def __init__(self) -> None:
        self.key: dict[tuple[str | int, ...], int] = {}
        self.value: dict[tuple[str | int, ...], int] = {}

    def line(self, path: tuple[str | int, ...]) -> int | None:
        return self.key.get(path, self.value.get(path))


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


MAX_VALUES = 100_000  # aliases can make a tiny file expand exponentially ("billion laughs")


class TooBig(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def node_line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class Converter:
    def __init__(self, label: str) -> None:
        self.label = label
        self.lines = Lines()
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._stack: set[int] = set()
        self._budget = MAX_VALUES

    def problem(self, line: int | None, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(self.label, line, dotted(path), message))

    def convert(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise TooBig(node_line(node))
        self.lines.value.setdefault(path, node_line(node))
        if id(node) in self._stack:
            self.problem(node_line(node), path, "an alias refers to itself")
            return None
        if isinstance(node, yaml.MappingNode):
            self._stack.add(id(node))
            try:
                return self._mapping(node, path)
            finally:
                self._stack.discard(id(node))
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self.problem(node_line(node), path, f"unsupported tag {node.tag}")
            self._stack.add(id(node))
            try:
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self._stack.discard(id(node))
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.problem(node_line(node), path, f"invalid value: {problem}")
            return None
        except ValueError:  # an integer of more digits than Python converts (4,300)
            self.problem(node_line(node), path, f"invalid value: a number of {len(node.value)} characters")
            return None

    def _mapping(self, node: yaml.MappingNode, path: tuple[str | int, ...]) -> dict[str, Any]:
        if node.tag != _MAP_TAG:
            self.problem(node_line(node), path, f"unsupported tag {node.tag}")
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(node_line(key_node), path, "keys must be plain names, not lists or mappings")
                continue
            key = key_node.value
            sub = (*path, key)
            if key in first:
                self.problem(node_line(key_node), sub, f"duplicate key (first given on line {first[key]})")
                continue
            first[key] = node_line(key_node)
            self.lines.key.setdefault(sub, node_line(key_node))  # explicit keys come before merged ones
            out[key] = self.convert(value_node, sub)
        for merge in merges:
            sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    self.problem(node_line(source), path, "'<<' merges only mappings")
                    continue
                if id(source) in self._stack:
                    self.problem(node_line(source), path, "an alias refers to itself")
                    continue
                self._stack.add(id(source))
                try:
                    merged = self._mapping(source, path)
                finally:
                    self._stack.discard(id(source))
                for key, value in merged.items():
                    out.setdefault(key, value)
        return out


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,60}")  # a sweep's keys are dotted paths


def dotted(path: Sequence[str | int]) -> str:
    """nodes.regions.eu-west, sweep.nodes[2]; a key that is not a plain name is quoted (briefly: a key can be
    anything YAML can write, newlines and megabytes included)."""
    out = ""
    for el in path:
        if isinstance(el, int):
            out += f"[{el}]"
            continue
        name = str(el) if _PLAIN_KEY.fullmatch(str(el)) else quote(str(el), 30)
        out += f".{name}" if out else name
    return out


def source_label(source: Path | str | None) -> str:
    return "<string>" if source is None else str(source)


def yaml_error(exc: yaml.YAMLError, label: str) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem:
        message = f"invalid YAML: {context}, {problem}" if context else f"invalid YAML: {problem}"
    else:
        message = f"invalid YAML: {exc}"
    return Problem(label, None if mark is None else mark.line + 1, "", " ".join(message.split()))
