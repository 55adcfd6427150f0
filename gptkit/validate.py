"""Config values checked against their type hints and ranges: the validation every config dataclass runs.

    def __post_init__(self):
        check_fields(self, "sampling")                          # types, choices (Literal), tuples, unions
        require(self, "sampling", temperature=">= 0", top_p="(0, 1]")   # ranges; unset (None) passes

Errors are GptkitErrors that name the section and the key.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal

from .errors import GptkitError


def check_fields(config: Any, section: str) -> None:
    """Check every field of a config dataclass against its type hint (numbers, booleans, choices, ...)."""
    for name, hint in field_types(type(config)).items():
        check_value(section, name, getattr(config, name), hint)


def check_value(section: str, name: str, value: Any, hint: Any) -> None:
    """One value against a type hint, e.g. check_value("grow_depth", "method", m, Literal["stack", "identity"])."""
    if not _matches(value, hint):
        raise GptkitError(f"{section}: {name} must be {_describe(hint)}, got {value!r}")


def require(config: Any, section: str, **rules: str) -> None:
    """Range checks, e.g. require(cfg, "train config", lr="> 0", dropout="[0, 1)"); unset (None) values pass."""
    for name, rule in rules.items():
        value = getattr(config, name)
        if value is not None and not _within(value, rule):
            raise GptkitError(f"{section}: {name} must be {'in ' if rule[0] in '[(' else ''}{rule}, got {value!r}")


def _within(value: float, rule: str) -> bool:
    """`>= x`, `> x`, or an interval such as `[0, 1)`."""
    if rule[0] in "[(":
        low, high = (float(x) for x in rule[1:-1].split(","))
        above = low <= value if rule[0] == "[" else low < value
        below = value <= high if rule[-1] == "]" else value < high
        return above and below
    op, bound = rule.split()
    return value >= float(bound) if op == ">=" else value > float(bound)


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type hints of a dataclass's fields (cached: checked on every construction)."""
    return typing.get_type_hints(cls)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if _is_union(hint):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any length
            return isinstance(value, tuple) and all(_matches(v, args[0]) for v in value)
        return isinstance(value, tuple) and len(value) == len(args) and all(map(_matches, value, args))
    return hint is Any or not isinstance(hint, type) or isinstance(value, hint)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(hint))
    if _is_union(hint):
        return " or ".join("unset" if a is type(None) else _describe(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        plural = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
        return "a list of tables" if dataclasses.is_dataclass(item) else \
            f"a list of {plural.get(item) or _describe(item)}"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))
