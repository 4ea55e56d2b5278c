"""Every number a pydantic schema can hold, with its constraints: for the tests that every one has a range."""

from __future__ import annotations

import types
import typing

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo


def numeric_fields(tp, path=(), meta=()):
    """(path, constraints) of every int or float reachable from the model `tp` (through Annotated, unions,
    lists, tuples, dict values and nested models)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(tp)
        more = [m for item in extra for m in (item.metadata if isinstance(item, FieldInfo) else [item])]
        yield from numeric_fields(base, path, (*meta, *more))
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            yield from numeric_fields(arg, path, meta)
    elif origin in (dict, list, tuple):
        args = typing.get_args(tp)
        for arg in args[1:] if origin is dict else args:
            yield from numeric_fields(arg, (*path, "[]"), ())
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, field in tp.model_fields.items():
            yield from numeric_fields(field.annotation, (*path, name), tuple(field.metadata))
    elif tp in (int, float):
        yield path, meta


def unbounded(model) -> list[str]:
    """The dotted paths of `model`'s numbers that lack a lower or an upper bound."""
    out = []
    for path, meta in numeric_fields(model):
        low = any(isinstance(m, annotated_types.Ge | annotated_types.Gt) for m in meta)
        high = any(isinstance(m, annotated_types.Le | annotated_types.Lt) for m in meta)
        if not (low and high):
            out.append(".".join(path))
    return out
