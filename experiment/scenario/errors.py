"""Scenario problems: `ScenarioError`, and pydantic's validation errors turned into one-line problems.

Each problem names the file, the line, the dotted path of the value and what is wrong with it::

    scenarios/bad.yaml:12: churn.session.distribution: 'weibul' is not one of exponential, weibull, lognormal

The schema's cross-field validators raise `Problems` (locations relative to the model validated); everything
else is one of pydantic's error kinds, worded here.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from experiment.scenario.yaml_lines import Lines, Problem, dotted
from p2pnode.userinput import quote

Loc = tuple[str | int, ...]


class ScenarioError(ValueError):
    """A scenario that cannot be used; str() has one line per problem, sorted by line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(
            problems, key=lambda p: (p.line is None, p.line or 0, p.file, p.path, p.message)
        )
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems,))


class Problems(ValueError):
    """Raised by cross-field validators: problems with locations relative to the model validated."""

    def __init__(self, items: list[tuple[Loc, str]]) -> None:
        self.items = items
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in items))


def raise_if(items: list[tuple[Loc, str]]) -> None:
    if items:
        raise Problems(items)


def got(value: Any) -> str:
    """How a value the user wrote is named in a message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return quote(value)


_TYPE_MESSAGES = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "path_type": "expected a file path",
    "finite_number": "expected a finite number",
}
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _message(err: Mapping[str, Any], loc: Loc, root: type[BaseModel]) -> tuple[Loc, str]:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        if loc and isinstance(loc[-1], int):
            return loc[:-1], f"expected at least {loc[-1] + 1} items"
        return loc, "required field is missing"
    if kind == "extra_forbidden":
        allowed = _fields_at(root, err["loc"][:-1])
        return loc, "unknown field" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
    if kind == "union_tag_invalid":
        disc = str(ctx.get("discriminator", "distribution")).strip("'")
        tags = ", ".join(t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(","))
        return (*loc, disc), f"{quote(ctx.get('tag'))} is not one of {tags}"
    if kind == "union_tag_not_found":
        disc = str(ctx.get("discriminator", "distribution")).strip("'")
        return (*loc, disc), f"required field is missing (one of {', '.join(_tags_at(root, err['loc'], disc))})"
    if kind in _TYPE_MESSAGES:
        value = err.get("input")
        message = f"{_TYPE_MESSAGES[kind]}, got {got(value)}"
        if kind == "float_type" and isinstance(value, str) and _EXPONENT_AS_TEXT.match(value.strip()):
            message += " (YAML reads an exponent without '.' and sign as text: write 1.0e+3)"
        return loc, message
    if kind in ("too_short", "too_long"):
        most = "least" if kind == "too_short" else "most"
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        items = "item" if limit == 1 else "items"
        return loc, f"expected at {most} {limit} {items}, got {ctx.get('actual_length')}"
    if kind in _BOUNDS:
        key, op = _BOUNDS[kind]
        bound = ctx.get(key)
        bound = f"{bound:g}" if isinstance(bound, float) else bound
        return loc, f"must be {op} {bound}, got {got(err.get('input'))}"
    msg = str(err["msg"])
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    return loc, msg


_EXPONENT_AS_TEXT = re.compile(r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$")


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        args = typing.get_args(tp)
        if args and type(None) in args:
            rest = [a for a in args if a is not type(None)]
            if len(rest) == 1:
                tp = rest[0]
                continue
        return tp


def _type_at(root: type[BaseModel], loc: Sequence[str | int]) -> Any:
    """The (unwrapped) type of the value that pydantic's `loc` points to, or None if it leads nowhere."""
    tp: Any = root
    for el in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(el))
            if field is None:
                return None
            tp = field.annotation
            continue
        if typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
            continue
        chosen = [m for m in _members(tp) if _tag(m, "distribution") == el]
        if not chosen:
            return None
        tp = chosen[0]
    return _unwrap(tp)


def _members(tp: Any) -> list[type[BaseModel]]:
    """The models of a union (a discriminated one: the churn distributions)."""
    return [m for m in typing.get_args(tp) if isinstance(m, type) and issubclass(m, BaseModel)]


def _tag(model: type[BaseModel], discriminator: str) -> Any:
    field = model.model_fields.get(discriminator)
    args = typing.get_args(field.annotation) if field is not None else ()
    return args[0] if len(args) == 1 else None


def _fields_at(root: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The field names of the model that pydantic's `loc` points into (for 'unknown field')."""
    tp = _type_at(root, loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return None


def _tags_at(root: type[BaseModel], loc: Sequence[str | int], discriminator: str) -> list[str]:
    """The tags a discriminated union at `loc` accepts (for a missing tag)."""
    return [str(_tag(m, discriminator)) for m in _members(_type_at(root, loc))]


def _locate(loc: Loc, data: Any) -> tuple[Loc, Loc]:
    """Split pydantic's loc into (path to show, deepest path present in the data)."""
    shown: list[str | int] = []
    present: list[str | int] = []
    cur = data
    found = True
    for el in loc:
        if el == "[key]":
            continue
        if found and isinstance(cur, dict) and el in cur:
            cur = cur[el]
            present.append(el)
        elif found and isinstance(cur, list) and isinstance(el, int) and 0 <= el < len(cur):
            cur = cur[el]
            present.append(el)
        elif found and isinstance(cur, dict) and cur.get("distribution") == el:
            continue  # the tag pydantic adds for a discriminated union
        else:
            found = False
        shown.append(el)
    return tuple(shown), tuple(present)


def validation_problems(
    exc: ValidationError,
    root: type[BaseModel],
    data: Any,
    label: str,
    lines: Mapping[Loc, int] | Lines,
    overridden: set[Loc],
) -> list[Problem]:
    """One problem per error pydantic found validating `data` as `root`, with its line from `lines`."""
    problems = []
    for err in exc.errors():
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, Problems):
            raw = [(tuple(err["loc"]) + tuple(rel), msg) for rel, msg in error.items]
        else:
            raw = [_message(err, tuple(err["loc"]), root)]
        for loc, msg in raw:
            shown, present = _locate(loc, data)
            problems.append(problem(label, lines, overridden, shown, present, msg))
    return problems


def problem(
    label: str,
    lines: Mapping[Loc, int] | Lines,
    overridden: set[Loc],
    shown: Loc,
    present: Loc,
    message: str,
) -> Problem:
    """A problem at `shown`, on the line of the deepest part of `present` that has one; a value set by an
    override has no line."""
    if any(shown[:i] in overridden for i in range(1, len(shown) + 1)):
        return Problem(f"{label} (override)", None, dotted(shown), message)
    line = None
    for i in range(len(present), -1, -1):
        line = lines.line(present[:i]) if isinstance(lines, Lines) else lines.get(present[:i])
        if line is not None:
            break
    return Problem(label, line, dotted(shown), message)
