"""Pretraining: a loop made of small named steps, so a run can be resumed, grown or fine-tuned.

    run = load_config(RunConfig, "tiny", ["data=runs/pydocs"])
    best = train(run)                # -> out_dir/best, a checkpoint directory

Every `checkpoint_interval` steps (and at the end, and on SIGINT/SIGTERM) the run
writes out_dir/ckpt-NNNNNN with the model, optimizer, RNG and step counters;
`train` resumes from the newest one, and the resumed loss curve is identical to
an uninterrupted run's. Under torchrun the same call runs DDP (or FSDP2).

With a growth schedule (train.grow) the model starts at [model]'s shape and, after
each stage's step, is grown (gptkit.grow) into the next shape: the optimizer is
rebuilt with the carried state, and the compile/DDP/FSDP wrappers are rebuilt
around the new model. Checkpoints record the stage, so a resumed run rebuilds the
shape it was saved in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoint import load_train_state
from ..config import ModelConfig, RunConfig, TrainConfig, to_dict
from ..data import Batches, ExampleBatches, TokenShards, read_manifest
from ..errors import GptkitError
from ..files import atomic_write_text
from ..generate import Decoding, generate_text
from ..grow import carry_optimizer_state, grow_to
from ..lock import DirectoryLock, check_out_dir
from ..model import GPT
from ..runtime import Distributed, init_distributed, parse_dtype, peak_flops
from ..tokenizer import Tokenizer
from .distributed import (
    agree,
    gather_state,
    load_optimizer_state_by_name,
    optimizer_state_by_name,
    plain_model,
    wrap_model,
)
from .optim import build_optimizer, lr_at
from .report import MetricsLog, Progress, Throughput, write_report
from .resume import PartialWeights, latest_checkpoint, load_weights, restore_state, save_run
from .signals import Abandoned, StopSignal
from .step import Precision, accumulate_gradients, apply_update, evaluate

log = logging.getLogger(__name__)
_MAX_PPL_LOSS = 50.0  # perplexity is reported as exp(min(loss, this)): a diverged run must not overflow it


@dataclass
class TrainData:
    """What the loop trains on and judges by: pretraining's token shards, or fine-tuning's examples.

    `evaluate(model, plain_model, precision)` returns the evaluation's record (val_loss, and any scores);
    its `objective` entry picks the best checkpoint (lower is better, unless higher_is_better).
    `meta` goes into every checkpoint's config.json (e.g. the fine-tuning task).
    `loss(model, batch)`, when set, is the training loss of a batch (default: `model(x, y, segments=...)`).
    `partial`, when set, says how a run that trains part of the model saves and resumes it.
    `entry`, when set, is the module the loop calls instead of the language model (`model.heads.SpanReader`,
    `Encoder`): wrapped for DDP/FSDP/compile like the model, it gives the objective's output.
    """

    batches: Batches | ExampleBatches
    evaluate: Callable[[torch.nn.Module, GPT, Precision], dict]
    tokenizer: Tokenizer
    objective: str = "val_loss"
    higher_is_better: bool = False
    patience: int = 0  # evaluations without a better objective before the run stops; 0 = never
    meta: dict = field(default_factory=dict)
    loss: Callable[[torch.nn.Module, tuple], torch.Tensor] | None = None
    partial: PartialWeights | None = None
    entry: Callable[[GPT], torch.nn.Module] | None = None

    @classmethod
    def judged(cls, batches: Batches | ExampleBatches, evaluate: Callable, tokenizer: Tokenizer, select: str,
               patience: int, has_val: bool, meta: dict, loss: Callable | None = None,
               entry: Callable | None = None) -> TrainData:
        """Data whose best checkpoint is picked by `select`: "loss" (the val loss) or a score (higher is
        better, evaluated as val_<select>); without val data, the newest checkpoint is the best."""
        if not has_val:
            return cls(batches, evaluate, tokenizer, objective="step", higher_is_better=True, meta=meta, loss=loss,
                       entry=entry)
        return cls(batches, evaluate, tokenizer, objective="val_loss" if select == "loss" else f"val_{select}",
                   higher_is_better=select != "loss", patience=patience, meta=meta, loss=loss, entry=entry)


@dataclass
class Run:
    """What one training run holds while it trains, so the loop reads as a few named steps."""

    config: RunConfig
    model: GPT  # the plain model: its weights are what checkpoints and samples use
    wrapped: torch.nn.Module  # what the loop calls: the model compiled and/or wrapped for DDP/FSDP
    optimizer: torch.optim.Optimizer
    data: TrainData
    dist: Distributed
    precision: Precision  # device, autocast dtype, fp16's gradient scaler
    progress: Progress
    metrics: MetricsLog
    throughput: Throughput
    stage: int = 0  # how many grow stages the model has been through
    stale_evals: int = 0  # evaluations since the objective last improved

    @property
    def cfg(self) -> TrainConfig:
        return self.config.train

    @property
    def out_dir(self) -> Path:
        return Path(self.cfg.out_dir)

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.batch_size * self.config.model.block_size * self.cfg.grad_accum * self.dist.world_size


def train(run: RunConfig, on_step: Callable[[dict], None] | None = None) -> Path:
    """Train (or resume) the run; returns the path of the best checkpoint (lowest val loss).

    `on_step(record)` sees each step's metrics (loss, lr, and at intervals speed and val loss), on rank 0.
    """
    return run_training(run, _pretraining_data, lambda config: GPT(config), on_step)


OpenData = Callable[[RunConfig, torch.device, Distributed], tuple[RunConfig, TrainData]]


def run_training(run: RunConfig, open_data: OpenData, build_model: Callable[[ModelConfig], GPT],
                 on_step: Callable[[dict], None] | None = None) -> Path:
    """The loop behind `train` and `finetune`: `open_data` gives the data (and the run's final config),
    `build_model(shape)` the model a fresh run starts from (LoRA adapters included)."""
    with contextlib.ExitStack() as held:
        r = _start(run, held, open_data, build_model)
        return _loop(r, on_step)


def _pretraining_data(run: RunConfig, device: torch.device, dist: Distributed) -> tuple[RunConfig, TrainData]:
    cfg = run.train
    if not cfg.data:
        raise GptkitError("no training data: set train.data to a directory made by `gptkit prepare`")
    train_shards, val_shards = TokenShards(cfg.data, "train"), TokenShards(cfg.data, "val")
    tokenizer = Tokenizer.load(Path(cfg.data) / "tokenizer.json")
    run = RunConfig(model=_fit_vocab(run.model, tokenizer), train=cfg)
    block = run.model.block_size
    batches = Batches(train_shards, cfg.batch_size, block, seed=cfg.seed, device=device)
    Batches(val_shards, 1, block)  # fail now, not at the first evaluation, if val is too short
    bytes_per_token = _bytes_per_token(cfg.data)

    def evaluate_shards(model: torch.nn.Module, plain: GPT, precision: Precision) -> dict:
        val = evaluate(model, val_shards, block, cfg, precision)
        return {"val_loss": val, "val_ppl": math.exp(min(val, _MAX_PPL_LOSS)),
                "val_bpb": val / math.log(2) / bytes_per_token}

    return run, TrainData(batches, evaluate_shards, tokenizer)


def _loop(r: Run, on_step: Callable[[dict], None] | None) -> Path:
    """Step until max_steps, a signal or max_minutes; evaluate and checkpoint on schedule; then the report."""
    stopped_by = None
    with StopSignal() as stop:
        while r.progress.step < r.cfg.max_steps and stopped_by is None:
            record = _optimizer_step(r, stop)
            if record is None:  # a signal abandoned the step: the model is as the previous step left it
                stopped_by = stop.received
                save_run(r, f"ckpt-{r.progress.step:06d}", resumable=True)
                break
            if _growth_due(r):
                record["grown"] = _grow(r)
            stopped_by = _stop_reason(r, stop)
            last = stopped_by is not None or r.progress.step == r.cfg.max_steps
            if last or r.progress.step % r.cfg.eval_interval == 0:
                record.update(_evaluate_and_keep_best(r))
            if last or r.progress.step % r.cfg.checkpoint_interval == 0:
                save_run(r, f"ckpt-{r.progress.step:06d}", resumable=True)
            if on_step is not None and r.dist.is_main:
                on_step(record)
    if r.dist.is_main:
        dtype = str(r.precision.dtype).removeprefix("torch.")
        write_report(r.out_dir, r.config, r.model.num_params(), r.progress, stopped_by,
                     f"{dtype} (dtype={r.cfg.dtype}) on {r.precision.device}")
    if stopped_by:
        log.info("stopped by %s at step %d; run the same command again to resume", stopped_by, r.progress.step)
    stop.pass_on()  # everything is saved: now the signal does what it would have done
    return r.out_dir / "best"


def _start(run: RunConfig, held: contextlib.ExitStack, open_data: OpenData,
           build_model: Callable[[ModelConfig], GPT]) -> Run:
    """Check the config, open the data, lock out_dir (into `held`), build (or resume) the model and optimizer."""
    cfg = run.train
    check_out_dir(Path(cfg.out_dir))
    dist, device = init_distributed(cfg.device)
    precision = Precision.on(device, parse_dtype(cfg.dtype, device))
    run, data = open_data(run, device, dist)
    block = run.model.block_size

    if dist.is_main:  # one training run per out_dir; other ranks follow rank 0
        held.enter_context(DirectoryLock(cfg.out_dir, "training run"))
    resume_from = latest_checkpoint(Path(cfg.out_dir))
    saved_state = load_train_state(resume_from) if resume_from is not None else None
    stage = saved_state.get("stage", 0) if saved_state is not None else 0
    torch.manual_seed(cfg.seed)
    model = build_model(_shape(run, stage))
    if resume_from is not None:
        load_weights(resume_from, model, saved_state, data.partial)
    model.to(device)
    wrapped = wrap_model(model, cfg, dist, device, data.entry)
    optimizer = build_optimizer(model, cfg, device)  # after wrapping: FSDP replaces the parameters
    progress, stale_evals = Progress(), 0
    if saved_state is not None:
        progress = restore_state(saved_state, model, optimizer, precision.scaler, dist)
        stale_evals = saved_state.get("stale_evals", 0)
        log.info("resuming from %s (step %d)", resume_from, progress.step)
    if dist.is_main:
        Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(cfg.out_dir) / "run.json", json.dumps(to_dict(run), indent=2) + "\n")
    metrics = MetricsLog(Path(cfg.out_dir) / "metrics.jsonl", truncate_after=progress.step, enabled=dist.is_main)
    peak = (cfg.peak_flops or peak_flops(device, precision.dtype)) * dist.world_size
    throughput = Throughput(model.flops_per_token(block), peak)
    wrapped.train()
    r = Run(run, model, wrapped, optimizer, data, dist, precision, progress, metrics, throughput, stage, stale_evals)
    while _growth_due(r):  # a checkpoint from before a stage the schedule has since moved earlier
        _grow(r)
    return r


def _shape(run: RunConfig, stage: int) -> ModelConfig:
    shapes = run.shapes()
    if stage >= len(shapes):
        raise GptkitError(f"the checkpoint was saved in grow stage {stage}, but train.grow has only "
                          f"{len(shapes) - 1} stage(s); use a new out_dir or the same schedule")
    return shapes[stage]


def _growth_due(r: Run) -> bool:
    stages = r.cfg.grow
    return r.stage < len(stages) and r.progress.step >= stages[r.stage].step(r.cfg.max_steps)


def _grow(r: Run) -> dict:
    """Grow the model into the next stage's shape (after this step), with a new optimizer and wrappers.

    The optimizer state of copied parameters is carried (or, with grow_optimizer=reset, dropped).
    Fresh blocks are seeded by the run's seed and the stage, so a resumed run grows identically.
    """
    cfg, dist, device = r.cfg, r.dist, r.precision.device
    start = time.perf_counter()
    model_state, optim_state = gather_state(r.model, r.optimizer, dist, every_rank=True)  # collective under FSDP
    old = plain_model(r.model, model_state)
    named_state = optimizer_state_by_name(r.model, r.optimizer, optim_state)
    r.stage += 1
    growth = grow_to(old, _shape(r.config, r.stage), cfg.grow_method, cfg.grow_order, seed=cfg.seed + r.stage)
    r.model = growth.model.to(device)
    r.wrapped = wrap_model(r.model, cfg, dist, device, r.data.entry)
    r.optimizer = build_optimizer(r.model, cfg, device)
    if cfg.grow_optimizer == "carry":
        load_optimizer_state_by_name(r.model, r.optimizer, carry_optimizer_state(named_state, growth.sources), dist)
    r.wrapped.train()
    r.throughput.flops_per_token = r.model.flops_per_token(r.config.model.block_size)
    r.progress.elapsed += time.perf_counter() - start  # growing is part of training time
    c = r.model.config
    event = {"step": r.progress.step, "grow_stage": r.stage, "n_layer": c.n_layer, "n_embd": c.n_embd,
             "n_head": c.n_head, "params": r.model.num_params(), "elapsed": r.progress.elapsed}
    r.metrics.write(event)
    log.debug("step %d: grew to %d layers x %d (%s parameters)", r.progress.step, c.n_layer, c.n_embd,
             f"{event['params']:,}")
    return event


def _optimizer_step(r: Run, stop: StopSignal) -> dict | None:
    """One step at the scheduled learning rate; advances the counters and logs at log_interval.

    A signal during forward/backward (one CPU process: elsewhere steps are short, or ranks must agree)
    abandons the step and returns None, so a long step does not delay a stop.
    """
    step_start = time.perf_counter()
    lr = lr_at(r.progress.step, r.cfg)
    for group in r.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    rng = torch.get_rng_state()
    try:
        with stop.abandonable(r.precision.device.type == "cpu" and r.dist.world_size == 1):
            total = accumulate_gradients(r.wrapped, r.data.batches, r.progress.step, r.cfg, r.precision, r.dist,
                                         r.data.loss)
    except Abandoned:
        r.optimizer.zero_grad(set_to_none=True)
        torch.set_rng_state(rng)  # as if the step never began: a resumed run takes it again, identically
        return None
    loss = apply_update(r.wrapped, r.optimizer, total, r.cfg, r.precision, r.dist)
    if not math.isfinite(loss):
        raise GptkitError(
            f"loss became {loss} at step {r.progress.step + 1}; the last good checkpoint is "
            f"{latest_checkpoint(r.out_dir) or 'none'}: lower lr (now {lr:.2e}), raise warmup_steps or set grad_clip"
        )
    r.progress.step += 1
    r.progress.tokens_seen += r.tokens_per_step
    step_seconds = time.perf_counter() - step_start
    r.progress.elapsed += step_seconds
    r.throughput.add(r.tokens_per_step, step_seconds)
    record = {"step": r.progress.step, "loss": loss, "lr": lr}
    if r.progress.step % r.cfg.log_interval == 0 or r.progress.step == r.cfg.max_steps:
        record.update(r.throughput.read(), elapsed=r.progress.elapsed)
        r.metrics.write(record)
    return record


def _stop_reason(r: Run, stop: StopSignal) -> str | None:
    """Why the run stops early after this step (a signal, max_minutes), agreed by every rank; or None."""
    out_of_time = bool(r.cfg.max_minutes) and r.progress.elapsed >= r.cfg.max_minutes * 60
    out_of_time, signalled = agree(r.dist, r.precision.device, out_of_time, stop.received is not None)
    if signalled:
        return stop.received or "a signal to another rank"
    if r.data.patience and r.stale_evals >= r.data.patience:
        return f"early stopping ({r.data.objective} not better for {r.stale_evals} evaluations)"
    return f"max_minutes={r.cfg.max_minutes}" if out_of_time else None


def _evaluate_and_keep_best(r: Run) -> dict:
    """Val loss and scores (and a sample); a new best objective is saved as out_dir/best."""
    record = {"step": r.progress.step, **r.data.evaluate(r.wrapped, r.model, r.precision)}
    record["elapsed"] = r.progress.elapsed
    if r.cfg.sample_tokens and r.dist.is_main and not r.cfg.fsdp:
        decoding = Decoding(r.cfg.sample_tokens, r.cfg.sample_temperature, r.cfg.sample_top_k or None, seed=0)
        record["sample"] = generate_text(r.model.eval(), r.data.tokenizer, "", decoding)
        r.model.train()
    r.metrics.write(record)
    objective = record[r.data.objective] * (-1 if r.data.higher_is_better else 1)
    if objective < r.progress.best_val:
        r.progress.best_val, r.stale_evals = objective, 0
        save_run(r, "best", resumable=False)
    else:
        r.stale_evals += 1
    return record


def _fit_vocab(config: ModelConfig, tokenizer: Tokenizer) -> ModelConfig:
    """A model config whose vocabulary matches the data's tokenizer (a preset's vocab_size is a default)."""
    if tokenizer.vocab_size == config.vocab_size:
        return config
    log.info("vocab_size %d -> %d to match the data's tokenizer", config.vocab_size, tokenizer.vocab_size)
    return dataclasses.replace(config, vocab_size=tokenizer.vocab_size)


def _bytes_per_token(data: str) -> float:
    manifest = read_manifest(data)
    tokens = sum(s["tokens"] for s in manifest["splits"].values())
    return manifest["read"]["bytes"] / max(tokens, 1)
