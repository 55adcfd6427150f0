"""What one optimiser step and one evaluation compute, on whatever module the loop hands them.

`train_step` is the loop's step (the benchmarks time it against a transformers
loop): `accumulate_gradients`, which a signal may abandon, then `apply_update`,
which it may not. `evaluate` is the val loss the loop reports and keeps the best
checkpoint by.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import TrainConfig
from ..data import Batches, ExampleBatches, TokenShards
from ..errors import GptkitError
from ..runtime import Distributed, autocast
from .distributed import sum_over_ranks

_EVAL_SEED_OFFSET = 10_000  # val batches come from their own stream, the same at every evaluation


@dataclass(frozen=True)
class Precision:
    """Where a step computes and how: autocast to `dtype` on `device`; fp16 also needs a gradient scaler."""

    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def on(cls, device: torch.device, dtype: torch.dtype) -> Precision:
        if dtype == torch.float16 and device.type != "cuda":
            raise GptkitError("dtype fp16 needs a CUDA GPU (it uses a gradient scaler); on CPU use bf16 or fp32")
        return cls(device, dtype, torch.amp.GradScaler("cuda") if dtype == torch.float16 else None)

    def autocast(self):
        return autocast(self.device, self.dtype)


@torch.no_grad()
def evaluate(model: torch.nn.Module, val: TokenShards, block_size: int, cfg: TrainConfig,
             precision: Precision = Precision()) -> float:
    """Mean val loss: over `eval_batches` fixed random batches, or every window when that is 0."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = precision.device
    with precision.autocast():
        if cfg.eval_batches == 0:  # every window, batch_size at a time; a window's loss is a mean, so weight it
            windows = val.windows(block_size)
            while chunk := list(itertools.islice(windows, cfg.batch_size)):
                x, y = (torch.stack(t).to(device) for t in zip(*chunk))
                total += model(x, y).item() * len(chunk)
                count += len(chunk)
        else:
            batches = Batches(val, cfg.batch_size, block_size, seed=cfg.seed + _EVAL_SEED_OFFSET, device=device)
            for i in range(cfg.eval_batches):
                x, y = batches.batch(i, 0)
                total += model(x, y).item()
                count += 1
    model.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def evaluate_examples(model: torch.nn.Module, val: ExampleBatches, precision: Precision = Precision(),
                      per_row: bool = False) -> float:
    """Mean loss per target token over every val example (one pass, in a fixed order); per row (span loss)
    with per_row."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with precision.autocast():
        for x, y, segments in val.epoch(0):  # on the device val's batches were made for
            targets = len(y) if per_row else int((y != -1).sum())
            total += model(x, y, segments=segments).item() * targets
            count += targets
    model.train(was_training)
    return total / max(count, 1)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Batches | ExampleBatches, step: int,
               cfg: TrainConfig, precision: Precision = Precision(), dist: Distributed = Distributed()) -> float:
    """One optimiser step over grad_accum micro-batches; returns the mean loss over all ranks."""
    total = accumulate_gradients(model, batches, step, cfg, precision, dist)
    return apply_update(model, optimizer, total, cfg, precision, dist)


def accumulate_gradients(model: torch.nn.Module, batches: Batches | ExampleBatches, step: int, cfg: TrainConfig,
                         precision: Precision = Precision(), dist: Distributed = Distributed(),
                         loss_fn: Callable[[torch.nn.Module, tuple], torch.Tensor] | None = None) -> torch.Tensor:
    """Forward and backward over the step's grad_accum micro-batches; the summed loss, on the device.

    Nothing but the gradients changes here, so the work can be thrown away (zero the gradients).
    """
    scaler = precision.scaler
    total = torch.zeros((), device=precision.device)
    try:
        for micro in range(cfg.grad_accum):
            batch = batches.batch(step, dist.rank * cfg.grad_accum + micro)
            last = micro == cfg.grad_accum - 1
            no_sync = model.no_sync() if dist.world_size > 1 and not last and hasattr(model, "no_sync") \
                else contextlib.nullcontext()
            with no_sync:
                with precision.autocast():
                    loss = loss_fn(model, batch) if loss_fn is not None else _loss(model, *batch)
                scaled = loss / cfg.grad_accum
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            total += loss.detach().float()
    except torch.OutOfMemoryError as e:
        raise GptkitError(
            f"out of memory at batch_size={cfg.batch_size}: lower batch_size (raise grad_accum to keep the "
            f"tokens per step), lower block_size, or use dtype=bf16"
        ) from e
    return total


def _loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, segments: torch.Tensor | None = None):
    return model(x, y, segments=segments)  # packed examples come with segments


def apply_update(model: torch.nn.Module, optimizer: torch.optim.Optimizer, total: torch.Tensor, cfg: TrainConfig,
                 precision: Precision = Precision(), dist: Distributed = Distributed()) -> float:
    """Clip and apply the accumulated gradients; the step's mean loss over all ranks."""
    scaler = precision.scaler
    if scaler is not None:
        scaler.unscale_(optimizer)
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sum_over_ranks(total, dist)
    return total.item() / (cfg.grad_accum * dist.world_size)
