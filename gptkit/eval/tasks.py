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

from ..data.tasks import Record, Task
from ..errors import GptkitError
from ..files import atomic_write_text
from ..generate import GREEDY, Sampling, complete_texts
from ..model import GPT
from ..tokenizer import Tokenizer
from .metrics import Score, bleu, chrf, rouge, squad
from .qa import answer_questions

# each format's standard scores: what `score` reports, and what task.select may pick by
METRICS = {"translation": ("bleu", "chrf"), "qa": ("exact", "f1"),
           "summarization": ("rouge1", "rouge2", "rougeL", "rougeLsum")}


def predict(model: GPT, tokenizer: Tokenizer, task: Task, records: Sequence[Record], max_new_tokens: int = 128,
            sampling: Sampling = GREEDY, num_beams: int = 1, length_penalty: float = 1.0, batch_size: int = 32,
            seed: int | None = None, on_done: Callable[[int], None] | None = None, no_repeat_ngram: int = 0,
            null_threshold: float | None = None) -> list[str]:
    """The model's completion of each record's prompt (stripped), in order; on_done(n) after each batch.

    Greedy by default; a `sampling` with a temperature samples (record i from seed + i); num_beams > 1
    is beam search (no_repeat_ngram > 0 bans repeating an n-gram of the output). An extractive QA
    model answers with spans instead (`answer_questions`, empty when unanswerable by null_threshold).
    """
    if task.extractive:
        answers = answer_questions(model, tokenizer, task, records, batch_size, null_threshold)
        if on_done is not None:
            on_done(len(records))
        return [a.text for a in answers]
    if max_new_tokens >= model.config.block_size:
        raise GptkitError(f"max_new_tokens ({max_new_tokens}) leaves no room for a prompt in the context window "
                          f"of {model.config.block_size}")
    budget = model.config.block_size - max_new_tokens
    prompts = [task.prompt(r, tokenizer, budget) for r in records]
    was_training = model.training
    model.eval()
    predictions = []
    for text in complete_texts(model, tokenizer, prompts, max_new_tokens, sampling, num_beams, length_penalty,
                               batch_size, seed, no_repeat_ngram):
        predictions.append(text.strip())
        if on_done is not None and (len(predictions) % batch_size == 0 or len(predictions) == len(records)):
            on_done(len(predictions))
    model.train(was_training)
    return predictions


def score(task: Task, predictions: Sequence[str], records: Sequence[Record]) -> dict[str, Score]:
    """The format's standard metrics of predictions against the records' references."""
    if task.format not in METRICS:
        raise GptkitError(f"no standard metric for {task.format} examples yet; scored formats: {', '.join(METRICS)}")
    references = [task.references(r) for r in records]
    if task.format == "qa":
        return {k: v for k, v in squad(predictions, references).items() if k in METRICS["qa"] or "Ans_" in k}
    # reference sets, line by line; a record with fewer references repeats its first (the best is the same)
    sets = [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(max(map(len, references)))]
    if task.format == "summarization":
        return rouge(predictions, sets)
    return {"bleu": bleu(predictions, sets), "chrf": chrf(predictions, sets)}


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
