"""A run's checkpoints: writing them (with the train state that makes a resume exact), finding the newest,
and putting its weights and state back.

A resumable checkpoint (out_dir/ckpt-NNNNNN) holds the model, the optimizer, the RNG
and the step counters; `best` holds the model alone. A run that trains part of a
model (fine-tuning with LoRA) says through `PartialWeights` what it keeps and what it
writes beside the best checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..atomic import remove_directory
from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import to_dict
from ..errors import GptkitError
from ..model import GPT
from ..runtime import Distributed
from .distributed import barrier, gather_state, load_optimizer_state, plain_model
from .report import Progress

if TYPE_CHECKING:
    from .loop import Run


@dataclass(frozen=True)
class PartialWeights:
    """For a run that trains part of a model (fine-tuning fills it in for LoRA adapters): what the loop saves.

    `trained(model)` is what a resumable checkpoint keeps of the run (under `key` in its train state),
    `restore(model, trained)` puts it back on the run's starting model; `plain(model)` is the whole
    model every checkpoint holds; `beside(model, path)` writes what goes next to the best checkpoint.
    """

    name: str  # for messages, e.g. "LoRA adapters"
    key: str  # its entry in the train state
    trained: Callable[[GPT], dict]
    restore: Callable[[GPT, dict], None]
    plain: Callable[[GPT], GPT]
    beside: Callable[[GPT, Path], None]


def save_run(r: Run, name: str, resumable: bool) -> Path:
    """Write out_dir/name (rank 0; every rank joins the state gathering); a resumable one has the train state.

    Resumable checkpoints beyond the newest keep_last are removed.
    """
    path = r.out_dir / name
    model_state, optim_state = gather_state(r.model, r.optimizer, r.dist)  # collective under FSDP
    if r.dist.is_main:
        state = train_state(r, optim_state) if resumable else None
        extra = {"step": r.progress.step, "run": to_dict(r.config), **r.data.meta}
        if not resumable:
            extra[r.data.objective] = r.progress.best_val * (-1 if r.data.higher_is_better else 1)
        model = plain_model(r.model, model_state)
        partial = r.data.partial
        if partial is not None:  # the checkpoint holds the whole model; what the run trains is kept or beside it
            if state is not None:
                state.update({partial.key: partial.trained(model), "partial": partial.name})
            else:
                partial.beside(model, path)
            model = partial.plain(model)
        save_checkpoint(path, model, r.data.tokenizer, extra=extra, train_state=state)
        if resumable:
            for old in sorted(r.out_dir.glob("ckpt-*"))[: -r.cfg.keep_last]:
                remove_directory(old)
    barrier(r.dist)
    return path


def train_state(r: Run, optim_state: dict) -> dict:
    p = r.progress
    state = {
        "step": p.step, "tokens_seen": p.tokens_seen, "elapsed": p.elapsed, "best_val": p.best_val, "stage": r.stage,
        "stale_evals": r.stale_evals,
        "optimizer": optim_state, "rng_cpu": torch.get_rng_state(),
        "scaler": r.precision.scaler.state_dict() if r.precision.scaler is not None else {},
    }
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_state(state: dict, model: GPT, optimizer, scaler, dist: Distributed) -> Progress:
    """Optimizer, scaler and RNG state from a checkpoint's train state; the step counters."""
    load_optimizer_state(model, optimizer, state["optimizer"], dist)
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    if "rng_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return Progress(state["step"], state["tokens_seen"], state["elapsed"], state["best_val"])


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = sorted(out_dir.glob("ckpt-*"))
    return found[-1] if found else None


def load_weights(path: Path, model: GPT, saved_state: dict, partial: PartialWeights | None) -> None:
    """Put a checkpoint's weights into `model` (before any wrapping); a partial run restores what it trains."""
    kept = saved_state.get("partial")  # the name of what a partial run kept
    if kept is None and partial is not None and partial.key in saved_state:
        kept = partial.name  # written before the train state named it
    if kept != (partial.name if partial else None):
        what = partial.name if partial else kept
        raise GptkitError(f"{path} was saved by a run {'without' if partial else 'with'} {what}; use a new "
                          f"out_dir, or the settings it was trained with")
    if partial is not None:  # the base weights are the run's init, unchanged
        partial.restore(model, saved_state[partial.key])
        return
    ckpt = load_checkpoint(path)
    if ckpt.model.config != model.config:
        raise GptkitError(f"{path} holds a model of another shape ({ckpt.model.config}); "
                          f"use a new out_dir or the same [model] and train.grow settings")
    model.load_state_dict(ckpt.model.state_dict())
