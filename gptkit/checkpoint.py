"""A checkpoint is a directory that describes itself:

    config.json          {"schema_version": 1, "model": {...ModelConfig...}, ...extra}
    model.safetensors    the weights (no pickle)
    tokenizer.json       optional: the tokenizer the model was trained with
    train_state.pt       optional: optimizer/sampler/RNG state (written by training)

Saving writes a sibling temp directory and swaps it in with renames, so a crash
never leaves a half-written checkpoint where a good one was.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .atomic import atomic_directory, read_version
from .config import ModelConfig, from_dict, to_dict
from .errors import GptkitError
from .files import writing
from .model import GPT
from .tokenizer import Tokenizer

SCHEMA_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE = "config.json", "model.safetensors", "tokenizer.json"
TRAIN_STATE_FILE = "train_state.pt"


@dataclass
class Checkpoint:
    model: GPT
    tokenizer: Tokenizer | None
    meta: dict  # everything in config.json besides the model config
    path: Path

    def text_tokenizer(self, why: str) -> Tokenizer:
        """The tokenizer, or a one-line error saying `why` text needs one and how to give the checkpoint one."""
        if self.tokenizer is None:
            raise GptkitError(
                f"{self.path} has no tokenizer.json, so {why}; copy in the tokenizer.json its data was prepared "
                f"with (`gptkit prepare` writes one beside the shards), or create the model with "
                f"`gptkit init OUT --tokenizer DATA_DIR`")
        return self.tokenizer


def save_checkpoint(path: str | Path, model: GPT, tokenizer: Tokenizer | None = None,
                    extra: dict | None = None, train_state: dict | None = None) -> Path:
    """Write a checkpoint directory atomically; `train_state` (tensors, numbers) goes to train_state.pt."""
    path = Path(path)
    _check_tokenizer_fits(model.config, tokenizer, str(path))
    with atomic_directory(path, ours=lambda p: (p / CONFIG_FILE).is_file()) as tmp, writing(path):
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        config = {"schema_version": SCHEMA_VERSION, "model": to_dict(model.config), **(extra or {})}
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if tokenizer is not None:
            tokenizer.save(tmp / TOKENIZER_FILE)
            tokenizer.save_settings(tmp)  # special tokens and chat template, when it has them
        if train_state is not None:
            torch.save(train_state, tmp / TRAIN_STATE_FILE)
    return path


def load_train_state(path: str | Path) -> dict:
    """The optimizer/RNG/sampler state saved with a checkpoint (read with weights_only: no code runs)."""
    return read_version(path, _load_train_state)


def _load_train_state(path: Path) -> dict:
    file = _require_dir(path) / TRAIN_STATE_FILE
    if not file.is_file():
        raise GptkitError(f"{path}: no {TRAIN_STATE_FILE}; this checkpoint cannot resume training")
    return load_tensors(file, "resume from a checkpoint that gptkit wrote, or delete this one")


def load_tensors(file: Path, remedy: str):
    """torch.load with weights_only: tensors and plain data load, anything that would run code is refused."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):  # torch's own text would suggest weights_only=False: never
            raise GptkitError(f"{file} holds Python objects that would run code when loaded, and gptkit does not "
                              f"run them; {remedy}") from e
        raise GptkitError(f"{file}: corrupt or truncated ({str(e).splitlines()[0]})") from e
    except Exception as e:  # a truncated file fails in many ways
        raise GptkitError(f"{file}: corrupt or truncated ({(str(e).splitlines() or [repr(e)])[0]})") from e


def read_config(path: str | Path) -> tuple[ModelConfig, dict]:
    """Read and validate config.json of a checkpoint: (model config, the other entries)."""
    return read_version(path, _read_config)


def _read_config(path: Path) -> tuple[ModelConfig, dict]:
    path = _require_dir(path)
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise GptkitError(f"{path}: missing {CONFIG_FILE}; is this a gptkit checkpoint directory?")
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise GptkitError(f"{config_file}: corrupt JSON ({e}); restore it or re-save the checkpoint") from e
    version = data.pop("schema_version", None) if isinstance(data, dict) else None
    if version != SCHEMA_VERSION or not isinstance(data.get("model"), dict):
        raise GptkitError(
            f"{config_file}: not a gptkit checkpoint config (schema_version {version!r}, "
            f"expected {SCHEMA_VERSION}); to load a Hugging Face model use `gptkit import-hf`"
        )
    return from_dict(ModelConfig, data.pop("model"), f"{config_file} [model]"), data


def weight_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from the safetensors header, without reading the weights."""
    return read_version(path, _weight_shapes)


def _weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    weights = _require_dir(path) / WEIGHTS_FILE
    if not weights.is_file():
        raise GptkitError(f"{path}: missing {WEIGHTS_FILE}")
    try:
        with safe_open(str(weights), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError) as e:
        raise GptkitError(f"{weights}: corrupt or truncated weights file ({e})") from e


def inspect_checkpoint(path: str | Path) -> tuple[ModelConfig, dict, int]:
    """(model config, other config.json entries, parameter count), checked against the weights' header.

    Reads no weights: the shapes come from the safetensors header and a model on the meta device.
    """
    return read_version(path, _inspect)


def _inspect(path: Path) -> tuple[ModelConfig, dict, int]:
    config, meta = _read_config(path)
    with torch.device("meta"):
        model = GPT(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    _check_shapes(expected, _weight_shapes(path), str(path / WEIGHTS_FILE))
    return config, meta, model.num_params()


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load model (+ tokenizer if saved), all from one version of the directory; every mismatch is a
    GptkitError that says what."""
    ckpt = read_version(path, _load)
    ckpt.path = Path(path)
    ckpt.model.to(device)
    return ckpt


def _load(path: Path) -> Checkpoint:
    config, meta, _ = _inspect(path)  # validates before anything is allocated
    weights = path / WEIGHTS_FILE
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, RuntimeError) as e:
        raise GptkitError(f"{weights}: corrupt or truncated weights file ({e})") from e
    model = GPT(config)
    model.load_state_dict(state)
    tokenizer = Tokenizer.load(path / TOKENIZER_FILE) if (path / TOKENIZER_FILE).is_file() else None
    _check_tokenizer_fits(config, tokenizer, str(path))
    return Checkpoint(model, tokenizer, meta, path)


def _check_tokenizer_fits(config: ModelConfig, tokenizer, source: str) -> None:
    size = getattr(tokenizer, "vocab_size", 0)
    if size > config.vocab_size:
        raise GptkitError(f"{source}: the tokenizer has {size} tokens but the model's vocab_size "
                          f"is {config.vocab_size}; set vocab_size >= {size}")


def _check_shapes(expected: dict, found: dict, source: str) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k}: {found[k]} vs config {expected[k]}" for k in expected
             if k in found and found[k] != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing tensors {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if unexpected:
        problems.append(f"unexpected tensors {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
    if wrong:
        problems.append(f"shape mismatch {'; '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}")
    if problems:
        raise GptkitError(f"{source} does not match config.json: {'; '.join(problems)}")


def _require_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise GptkitError(f"checkpoint not found: {path}")
    if not path.is_dir():
        raise GptkitError(f"{path} is a file; a checkpoint is a directory with {CONFIG_FILE} and {WEIGHTS_FILE}")
    return path
