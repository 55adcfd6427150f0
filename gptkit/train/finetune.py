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

Extractive QA (task.format = qa, task.qa.answer = extract) adds a span head to the
model and trains it on windows of each context (gptkit.data.qa): a start/end
cross-entropy instead of the next-token loss. Text pairs (task.format = pairs or
sts) make the model an encoder, trained with a contrastive loss (gptkit.train.contrastive).
"""

from __future__ import annotations

import copy
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
from ..data.qa import question_windows, span_example, window_tokens
from ..errors import GptkitError
from ..eval.qa import default_null_threshold
from ..eval.tasks import predict, score
from ..generate import Decoding
from ..hf import from_hf
from ..lock import check_out_dir
from ..lora import adapter_state, apply_lora, merge_lora, save_adapters
from ..model import GPT, SpanReader
from ..runtime import Distributed
from ..tokenizer import Tokenizer
from .contrastive import encoder_data
from .loop import TrainData, run_training
from .resume import PartialWeights
from .step import Precision, evaluate_examples

log = logging.getLogger(__name__)


def finetune(config: FinetuneConfig, on_step: Callable[[dict], None] | None = None) -> Path:
    """Fine-tune (or resume); returns the path of the best checkpoint (by task.select)."""
    check_out_dir(Path(config.train.out_dir))
    Task.from_config(config.task)  # an unknown format, before the init loads
    base, tokenizer = _load_init(config)
    if tokenizer is not None and tokenizer.chat_template and not config.task.chat_template:
        # a pretrained chat model: its conversations are fine-tuned in its own template
        config = dataclasses.replace(config, task=dataclasses.replace(config.task,
                                                                      chat_template=tokenizer.chat_template))
    if base is not None and config.lora.rank > base.config.n_embd:  # before the data is read
        raise GptkitError(f"lora.rank {config.lora.rank} is above the size of the layers it adapts (the smallest is "
                          f"{base.config.n_embd} wide, where an adapter is already full rank): use a rank <= "
                          f"{base.config.n_embd}")
    task, train_records, val_records, stats = _read(config)
    if config.lora.rank and task.extractive:
        raise GptkitError("LoRA with a span head: the new head would not train; use lora.rank = 0 for "
                          "extractive QA, or task.qa.answer = generate")
    if config.lora.rank and task.spec.encoder:
        raise GptkitError("LoRA for an encoder is not supported; use lora.rank = 0 with task.format = pairs/sts")
    if tokenizer is None:
        tokenizer = _tokenizer(config, train_records, task)
    model_config = _model_config(config, task, base, tokenizer)
    run = RunConfig(model_config, config.train)

    def open_data(run: RunConfig, device: torch.device, dist: Distributed) -> tuple[RunConfig, TrainData]:
        make = _encoder_data if task.spec.encoder else _examples_data
        data = make(config, run, task, tokenizer, train_records, val_records, stats, device, dist)
        return run, dataclasses.replace(data, partial=LORA_WEIGHTS if config.lora.rank else None,
                                        meta={**data.meta, **_inherited(config)})

    def build_model(shape: ModelConfig) -> GPT:
        model = GPT(shape)
        if base is not None:  # a span head the init lacks starts fresh; one it has but the task does not is left
            model.load_state_dict({k: v for k, v in base.state_dict().items()
                                   if k in model.state_dict()}, strict=not shape.span_head)
        return apply_lora(model, config.lora) if config.lora.rank else model

    return run_training(run, open_data, build_model, on_step)


def _model_config(config: FinetuneConfig, task: Task, base: GPT | None, tokenizer: Tokenizer) -> ModelConfig:
    """The shape fine-tuning trains: [model]'s from scratch, else the init's, with the heads the task needs."""
    heads = {"span_head": task.extractive, "pooling": (config.model.pooling or "mean") if task.spec.encoder else ""}
    if base is None:  # from scratch: [model]'s shape, the tokenizer's vocabulary
        return dataclasses.replace(config.model, vocab_size=tokenizer.vocab_size, **heads)
    if tokenizer.vocab_size > base.config.vocab_size:
        raise GptkitError(f"{config.task.init}: its tokenizer has {tokenizer.vocab_size} tokens, more than the model's "
                          f"vocabulary of {base.config.vocab_size}")
    # the checkpoint's shape; dropout is a training setting, so [model]'s applies
    return dataclasses.replace(base.config, dropout=config.model.dropout, attn_dropout=config.model.attn_dropout,
                               **heads)


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


def _inherited(config: FinetuneConfig) -> dict:
    """What a fine-tune keeps of its init's record: the weights' licence (for model cards and exports)."""
    path = Path(config.task.init) if config.task.init else None
    if path is None or _is_hf_directory(path):
        return {}
    from ..checkpoint import inspect_checkpoint

    meta = inspect_checkpoint(path)[1]
    return {"license": meta["license"]} if isinstance(meta.get("license"), str) else {}


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
    if task.spec.encoder:
        texts = (v for r in records for v in r.fields.values() if isinstance(v, str))
    else:
        texts = (text for r in records for text in (task.prompt(r), task.reference(r)))
    return Tokenizer.train_bpe(texts, config.task.vocab_size)


def _examples_data(config: FinetuneConfig, run: RunConfig, task: Task, tokenizer: Tokenizer, train_records: list,
                   val_records: list, stats: dict, device: torch.device, dist: Distributed) -> TrainData:
    cfg, block = config.train, _row_length(config, run.model)
    train_examples, val_examples = _train_and_val_examples(config, task, tokenizer, train_records, val_records,
                                                           block, stats)
    streams = cfg.grad_accum * dist.world_size
    pack = config.task.pack and not task.extractive  # a span row holds one window
    batches = ExampleBatches(train_examples, cfg.batch_size, block, cfg.seed, streams, pack, device=device)
    val = ExampleBatches(val_examples, cfg.batch_size, block, pack=pack, shuffle=False,
                         device=device) if val_examples else None
    select = config.task.select
    _check_select(config, task)
    if select != "loss" and cfg.fsdp:
        raise GptkitError(f"task.select={select} decodes with whole weights; use DDP (fsdp=false) or select=loss")
    if val is None and (select != "loss" or config.task.patience):
        raise GptkitError("task.select and task.patience need val examples: set task.val_data or val_examples")
    scored = val_records[: config.task.select_examples]
    stats["unanswerable"] = sum(1 for r in train_records if task.spec.spans and not r.fields["answers"])
    null_threshold = default_null_threshold(stats["unanswerable"] > 0)
    decoding = Decoding(config.task.max_new_tokens, temperature=0)

    def evaluate(model: torch.nn.Module, plain: GPT, precision: Precision) -> dict:
        if val is None:  # nothing to judge by: the newest checkpoint is the best
            return {}
        record = {"val_loss": evaluate_examples(model, val, precision, per_row=task.extractive)}
        if select != "loss":
            with precision.autocast():
                predictions = predict(plain, tokenizer, task, scored, decoding, max(cfg.batch_size, 32),
                                      null_threshold=null_threshold)
            record.update({f"val_{name}": s.score for name, s in score(task, predictions, scored).items()})
        return record

    meta = {"task": task.to_dict(), "finetune": {**stats, "lora": to_dict(config.lora)}}
    return TrainData.judged(batches, evaluate, tokenizer, select, config.task.patience, val is not None, meta,
                            entry=SpanReader if task.extractive else None)


def _row_length(config: FinetuneConfig, model: ModelConfig) -> int:
    """Tokens per example and packed row: task.max_length, and never more than the model's context."""
    return min(config.task.max_length or model.block_size, model.block_size)


