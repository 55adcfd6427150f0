"""Configs are frozen dataclasses, validated on construction, loaded by one function.

`load_config(ModelConfig, "configs/tiny.toml", ["n_layer=4"])` reads a TOML file,
applies `key=value` overrides and validates; unknown keys are errors that name
the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field, fields
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
    dropout: float = 0.0  # on embeddings and residual branches (and attention weights, by default)
    # On attention weights; None = `dropout`. On CPU it is costly (a mask per
    # attention weight, and no fused attention kernel), so 0 trains faster.
    attn_dropout: float | None = None
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
        for name in ("dropout", "attn_dropout"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise GptkitError(f"model config: {name} must be in [0, 1), got {value!r}")
        if not isinstance(self.bias, bool):
            raise GptkitError(f"model config: bias must be true or false, got {self.bias!r}")
        if not self.layer_norm_eps > 0:
            raise GptkitError(f"model config: layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def attention_dropout(self) -> float:
        return self.dropout if self.attn_dropout is None else self.attn_dropout


@dataclass(frozen=True)
class TrainConfig:
    """How to train: data, batch, optimiser, schedule, precision, evaluation, checkpoints."""

    data: str = ""  # shard directory written by `gptkit prepare`
    out_dir: str = "runs/train"  # checkpoints, metrics, plot and report go here
    batch_size: int = 8  # sequences per micro-batch, per process
    grad_accum: int = 1  # micro-batches per optimiser step, per process
    max_steps: int = 1000
    max_minutes: float = 0.0  # stop (and save) after this much wall-clock time; 0 = no limit
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine, wsd (warmup-stable-decay) or constant
    decay_fraction: float = 0.2  # wsd: share of steps spent decaying to min_lr
    optimizer: str = "adamw"  # adamw, or muon (Muon for hidden weight matrices, AdamW for the rest)
    muon_lr: float = 0.02  # optimizer=muon: peak lr of the hidden matrices (same schedule shape as lr)
    weight_decay: float = 0.1  # on weight matrices only
    decay_embeddings: bool = False  # also decay the token/position embeddings
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global gradient norm; 0 = off
    dtype: str = "auto"  # bf16 or fp16 autocast, fp32, or auto (bf16 where the hardware is fast at it)
    device: str = "auto"
    compile: bool = False  # torch.compile the model (falls back to eager if it fails)
    fsdp: bool = False  # under torchrun: shard parameters with FSDP2 instead of DDP
    seed: int = 1337
    eval_interval: int = 250  # steps between evaluations (and at the end)
    eval_batches: int = 20  # val batches per evaluation; 0 = every window of the val split
    sample_tokens: int = 0  # tokens to sample at each evaluation; 0 = none
    checkpoint_interval: int = 500  # steps between checkpoints (also at the end and on SIGINT/SIGTERM)
    keep_last: int = 2  # step checkpoints kept besides `best`
    log_interval: int = 10  # steps between metric lines
    peak_flops: float = 0.0  # for MFU; 0 = a guess for the device and dtype

    def __post_init__(self):
        positive = ("batch_size", "grad_accum", "max_steps", "eval_interval", "checkpoint_interval",
                    "keep_last", "log_interval")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GptkitError(f"train config: {name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "eval_batches", "sample_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise GptkitError(f"train config: {name} must be an integer >= 0, got {getattr(self, name)!r}")
        if not self.lr > 0 or not 0 <= self.min_lr <= self.lr:
            raise GptkitError(f"train config: need lr > 0 and 0 <= min_lr <= lr, got {self.lr}, {self.min_lr}")
        if self.schedule not in ("cosine", "wsd", "constant"):
            raise GptkitError(f"train config: schedule must be cosine, wsd or constant, got {self.schedule!r}")
        if not 0 < self.decay_fraction <= 1:
            raise GptkitError(f"train config: decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if self.dtype not in ("auto", "fp32", "bf16", "fp16"):
            raise GptkitError(f"train config: dtype must be auto, fp32, bf16 or fp16, got {self.dtype!r}")
        if self.optimizer not in ("adamw", "muon"):
            raise GptkitError(f"train config: optimizer must be adamw or muon, got {self.optimizer!r}")
        if not self.muon_lr > 0:
            raise GptkitError(f"train config: muon_lr must be > 0, got {self.muon_lr}")
        if self.optimizer == "muon" and self.fsdp:
            raise GptkitError("train config: optimizer=muon needs whole weight matrices; use DDP (fsdp=false)")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.max_minutes < 0:
            raise GptkitError("train config: weight_decay, grad_clip and max_minutes must be >= 0")


@dataclass(frozen=True)
class RunConfig:
    """A training run: a [model] and a [train] table in one TOML file."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


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
    data = dict(data)
    for name, sub in _NESTED.get(cls, {}).items():  # nested tables become nested dataclasses
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise GptkitError(f"{source}: [{name}] must be a table of settings")
        data[name] = from_dict(sub, value, f"{source} [{name}]")
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
        _set_override(cls, data, key.strip(), _parse_value(value.strip()))
    return from_dict(cls, data, source)


def _set_override(cls: type, data: dict, key: str, value: Any) -> None:
    """Set `key` (or `section.key`); a bare key goes to the one nested section that has it."""
    nested = _NESTED.get(cls, {})
    section, dot, name = key.partition(".")
    if not dot and key not in {f.name for f in fields(cls)}:
        owners = [s for s, sub in nested.items() if key in {f.name for f in fields(sub)}]
        if len(owners) == 1:
            section, name, dot = owners[0], key, "."
    if dot:
        if section not in nested:
            raise GptkitError(f"override {key!r}: no section {section!r}; sections: {', '.join(nested)}")
        data.setdefault(section, {})[name] = value
    else:
        data[key] = value


# Which fields of a config class are themselves config classes (for files and overrides).
_NESTED: dict[type, dict[str, type]] = {RunConfig: {"model": ModelConfig, "train": TrainConfig}}
