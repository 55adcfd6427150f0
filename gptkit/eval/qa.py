"""Extractive QA with a span-head model: every window of every question scored, the best span kept.

    answers = answer_questions(model, tokenizer, task, records)     # a Span per record, in order
    [a.text for a in answers]

A question's answer is its best span over all its windows (start + end logit, at most
task.qa.max_answer_tokens long). With a `null_threshold` (SQuAD 2.0 models), the answer is
empty when the no-answer score (the lowest over the windows) beats the best span's by
more than the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..data import Record, Task
from ..data.qa import Span, Window, best_span, question_windows, window_tokens
from ..errors import GptkitError
from ..model import GPT, span_logits
from ..tokenizer import Tokenizer

NO_ANSWER = Span("", -1, -1, float("-inf"))


def default_null_threshold(unanswerable_seen: bool) -> float | None:
    """0 for a model trained with unanswerable questions (it learned to say so); otherwise never answer nothing."""
    return 0.0 if unanswerable_seen else None


@torch.no_grad()
def answer_questions(model: GPT, tokenizer: Tokenizer, task: Task, records: Sequence[Record], batch_size: int = 32,
                     null_threshold: float | None = None,
                     on_done: Callable[[int], None] | None = None) -> list[Span]:
    """The answer to each record's question about its context, in order; on_done(windows scored) per batch."""
    if model.span_head is None:
        raise GptkitError("this model has no span head: extractive QA needs one fine-tuned with task.format=qa "
                          "and task.qa.answer=extract")
    size = window_tokens(task.qa, model.config.block_size)
    windows = [w for i, r in enumerate(records) for w in question_windows(
        r, tokenizer, size, task.qa.doc_stride, task.qa.max_question_tokens, i)]
    windows.sort(key=lambda w: len(w.ids))  # batches of like lengths pad little
    best: list[Span] = [NO_ANSWER] * len(records)
    null = [float("inf")] * len(records)
    was_training = model.training
    model.eval()
    for at in range(0, len(windows), batch_size):
        chunk = windows[at : at + batch_size]
        logits = span_logits(model, _padded(chunk, model.device)).float().cpu()
        for window, row in zip(chunk, logits):
            starts, ends = row[:, 0].tolist(), row[:, 1].tolist()
            context = records[window.record].fields["context"]
            span = best_span(starts, ends, window, context, task.qa.max_answer_tokens)
            if span is not None and span.score > best[window.record].score:
                best[window.record] = span
            null[window.record] = min(null[window.record], starts[window.null] + ends[window.null])
        if on_done is not None:
            on_done(at + len(chunk))
    model.train(was_training)
    if null_threshold is None:
        return best
    return [NO_ANSWER if n - b.score > null_threshold else b for b, n in zip(best, null)]


def _padded(windows: list[Window], device: torch.device) -> torch.Tensor:
    """The windows' ids right-padded to the longest (the causal model never looks right, so padding is unread)."""
    x = torch.zeros(len(windows), max(len(w.ids) for w in windows), dtype=torch.long)
    for row, window in enumerate(windows):
        x[row, : len(window.ids)] = torch.tensor(window.ids)
    return x.to(device)