def _train_and_val_examples(config: FinetuneConfig, task: Task, tokenizer: Tokenizer, train_records: list,
                            val_records: list, block: int, stats: dict) -> tuple[list, list]:
    """The tokenized rows (counted into stats); with prompt_loss every training token is a target."""
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
    return train_examples, val_examples


def _encoder_data(config: FinetuneConfig, run: RunConfig, task: Task, tokenizer: Tokenizer, train_records: list,
                  val_records: list, stats: dict, device: torch.device, dist: Distributed) -> TrainData:
    _check_select(config, task)
    max_tokens = min(config.task.encoder.max_text_tokens, run.model.block_size)
    return encoder_data(config, task, tokenizer, train_records, val_records, stats, device, dist, max_tokens)


def _check_select(config: FinetuneConfig, task: Task) -> None:
    select, scores = config.task.select, task.spec.metrics
    if select != "loss" and select not in scores:
        raise GptkitError(f"task.select={select} is not a score of {task.format} examples (theirs: "
                          f"{', '.join(scores) or 'none'}); or select=loss")


def _examples(task: Task, records: list[Record], tokenizer: Tokenizer, block: int) -> list:
    """Training rows: prompt + completion examples, or for extractive QA one per window of each context."""
    if not task.extractive:
        return task.examples(records, tokenizer, block)
    window = window_tokens(task.qa, block)
    return [span_example(w) for i, r in enumerate(records)
            for w in question_windows(r, tokenizer, window, task.qa.doc_stride, task.qa.max_question_tokens, i)]


def _restore_adapters(model: GPT, trained: dict) -> None:
    model.load_state_dict(trained, strict=False)


def _adapters_beside(model: GPT, checkpoint: Path) -> None:
    save_adapters(model, checkpoint.with_name(f"{checkpoint.name}-adapter"))


# LoRA: resumable checkpoints keep the adapters, every checkpoint holds the merged model, best-adapter the adapters
LORA_WEIGHTS = PartialWeights("LoRA adapters", "lora", trained=adapter_state, restore=_restore_adapters,
                              plain=lambda model: merge_lora(copy.deepcopy(model)), beside=_adapters_beside)
