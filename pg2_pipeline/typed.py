"""Plain JSON/YAML values checked into frozen dataclasses, with errors that name the key.

One checker for everything the project reads back from text: ``params.yaml``
(:mod:`pg2_pipeline.config`) and the assets' summaries (:mod:`pg2_pipeline.summaries`).
Supported field types: ``bool``, ``int``, ``float`` (ints and '2e-5'-style strings accepted),
``str``, ``None``, ``Literal[...]``, unions, ``tuple[T, ...]`` / ``list[T]`` (read as tuples),
``dict[str, T]``, nested dataclasses and ``Any``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, NoReturn, get_args, get_origin


class TypedValueError(ValueError):
    """A value does not match its declared type (the message names the key)."""


def build(cls: type, values: Any, name: str, source: str, error: type[ValueError] = TypedValueError) -> Any:
    """``cls(**values)`` after checking that ``values`` has exactly ``cls``'s fields, each of its
    declared type. ``name`` is the key path for messages (``stage1``, ``metrics.stage2``)."""
    if not isinstance(values, dict):
        raise error(f"{source}: '{name}' must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    extra = [k for k in values if k not in names]
    if extra:
        raise error(f"{source}: unknown key '{_join(name, extra[0])}' (expected one of {', '.join(names)})")
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in values]
    if missing:
        raise error(f"{source}: missing key '{_join(name, missing[0])}' ({type_name(hints[missing[0]])})")
    return cls(**{k: coerce(v, hints[k], _join(name, k), source, error) for k, v in values.items()})


def _join(name: str, key: str) -> str:
    return f"{name}.{key}" if name else key


def type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        return f"list of {type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"mapping of {type_name(get_args(tp)[1])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str, source: str, error: type[ValueError] = TypedValueError) -> Any:
    """``value`` as type ``tp``, or ``error`` naming ``key`` and the expected type."""

    def fail() -> NoReturn:
        raise error(f"{source}: '{key}' expected {type_name(tp)}, got {type(value).__name__} {value!r}")

    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in get_args(tp):
            try:
                return coerce(value, option, key, source, error)
            except error:
                continue
        fail()
    if origin is Literal:
        if value in get_args(tp):
            return value
        fail()
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            fail()
        (item,) = get_args(tp)[:1]
        return tuple(coerce(v, item, f"{key}[{i}]", source, error) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            fail()
        _, item = get_args(tp)
        return {str(k): coerce(v, item, f"{key}.{k}", source, error) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key, source, error)
    if tp is type(None):
        if value is None:
            return None
        fail()
    if tp is bool:
        if isinstance(value, bool):
            return value
        fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads '2e-5' (no dot) as a string
            try:
                return float(value)
            except ValueError:
                fail()
        fail()
    if tp is str:
        if isinstance(value, str):
            return value
        fail()
    raise TypeError(f"unsupported type {tp!r} for {key}")
