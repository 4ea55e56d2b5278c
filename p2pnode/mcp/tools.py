"""Tools as the MCP server sees them: a name, JSON schemas for input and output, and ``run(call)``.

A tool starts its work in ``run`` and ends it later (or at once) with ``call.finish(structured)`` or
``call.error(text)``; a sans-IO tool that waits for the network finishes from the callback that brings
the answer. Arguments are checked against ``input_schema`` (JSON Schema 2020-12, with ``jsonschema``)
before ``run`` sees them: a mismatch is a tool execution error (``isError``), as MCP asks, naming the
argument.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

if TYPE_CHECKING:
    from p2pnode.mcp.server import Exchange


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    run: Callable[[ToolCall], None]
    title: str = ""
    annotations: dict[str, Any] = field(default_factory=dict)
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.input_schema)
        Draft202012Validator.check_schema(self.output_schema)
        object.__setattr__(self, "validator", Draft202012Validator(self.input_schema))

    def definition(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.description,
                               "inputSchema": self.input_schema, "outputSchema": self.output_schema}
        if self.title:
            out["title"] = self.title
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    def argument_errors(self, arguments: dict[str, Any]) -> list[str]:
        """One line per way ``arguments`` break the input schema, naming the argument."""
        out = []
        for error in sorted(self.validator.iter_errors(arguments), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in error.absolute_path)
            out.append(f"{where}: {error.message}" if where else error.message)
        return out


class ToolCall:
    """One running ``tools/call``: what the tool was asked, and how it answers."""

    def __init__(self, tool: Tool, arguments: dict[str, Any], exchange: Exchange):
        self.tool = tool
        self.arguments = arguments
        self.exchange = exchange
        self._cancel_hooks: list[Callable[[], None]] = []

    @property
    def caller(self) -> str | None:
        """The calling peer's ID (base58), or None for a local client."""
        return self.exchange.channel.caller

    @property
    def active(self) -> bool:
        return self.exchange.active

    @property
    def hops(self) -> int:
        """How many nodes this call already went through (forwarded calls carry the count in ``_meta``)."""
        return self.exchange.hops

    def now(self) -> float:
        return self.exchange.server.runtime.now()

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        self.exchange.progress(done, total, message)

    def on_cancel(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` if the call is cancelled or times out before it finishes (to stop its work)."""
        self._cancel_hooks.append(hook)

    def cancelled(self) -> None:
        hooks, self._cancel_hooks = self._cancel_hooks, []
        for hook in hooks:
            hook()

    def finish(self, structured: dict[str, Any], text: str | None = None) -> None:
        self.exchange.tool_result(structured, text or json.dumps(structured, ensure_ascii=False), False)

    def error(self, text: str, structured: dict[str, Any] | None = None) -> None:
        """A tool execution error: the call reached the tool, which could not do it (``isError: true``)."""
        self.exchange.tool_result(structured, text, True)
