"""Supervised fine-tuning: prompt/completion examples, the loss on the completion only, the pretraining loop.

    config = load_config(FinetuneConfig, "multi30k-en-de", ["out_dir=runs/mt"])
    best = finetune(config)          # -> out_dir/best: a checkpoint that knows its task (and prompt template)

The model starts from task.init (a gptkit checkpoint or a Hugging Face GPT-2
directory) or from scratch ([model], with a byte-level BPE trained on the
examples). With lora.rank > 0 only low-rank adapters train; checkpoints hold the
merged model, and out_dir/best-adapter the adapters alone in PEFT's format.
Everything else is the pretraining loop: schedules, optimizers, precision, exact
resume, DDP, metrics, report. Each evaluation measures the val loss per target
token and, with task.select set to a score of the format (bleu, chrf; exact, f1;
rouge1, rouge2, rougeL, rougeLsum), decodes select_examples val prompts greedily
and keeps the checkpoint that scores best.

Extractive QA (task.format = qa, task.answer = extract) adds a span head to the
model and trains it on windows of each context (gptkit.data.qa): a start/end
cross-entropy instead of the next-token loss. Text pairs (task.format = pairs or
sts) make the model an encoder, trained with a contrastive loss (gptkit.train.contrastive).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..config import FinetuneConfig, ModelConfig, RunConfig, to_dict
from ..data import ExampleBatches, Record, Task, read_records
from ..data.qa import question_windows, span_example
from ..data.tasks import EMBEDDING_FORMATS
from ..errors import GptkitError
from ..eval.qa import default_null_threshold
from ..eval.tasks import METRICS, predict, score
from ..hf import from_hf
from ..lock import check_out_dir
from ..lora import apply_lora
from ..model import GPT
from ..runtime import Distributed
from ..tokenizer import Tokenizer
from .contrastive import EMBEDDING_SCORES, encoder_data
from .loop import TrainData, run_training
from .step import Precision, evaluate_examples

log = logging.getLogger(__name__)


def finetune(config: FinetuneConfig, on_step: Callable[[dict], None] | None = None) -> Path:
    """Fine-tune (or resume); returns the path of the best checkpoint (by task.select)."""
    check_out_dir(Path(config.train.out_dir))
    base, tokenizer = _load_init(config)
    if base is not None and config.lora.rank > base.config.n_embd:  # before the data is read
        raise GptkitError(f"lora.rank {config.lora.rank} is above the size of the layers it adapts (the smallest is "
                          f"{base.config.n_embd} wide, where an adapter is already full rank): use a rank <= "
                          f"{base.config.n_embd}")
    task, train_records, val_records, stats = _read(config)
    if config.lora.rank and task.extractive:
        raise GptkitError("LoRA with a span head: the new head would not train; use lora.rank = 0 for "
                          "extractive QA, or task.answer = generate")
    if config.lora.rank and task.format in EMBEDDING_FORMATS:
        raise GptkitError("LoRA for an encoder is not supported; use lora.rank = 0 with task.format = pairs/sts")
    if tokenizer is None:
        tokenizer = _tokenizer(config, train_records, task)
    encoder = task.format in EMBEDDING_FORMATS
    heads = {"span_head": task.extractive, "pooling": (config.model.pooling or "mean") if encoder else ""}
    if base is None:  # from scratch: [model]'s shape, the tokenizer's vocabulary
        model_config = dataclasses.replace(config.model, vocab_size=tokenizer.vocab_size, **heads)
    elif tokenizer.vocab_size > base.config.vocab_size:
        raise GptkitError(f"{config.task.init}: its tokenizer has {tokenizer.vocab_size} tokens, more than the model's "
                          f"vocabulary of {base.config.vocab_size}")
    else:  # the checkpoint's shape; dropout is a training setting, so [model]'s applies
        model_config = dataclasses.replace(base.config, dropout=config.model.dropout,
                                           attn_dropout=config.model.attn_dropout, **heads)
    run = RunConfig(model_config, config.train)

    def open_data(run: RunConfig, device: torch.device, dist: Distributed) -> tuple[RunConfig, TrainData]:
        make = _encoder_data if task.format in EMBEDDING_FORMATS else _examples_data
        return run, make(config, run, task, tokenizer, train_records, val_records, stats, device, dist)

    def build_model(shape: ModelConfig) -> GPT:
        model = GPT(shape)
        if base is not None:  # a span head the init lacks starts fresh; one it has but the task does not is left
            model.load_state_dict({k: v for k, v in base.state_dict().items()
                                   if k in model.state_dict()}, strict=not shape.span_head)
        return apply_lora(model, config.lora) if config.lora.rank else model

    return run_training(run, open_data, build_model, on_step)


def _load_init(config: FinetuneConfig) -> tuple[GPT | None, Tokenizer | None]:
    """The model and tokenizer fine-tuning starts from: a gptkit checkpoint, a Hugging Face directory, or none."""
    init = config.task.init
    if not init:
        return None, None
    path = Path(init)
    if _is_hf_directory(path):
        model, tokenizer = from_hf(path)
    else:
        ckpt = load_checkpoint(path)
        model, tokenizer = ckpt.model, ckpt.tokenizer
    if tokenizer is None:
        raise GptkitError(f"{init} has no tokenizer; fine-tuning needs the one the model was trained with")
    return model, tokenizer


def _is_hf_directory(path: Path) -> bool:
    """A transformers GPT-2 directory, not a gptkit checkpoint (whose config.json has a schema_version)."""
    try:
        return "schema_version" not in json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # let load_checkpoint say what is wrong


def _read(config: FinetuneConfig) -> tuple[Task, list[Record], list[Record], dict]:
    """The task (format resolved) and its train and val records; val is held out of train unless given."""
    cfg = config.task
    if not config.train.data:
        raise GptkitError("no examples: set train.data to a JSONL/JSON file (or an aligned path with {lang})")
    task, records, read = read_records(config.train.data, Task.from_config(cfg), cfg.on_malformed)
    stats = {"train_malformed": read.malformed}
    if cfg.val_data:
        _, val, read_val = read_records(cfg.val_data, task, cfg.on_malformed)
        stats["val_malformed"] = read_val.malformed
    else:
        if cfg.val_examples >= len(records):
            raise GptkitError(f"{config.train.data} has {len(records)} examples: too few to hold out "
                              f"val_examples={cfg.val_examples}; lower it or give task.val_data")
        order = np.random.default_rng(config.train.seed).permutation(len(records))
        held = set(order[: cfg.val_examples].tolist())
        val = [records[i] for i in sorted(held)]
        records = [r for i, r in enumerate(records) if i not in held]
    if read.malformed:
        log.warning("%d malformed examples skipped (first: %s)", read.malformed, read.first_problem)
    return task, records, val, stats


def _tokenizer(config: FinetuneConfig, records: list[Record], task: Task) -> Tokenizer:
    """The given tokenizer, a resumed run's, or a byte-level BPE trained on the examples' text."""
    if config.task.tokenizer:
        return Tokenizer.load(config.task.tokenizer)
    saved = sorted(Path(config.train.out_dir).glob("ckpt-*/tokenizer.json"))
    if saved:
        return Tokenizer.load(saved[-1])
    if task.format in EMBEDDING_FORMATS:
        texts = (v for r in records for v in r.fields.values() if isinstance(v, str))
    else:
        texts = (text for r in records for text in (task.prompt(r), task.reference(r)))
    return Tokenizer.train_bpe(texts, config.task.vocab_size)


def _examples_data(config: FinetuneConfig, run: RunConfig, task: Task, tokenizer: Tokenizer, train_records: list,
                   val_records: list, stats: dict, device: torch.device, dist: Distributed) -> TrainData:
    cfg, block = config.train, run.model.block_size
    train_examples = _examples(task, train_records, tokenizer, block)
    if config.task.prompt_loss and not task.extractive:  # every token a target: the prompts are text to learn too
        train_examples = [dataclasses.replace(e, targets=[True] * len(e.ids)) for e in train_examples]
    val_examples = _examples(task, val_records, tokenizer, block) if val_records else []
    stats.update(train_examples=len(train_examples), val_examples=len(val_examples),
                 train_truncated=sum(e.truncated for e in train_examples),
                 val_truncated=sum(e.truncated for e in val_examples))
    if stats["train_truncated"]:
        log.warning("%d of %d training examples cut to fit block_size %d", stats["train_truncated"],
                    len(train_examples), block)
    streams = cfg.grad_accum * dist.world_size
    pack = config.task.pack and not task.extractive  # a span row holds one window
    batches = ExampleBatches(train_examples, cfg.batch_size, block, cfg.seed, streams, pack, device=device)
    val = ExampleBatches(val_examples, cfg.batch_size, block, pack=pack, shuffle=False,
                         device=device) if val_examples else None
    select = config.task.select
    _check_select(config, task, METRICS.get(task.format, ()))
    if select != "loss" and cfg.fsdp:
        raise GptkitError(f"task.select={select} decodes with whole weights; use DDP (fsdp=false) or select=loss")
    if val is None and (select != "loss" or config.task.patience):
        raise GptkitError("task.select and task.patience need val examples: set task.val_data or val_examples")
    scored = val_records[: config.task.select_examples]
    stats["unanswerable"] = sum(1 for r in train_records if task.format == "qa" and not r.fields["answers"])
    null_threshold = default_null_threshold(stats["unanswerable"] > 0)

    def evaluate(model: torch.nn.Module, plain: GPT, precision: Precision) -> dict:
        if val is None:  # nothing to judge by: the newest checkpoint is the best
            return {}
        record = {"val_loss": evaluate_examples(model, val, precision, per_row=task.extractive)}
        if select != "loss":
            with precision.autocast():
                predictions = predict(plain, tokenizer, task, scored, config.task.max_new_tokens,
                                      batch_size=max(cfg.batch_size, 32), null_threshold=null_threshold)
            record.update({f"val_{name}": s.score for name, s in score(task, predictions, scored).items()})
        return record

    meta = {"task": task.to_dict(), "finetune": {**stats, "lora": to_dict(config.lora)}}
    if val is None:
        return TrainData(batches, evaluate, tokenizer, objective="step", higher_is_better=True, meta=meta)
    return TrainData(batches, evaluate, tokenizer, objective="val_loss" if select == "loss" else f"val_{select}",
                     higher_is_better=select != "loss", patience=config.task.patience, meta=meta)


def _encoder_data(config: FinetuneConfig, run: RunConfig, task: Task, tokenizer: Tokenizer, train_records: list,
                  val_records: list, stats: dict, device: torch.device, dist: Distributed) -> TrainData:
    _check_select(config, task, EMBEDDING_SCORES[task.format])
    max_tokens = min(config.task.max_text_tokens, run.model.block_size)
    return encoder_data(config, task, tokenizer, train_records, val_records, stats, device, dist, max_tokens)


def _check_select(config: FinetuneConfig, task: Task, scores: tuple[str, ...]) -> None:
    select = config.task.select
    if select != "loss" and select not in scores:
        raise GptkitError(f"task.select={select} is not a score of {task.format} examples (theirs: "
                          f"{', '.join(scores) or 'none'}); or select=loss")


def _examples(task: Task, records: list[Record], tokenizer: Tokenizer, block: int) -> list:
    """Training rows: prompt + completion examples, or for extractive QA one per window of each context."""
    if not task.extractive:
        return task.examples(records, tokenizer, block)
    return [span_example(w) for i, r in enumerate(records)
            for w in question_windows(r, tokenizer, block, task.doc_stride, task.max_question_tokens, i)]
