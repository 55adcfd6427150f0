"""A fine-tuned model on a task's examples: its predictions, their scores, and the files that keep both.

    predictions = predict(model, tokenizer, task, records, max_new_tokens=128, num_beams=4)
    scores = score(task, predictions, records)          # {"bleu": Score, "chrf": Score} for translation
    write_results("runs/eval", task, records, predictions, scores)   # predictions.jsonl + scores.json

Prompts are rendered exactly as fine-tuning rendered them (the task stored in the
checkpoint), with the source cut so that prompt and completion fit the context.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from ..atomic import atomic_write_text
from ..data.tasks import Record, Task
from ..errors import GptkitError
from ..generate import GREEDY, Sampling, complete_texts
from ..model import GPT
from ..tokenizer import Tokenizer
from .metrics import Score, bleu, chrf

METRICS = {"translation": (bleu, chrf)}  # each format's standard scores


def predict(model: GPT, tokenizer: Tokenizer, task: Task, records: Sequence[Record], max_new_tokens: int = 128,
            sampling: Sampling = GREEDY, num_beams: int = 1, length_penalty: float = 1.0, batch_size: int = 32,
            seed: int | None = None, on_done: Callable[[int], None] | None = None) -> list[str]:
    """The model's completion of each record's prompt (stripped), in order; on_done(n) after each batch.

    Greedy by default; a `sampling` with a temperature samples (record i from seed + i); num_beams > 1
    is beam search."""
    if max_new_tokens >= model.config.block_size:
        raise GptkitError(f"max_new_tokens ({max_new_tokens}) leaves no room for a prompt in the context window "
                          f"of {model.config.block_size}")
    budget = model.config.block_size - max_new_tokens
    prompts = [task.prompt(r, tokenizer, budget) for r in records]
    was_training = model.training
    model.eval()
    predictions = []
    for text in complete_texts(model, tokenizer, prompts, max_new_tokens, sampling, num_beams, length_penalty,
                               batch_size, seed):
        predictions.append(text.strip())
        if on_done is not None and (len(predictions) % batch_size == 0 or len(predictions) == len(records)):
            on_done(len(predictions))
    model.train(was_training)
    return predictions


def score(task: Task, predictions: Sequence[str], records: Sequence[Record]) -> dict[str, Score]:
    """The format's standard metrics of predictions against the records' references."""
    if task.format not in METRICS:
        raise GptkitError(f"no standard metric for {task.format} examples yet; scored formats: {', '.join(METRICS)}")
    references = [[task.reference(r) for r in records]]
    return {metric.__name__: metric(predictions, references) for metric in METRICS[task.format]}


def write_results(out_dir: str | Path, task: Task, records: Sequence[Record], predictions: Sequence[str],
                  scores: dict[str, Score], meta: dict | None = None) -> Path:
    """out_dir/predictions.jsonl (prompt fields, reference, prediction per line) and out_dir/scores.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({**r.fields, "reference": task.reference(r), "prediction": p}, ensure_ascii=False)
             for r, p in zip(records, predictions)]
    atomic_write_text(out / "predictions.jsonl", "\n".join(lines) + "\n")
    summary = {name: {"score": s.score, "signature": s.signature} for name, s in scores.items()}
    atomic_write_text(out / "scores.json", json.dumps({**summary, "examples": len(records), **(meta or {})},
                                                      indent=2) + "\n")
    return out
