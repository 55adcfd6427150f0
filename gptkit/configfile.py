"""Config files: a preset name or a TOML/JSON file, plus `key=value` overrides, into a config dataclass.

    run = load_config(RunConfig, "tiny", ["n_layer=4", "train.lr=1e-3"])

A field whose type is a config dataclass is a `[section]` of the file (sections nest:
`[task.qa]`). An override is `key=value` or `section.key=value`; a bare key goes to the
one section that has it. Unknown keys are errors that list the valid ones, and a key
that moved to another section says where it went.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import GptkitError
from .validate import field_types

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


def _nested(cls: type) -> dict[str, type]:
    """Fields of `cls` that are config dataclasses themselves: the [sections] of its files."""
    return {name: hint for name, hint in field_types(cls).items() if dataclasses.is_dataclass(hint)}


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict, source: str = "config", path: tuple[str, ...] = ()) -> T:
    """Build `cls` (the section at `path` of a file) from a dict; unknown keys and wrong types are GptkitErrors."""
    hints = field_types(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise GptkitError(_unknown_keys(cls, unknown, source, path))
    data = dict(data)
    for name, value in data.items():
        if name in _nested(cls):
            if not isinstance(value, dict):
                raise GptkitError(f"{source}: [{name}] must be a table of settings")
            data[name] = from_dict(hints[name], value, f"{source} [{name}]", (*path, name))
        elif typing.get_origin(hints[name]) is tuple and isinstance(value, (list, tuple)):
            item = typing.get_args(hints[name])[0]  # TOML arrays are lists; frozen configs keep tuples
            data[name] = tuple(_table(item, v, f"{source} {name}[{i}]") for i, v in enumerate(value)) \
                if dataclasses.is_dataclass(item) else tuple(value)
    return cls(**data)


def _unknown_keys(cls: type, unknown: list[str], source: str, path: tuple[str, ...]) -> str:
    moved = getattr(cls, "moved_keys", {})
    for key in unknown:
        if key in moved:
            table = ".".join((*path, moved[key]))
            return (f"{source}: {key} is now a setting of [{table}]: move it into that table "
                    f"(or override {table}.{key}=...)")
    return f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(field_types(cls))}"


def _table(cls: type, value: Any, source: str) -> Any:
    """One element of a list of tables (e.g. a grow stage): a dict becomes `cls`."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise GptkitError(f"{source} must be a table such as {{at = 0.5, n_layer = 8}}, got {value!r}")
    return from_dict(cls, value, source)


def presets(kind: type | None = None) -> list[str]:
    """Names of the configs shipped inside the package (`--config tiny`); with `kind` (RunConfig or
    FinetuneConfig), only those of that kind: a fine-tuning preset has a [task] section."""
    folder = importlib.resources.files("gptkit") / "configs"
    names = sorted(f.name.removesuffix(".toml") for f in folder.iterdir() if f.name.endswith(".toml"))
    if kind is None:
        return names
    return [n for n in names if ("task" in read_config_file(n)[0]) == ("task" in field_types(kind))]


def read_config_file(path: str | Path) -> tuple[dict, str]:
    """The raw table of a TOML/JSON file or a preset name, and a name for it in messages."""
    path = Path(path)
    if path.is_file():
        text, suffix = _read_text(path), path.suffix
    elif path.suffix == "" and path.name in presets() and len(path.parts) == 1:
        text, suffix = (importlib.resources.files("gptkit") / "configs" / f"{path}.toml").read_text("utf-8"), ".toml"
    else:
        raise GptkitError(f"config not found: {path} is neither a file nor a preset ({', '.join(presets())})")
    try:
        return (json.loads(text) if suffix == ".json" else tomllib.loads(text)), str(path)
    except ValueError as e:
        raise GptkitError(f"{path}: not a valid {suffix.lstrip('.').upper() or 'TOML'} file: {e}") from e


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise GptkitError(f"{path}: not a UTF-8 text file ({e})") from e


def _parse_value(text: str) -> Any:
    """Parse an override value the way TOML would (numbers, booleans, strings, arrays)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] = ()) -> T:
    """Load `cls` from a preset name or a TOML/JSON file (optional) plus `key=value` overrides."""
    data, source = read_config_file(path) if path is not None else ({}, "config")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise GptkitError(f"override {item!r} must look like key=value")
        _set_override(cls, data, key.strip(), _parse_value(value.strip()))
    return from_dict(cls, data, source)


def _paths(cls: type, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], type]:
    """Every section of `cls`, nested ones too, by its path of names; () is `cls` itself."""
    found = {prefix: cls}
    for name, sub in _nested(cls).items():
        found.update(_paths(sub, prefix + (name,)))
    return found


def _set_override(cls: type, data: dict, key: str, value: Any) -> None:
    """Set `key`, `section.key` or `section.sub.key`; a bare key goes to the one section that has it.

    A key the schema does not have is an error here, so it is reported as the override's, not the file's.
    """
    sections = _paths(cls)
    *path, name = key.split(".")
    if not path and name not in field_types(cls):
        owners = [p for p, sub in sections.items() if p and name in field_types(sub) and name not in _nested(sub)]
        if len(owners) != 1:
            raise GptkitError(f"override {key}=...: " + (
                f"{name!r} is in more than one section ({', '.join('.'.join(p) for p in owners)}): write "
                f"section.{name}" if owners else
                f"unknown key {name!r}; settings: {', '.join(_leaf_keys(sections))}"))
        path = list(owners[0])
    section = sections.get(tuple(path))
    if section is None:
        raise GptkitError(f"override {key!r}: no section {'.'.join(path)!r}; sections: "
                          f"{', '.join('.'.join(p) for p in sections if p)}")
    if name not in field_types(section):
        moved = getattr(section, "moved_keys", {})
        hint = f" (it is now {'.'.join(path + [moved[name], name])})" if name in moved else ""
        raise GptkitError(f"override {key}=... [{'.'.join(path)}]: unknown key {name!r}{hint}; its settings: "
                          f"{', '.join(field_types(section))}")
    table = data
    for part in path:
        table = table.setdefault(part, {})
    table[name] = value


def _leaf_keys(sections: dict[tuple[str, ...], type]) -> list[str]:
    return [k for sub in sections.values() for k in field_types(sub) if k not in _nested(sub)]
