"""A fine-tuned model on a task's examples: its predictions, their scores, and the files that keep both.

    predictions = predict(model, tokenizer, task, records, Decoding(128, temperature=0, num_beams=4))
    scores = score(task, predictions, records)          # {"bleu": Score, "chrf": Score} for translation
    write_results("runs/eval", task, records, predictions, scores)   # predictions.jsonl + scores.json

Prompts are rendered exactly as fine-tuning rendered them (the task stored in the
checkpoint), with the source cut so that prompt and completion fit the context.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from ..data import FORMATS, Record, Task
from ..data.formats import ROUGE
from ..errors import GptkitError
from ..files import atomic_write_text
from ..generate import Decoding, complete_texts
from ..model import GPT
from ..tokenizer import Tokenizer
from .metrics import Score, bleu, chrf, rouge, squad
from .qa import answer_questions

GREEDY_SCORING = Decoding(128, temperature=0)  # how fine-tuned models are scored unless told otherwise


def predict(model: GPT, tokenizer: Tokenizer, task: Task, records: Sequence[Record],
            decoding: Decoding = GREEDY_SCORING, batch_size: int = 32, on_done: Callable[[int], None] | None = None,
            null_threshold: float | None = None) -> list[str]:
    """The model's completion of each record's prompt (stripped), in order; on_done(n) after each batch.

    Greedy by default; a decoding with a temperature samples (record i from seed + i), one with
    num_beams > 1 or no_repeat_ngram is beam search. An extractive QA model answers with spans
    instead (`answer_questions`, empty when unanswerable by null_threshold).
    """
    if task.extractive:
        answers = answer_questions(model, tokenizer, task, records, batch_size, null_threshold)
        if on_done is not None:
            on_done(len(records))
        return [a.text for a in answers]
    if decoding.max_new_tokens >= model.config.block_size:
        raise GptkitError(f"max_new_tokens ({decoding.max_new_tokens}) leaves no room for a prompt in the context "
                          f"window of {model.config.block_size}")
    budget = model.config.block_size - decoding.max_new_tokens
    prompts = [task.prompt(r, tokenizer, budget) for r in records]
    was_training = model.training
    model.eval()
    predictions = []
    for text in complete_texts(model, tokenizer, prompts, decoding, batch_size):
        predictions.append(text.strip())
        if on_done is not None and (len(predictions) % batch_size == 0 or len(predictions) == len(records)):
            on_done(len(predictions))
    model.train(was_training)
    return predictions


def score(task: Task, predictions: Sequence[str], records: Sequence[Record]) -> dict[str, Score]:
    """The format's standard metrics of predictions against the records' references."""
    metrics = task.spec.metrics
    if metrics not in _SCORERS:
        scored = [f.name for f in FORMATS.values() if f.metrics in _SCORERS]
        raise GptkitError(f"no standard metric for {task.format} examples yet; scored formats: {', '.join(scored)}")
    return _SCORERS[metrics](predictions, [task.references(r) for r in records])


def _reference_sets(references: list[list[str]]) -> list[list[str]]:
    """Reference sets, line by line; a record with fewer references repeats its first (the best is the same)."""
    return [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(max(map(len, references)))]


def _squad(predictions: Sequence[str], references: list[list[str]]) -> dict[str, Score]:
    return {k: v for k, v in squad(predictions, references).items() if k in ("exact", "f1") or "Ans_" in k}


# the scores of each kind of metrics a format names (encoders are scored by gptkit.eval.retrieval)
_SCORERS = {
    ("bleu", "chrf"): lambda p, refs: {"bleu": bleu(p, _reference_sets(refs)), "chrf": chrf(p, _reference_sets(refs))},
    ("exact", "f1"): _squad,
    ROUGE: lambda p, refs: rouge(p, _reference_sets(refs)),
}


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
