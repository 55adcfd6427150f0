"""Pretraining: a loop made of small functions, so a run can be resumed, grown or fine-tuned.

    run = load_config(RunConfig, "configs/tiny.toml", ["data=runs/pydocs"])
    best = train(run)                # -> out_dir/best, a checkpoint directory

Every `checkpoint_interval` steps (and at the end, and on SIGINT/SIGTERM) the run
writes out_dir/ckpt-NNNNNN with the model, optimizer, RNG and sampler state;
`train` resumes from the newest one, and the resumed loss curve is identical to
an uninterrupted run's. Under torchrun the same call runs DDP (or FSDP2).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import load_checkpoint, load_train_state, save_checkpoint
from .config import ModelConfig, RunConfig, TrainConfig, to_dict
from .data import Batches, TokenShards, read_manifest
from .errors import GptkitError
from .generate import Sampling, generate
from .model import GPT
from .runtime import Distributed, autocast, fast_bf16, init_distributed, parse_dtype, peak_flops
from .tokenizer import Tokenizer

log = logging.getLogger(__name__)
_EVAL_SEED_OFFSET = 10_000  # val batches come from their own stream, the same at every evaluation


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimiser step `step` (0-based): linear warmup, then the schedule."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "wsd":  # stable at lr, then linear decay over the last decay_fraction of steps
        decay_start = cfg.max_steps - int(cfg.decay_fraction * cfg.max_steps)
        if step < decay_start:
            return cfg.lr
        progress = (step - decay_start) / max(1, cfg.max_steps - decay_start)
        return cfg.lr - (cfg.lr - cfg.min_lr) * min(1.0, progress)
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with weight decay on weight matrices only (not biases, norms, or embeddings unless asked).

    optimizer=muon: the blocks' weight matrices get Muon at muon_lr instead. Each group's
    `lr_scale` is its peak lr over cfg.lr, so one schedule drives every group.
    """
    decay, no_decay, hidden = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_embedding = name.split(".")[-2] in ("wte", "wpe")
        if cfg.optimizer == "muon" and p.dim() == 2 and not is_embedding:
            hidden.append(p)
        else:
            (decay if p.dim() >= 2 and (cfg.decay_embeddings or not is_embedding) else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay, "lr_scale": 1.0},
              {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0}]
    if cfg.optimizer == "muon":
        from .muon import MuonAdamW

        groups.append({"params": hidden, "weight_decay": cfg.weight_decay, "lr_scale": cfg.muon_lr / cfg.lr,
                       "muon": True})
        ns_dtype = "bf16" if fast_bf16(device) else "fp32"
        return MuonAdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), ns_dtype=ns_dtype)
    fused = device.type == "cuda"  # fused kernels on GPU; foreach (the default) on CPU
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused)


def wrap_model(model: GPT, cfg: TrainConfig, dist: Distributed, device: torch.device) -> torch.nn.Module:
    """The module the loop calls: compiled and/or wrapped for DDP or FSDP2 as configured."""
    wrapped: torch.nn.Module = model
    if dist.world_size > 1 and cfg.fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        wrapped = fully_shard(model)
    elif dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        try:
            wrapped = torch.compile(wrapped)
        except Exception as e:  # compilation support varies by platform
            log.warning("torch.compile failed (%s); training without it", e)
    return wrapped


@torch.no_grad()
def evaluate(model: torch.nn.Module, val: TokenShards, block_size: int, cfg: TrainConfig,
             device: torch.device, dtype: torch.dtype) -> float:
    """Mean val loss: over `eval_batches` fixed random batches, or every window when that is 0."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with autocast(device, dtype):
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


@dataclass
class _Progress:
    step: int = 0
    tokens_seen: int = 0
    elapsed: float = 0.0  # seconds of training, summed over resumed segments
    best_val: float = float("inf")


def _latest_checkpoint(out_dir: Path) -> Path | None:
    found = sorted(out_dir.glob("ckpt-*"))
    return found[-1] if found else None


def _checkpoint(out_dir: Path, model: GPT, tokenizer: Tokenizer, run: RunConfig, progress: _Progress,
                optimizer, scaler, dist: Distributed) -> Path:
    """Save ckpt-NNNNNN (rank 0 writes; every rank joins the state gathering) and prune old ones."""
    path = out_dir / f"ckpt-{progress.step:06d}"
    model_state, optim_state = _gather_state(model, optimizer, dist)  # collective under FSDP
    if dist.is_main:
        state = {
            "step": progress.step, "tokens_seen": progress.tokens_seen, "elapsed": progress.elapsed,
            "best_val": progress.best_val, "optimizer": optim_state, "rng_cpu": torch.get_rng_state(),
            "scaler": scaler.state_dict() if scaler is not None else {},
        }
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        save_checkpoint(path, _plain_model(model, model_state), tokenizer,
                        extra={"step": progress.step, "run": to_dict(run)}, train_state=state)
        for old in sorted(out_dir.glob("ckpt-*"))[: -run.train.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier(dist)
    return path


def _is_fsdp(model: torch.nn.Module) -> bool:
    return any(type(m).__name__.startswith("FSDP") for m in model.modules())


def _gather_state(model: GPT, optimizer, dist: Distributed) -> tuple[dict, dict]:
    """Full (unsharded) model and optimizer state dicts; every rank must call it under FSDP."""
    if dist.world_size > 1 and _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return model.state_dict(), optimizer.state_dict()


def _plain_model(model: GPT, state: dict) -> GPT:
    """`model` itself, or under FSDP (sharded parameters) a CPU copy holding the gathered state."""
    if not _is_fsdp(model):
        return model
    copy = GPT(model.config)
    copy.load_state_dict(state)
    return copy


def _barrier(dist: Distributed) -> None:
    if dist.world_size > 1:
        torch.distributed.barrier()


def _load_weights(path: Path, model: GPT) -> dict:
    """Put a checkpoint's weights into `model` (before any wrapping); return its training state."""
    ckpt = load_checkpoint(path)
    if ckpt.model.config != model.config:
        raise GptkitError(f"{path} holds a model of another shape ({ckpt.model.config}); "
                          f"use a new out_dir or the same [model] settings")
    model.load_state_dict(ckpt.model.state_dict())
    return load_train_state(path)


