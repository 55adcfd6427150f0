"""Configs are frozen dataclasses, validated on construction, loaded by one function.

`load_config(ModelConfig, "configs/tiny.toml", ["n_layer=4"])` reads a TOML file,
applies `key=value` overrides and validates; unknown keys are errors that name
the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from .errors import GptkitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a GPT-2-style decoder-only Transformer."""

    vocab_size: int = 50257  # token ids are in [0, vocab_size)
    block_size: int = 1024  # context window (number of learned positions)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0  # on embeddings, attention weights and residual branches
    bias: bool = True  # biases in Linear and LayerNorm, as in GPT-2
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GptkitError(f"model config: {name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise GptkitError(
                f"model config: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise GptkitError(f"model config: dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise GptkitError(f"model config: bias must be true or false, got {self.bias!r}")
        if not self.layer_norm_eps > 0:
            raise GptkitError(f"model config: layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict, source: str = "config") -> T:
    """Build `cls` from a dict; unknown keys and wrong types are GptkitErrors."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise GptkitError(
            f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(known)}"
        )
    try:
        return cls(**data)
    except TypeError as e:  # e.g. a nested value of the wrong kind
        raise GptkitError(f"{source}: {e}") from e


def _parse_value(text: str) -> Any:
    """Parse an override value the way TOML would (numbers, booleans, strings)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] = ()) -> T:
    """Load `cls` from a TOML or JSON file (optional) plus `key=value` overrides."""
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise GptkitError(f"config file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise GptkitError(f"{path}: not a valid {path.suffix.lstrip('.') or 'TOML'} file: {e}") from e
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise GptkitError(f"override {item!r} must look like key=value")
        data[key.strip()] = _parse_value(value.strip())
    return from_dict(cls, data, source)