def _restore_state(state: dict, model: GPT, optimizer, scaler, dist: Distributed) -> _Progress:
    """Optimizer, scaler and RNG state from a checkpoint's train_state; the step counters."""
    if dist.world_size > 1 and _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    if "rng_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return _Progress(state["step"], state["tokens_seen"], state["elapsed"], state["best_val"])


class _StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps (then saves and exits)."""

    def __init__(self):
        self.received: str | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(run: RunConfig, on_step: Callable[[dict], None] | None = None) -> Path:
    """Train (or resume) the run; returns the path of the best checkpoint (lowest val loss)."""
    from .report import MetricsLog, write_report

    cfg = run.train
    dist, device = init_distributed(cfg.device)
    dtype = parse_dtype(cfg.dtype, device)
    if dtype == torch.float16 and device.type != "cuda":
        raise GptkitError("dtype fp16 needs a CUDA GPU (it uses a gradient scaler); on CPU use bf16 or fp32")
    if not cfg.data:
        raise GptkitError("no training data: set train.data to a directory made by `gptkit prepare`")
    out_dir = Path(cfg.out_dir)
    train_shards, val_shards = TokenShards(cfg.data, "train"), TokenShards(cfg.data, "val")
    tokenizer = Tokenizer.load(Path(cfg.data) / "tokenizer.json")
    model_cfg = _fit_vocab(run.model, tokenizer)
    if model_cfg != run.model:
        run = RunConfig(model=model_cfg, train=cfg)
    block = model_cfg.block_size
    batches = Batches(train_shards, cfg.batch_size, block, seed=cfg.seed, device=device)
    Batches(val_shards, 1, block)  # fail now, not at the first evaluation, if val is too short

    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg)
    resume_from = _latest_checkpoint(out_dir)
    saved_state = _load_weights(resume_from, model) if resume_from is not None else None
    model.to(device)
    wrapped = wrap_model(model, cfg, dist, device)
    optimizer = build_optimizer(model, cfg, device)  # after wrapping: FSDP replaces the parameters
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    progress = _Progress()
    if saved_state is not None:
        progress = _restore_state(saved_state, model, optimizer, scaler, dist)
        log.info("resuming from %s (step %d)", resume_from, progress.step)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "run.json").write_text(json.dumps(to_dict(run), indent=2) + "\n")
    metrics = MetricsLog(out_dir / "metrics.jsonl", truncate_after=progress.step, enabled=dist.is_main)
    tokens_per_step = cfg.batch_size * block * cfg.grad_accum * dist.world_size
    flops_per_step = model.flops_per_token(block) * tokens_per_step
    peak = (cfg.peak_flops or peak_flops(device, dtype)) * dist.world_size
    bytes_per_token = _bytes_per_token(cfg.data)

    def run_eval() -> dict:
        val = evaluate(wrapped, val_shards, block, cfg, device, dtype)
        record = {"step": progress.step, "val_loss": val, "val_ppl": math.exp(min(val, 50)),
                  "val_bpb": val / math.log(2) / bytes_per_token, "elapsed": progress.elapsed}
        if cfg.sample_tokens and dist.is_main and not cfg.fsdp:
            ids = generate(model.eval(), [tokenizer.eot_id], cfg.sample_tokens, Sampling(0.8, top_k=200), seed=0)
            model.train()
            record["sample"] = tokenizer.decode(ids)
        return record

    wrapped.train()
    interval_start, interval_tokens = time.perf_counter(), 0
    stopped_by = None
    with _StopSignal() as stop:
        while progress.step < cfg.max_steps:
            step_start = time.perf_counter()
            lr = lr_at(progress.step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            loss = train_step(wrapped, optimizer, scaler, batches, progress.step, dist, cfg, device, dtype)
            if not math.isfinite(loss):
                last = _latest_checkpoint(out_dir)
                raise GptkitError(
                    f"loss became {loss} at step {progress.step + 1}; the last good checkpoint is "
                    f"{last or 'none'}: lower lr (now {lr:.2e}), raise warmup_steps or set grad_clip"
                )
            progress.step += 1
            progress.tokens_seen += tokens_per_step
            progress.elapsed += time.perf_counter() - step_start
            interval_tokens += tokens_per_step
            record = {"step": progress.step, "loss": loss, "lr": lr}
            if progress.step % cfg.log_interval == 0 or progress.step == cfg.max_steps:
                seconds = time.perf_counter() - interval_start
                record.update(tokens_per_s=interval_tokens / seconds,
                              mfu=flops_per_step * (interval_tokens / tokens_per_step) / seconds / peak,
                              elapsed=progress.elapsed)
                metrics.write(record)
                interval_start, interval_tokens = time.perf_counter(), 0
            out_of_time = bool(cfg.max_minutes) and progress.elapsed >= cfg.max_minutes * 60
            out_of_time, signalled = _agree(dist, device, out_of_time, stop.received is not None)
            last_step = progress.step == cfg.max_steps or out_of_time or signalled
            if progress.step % cfg.eval_interval == 0 or last_step:
                evaluation = run_eval()
                metrics.write(evaluation)
                record.update(evaluation)
                if evaluation["val_loss"] < progress.best_val:
                    progress.best_val = evaluation["val_loss"]
                    model_state, _ = _gather_state(model, optimizer, dist)  # collective under FSDP
                    if dist.is_main:
                        save_checkpoint(out_dir / "best", _plain_model(model, model_state), tokenizer,
                                        extra={"step": progress.step, "val_loss": progress.best_val})
            if progress.step % cfg.checkpoint_interval == 0 or last_step:
                _checkpoint(out_dir, model, tokenizer, run, progress, optimizer, scaler, dist)
            if on_step is not None and dist.is_main:
                on_step(record)
            if signalled or out_of_time:
                stopped_by = stop.received or ("a signal to another rank" if signalled else
                                               f"max_minutes={cfg.max_minutes}")
                break
    if dist.is_main:
        precision = f"{str(dtype).removeprefix('torch.')} (dtype={cfg.dtype}) on {device}"
        write_report(out_dir, run, model, progress, stopped_by, precision)
    if stopped_by:
        log.info("stopped by %s at step %d; run the same command again to resume", stopped_by, progress.step)
    return out_dir / "best"


def _agree(dist: Distributed, device: torch.device, *flags: bool) -> tuple[bool, ...]:
    """Each flag true on any rank becomes true on all, so every rank stops at the same step."""
    if dist.world_size == 1:
        return flags
    t = torch.tensor([float(f) for f in flags], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def train_step(model, optimizer, scaler, batches: Batches, step: int, dist: Distributed, cfg: TrainConfig,
                device: torch.device, dtype: torch.dtype) -> float:
    """One optimiser step over grad_accum micro-batches; returns the mean loss over all ranks."""
    total = torch.zeros((), device=device)
    try:
        for micro in range(cfg.grad_accum):
            x, y = batches.batch(step, dist.rank * cfg.grad_accum + micro)
            last = micro == cfg.grad_accum - 1
            no_sync = model.no_sync() if dist.world_size > 1 and not last and hasattr(model, "no_sync") \
                else contextlib.nullcontext()
            with no_sync:
                with autocast(device, dtype):
                    loss = model(x, y)
                scaled = loss / cfg.grad_accum
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            total += loss.detach().float()
    except torch.OutOfMemoryError as e:
        raise GptkitError(
            f"out of memory at batch_size={cfg.batch_size}: lower batch_size (raise grad_accum to keep the "
            f"tokens per step), lower block_size, or use dtype=bf16"
        ) from e
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
    if dist.world_size > 1:
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    return total.item() / (cfg.grad_accum * dist.world_size)


def _fit_vocab(config: ModelConfig, tokenizer: Tokenizer) -> ModelConfig:
    """A model config whose vocabulary matches the data's tokenizer (a preset's vocab_size is a default)."""
    if tokenizer.vocab_size == config.vocab_size:
        return config
    log.info("vocab_size %d -> %d to match the data's tokenizer", config.vocab_size, tokenizer.vocab_size)
    return ModelConfig(**{**to_dict(config), "vocab_size": tokenizer.vocab_size})


def _bytes_per_token(data: str) -> float:
    manifest = read_manifest(data)
    tokens = sum(s["tokens"] for s in manifest["splits"].values())
    return manifest["read"]["bytes"] / max(tokens, 1)
