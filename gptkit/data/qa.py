"""Extractive question answering: contexts read in overlapping windows, answers mapped between characters
and tokens.

    windows = question_windows(record, tokenizer, block_size=256, doc_stride=128)
    examples = [span_example(w) for w in windows]      # ids and span labels, for ExampleBatches(pack=False)
    span = best_span(start_logits, end_logits, window, max_answer_tokens=30)

A window is `Question: ...\\nContext:` then a piece of the context, then end-of-text. The
model reads start/end logits at the context positions; the last position (end-of-text,
which has seen the whole window) stands for "no answer here". A context longer than a
window is split into windows that share `doc_stride` tokens, so an answer cut by one
window's border lies whole in the next.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import QaSettings
from ..errors import GptkitError
from ..model import SPAN_END, SPAN_START
from ..tokenizer import Tokenizer
from .tasks import Example, Record

QUESTION_PREFIX, CONTEXT_PREFIX = "Question: ", "\nContext:"


@dataclass(frozen=True)
class Window:
    """One window of a question's context: token ids, and where the context and the answer are in it."""

    record: int  # the record (question) it belongs to
    ids: list[int]
    context_start: int  # position of the first context token
    offsets: list[tuple[int, int]]  # the character span in the context of each context token
    start: int  # positions of the answer's first and last token, or both `null` when it is not inside
    end: int

    @property
    def null(self) -> int:
        """The no-answer position: the last one (end-of-text)."""
        return len(self.ids) - 1


@dataclass(frozen=True)
class Span:
    """An answer: its text, its [start, end) in the context, and start + end logit (`score`)."""

    text: str
    start: int
    end: int
    score: float


def context_tokens(tokenizer: Tokenizer, context: str) -> tuple[list[int], list[tuple[int, int]]]:
    """The context's ids and character spans; encoded after a space, as it follows "Context:" in a window."""
    ids, offsets = tokenizer.encode_offsets(" " + context)
    return ids, [(max(start - 1, 0), end - 1) for start, end in offsets]


def answer_tokens(offsets: list[tuple[int, int]], char_start: int, char_end: int) -> tuple[int, int] | None:
    """The first and last token of the characters [char_start, char_end), or None if no token covers them."""
    first = next((i for i, (_, end) in enumerate(offsets) if end > char_start), None)
    last = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < char_end), None)
    if first is None or last is None or last < first:
        return None
    return first, last


def span_text(context: str, offsets: list[tuple[int, int]], first: int, last: int) -> tuple[str, int, int]:
    """The context's text from token `first` to token `last`, without the spaces at either end."""
    start, end = offsets[first][0], offsets[last][1]
    while start < end and context[start].isspace():
        start += 1
    while end > start and context[end - 1].isspace():
        end -= 1
    return context[start:end], start, end


def window_tokens(qa: QaSettings, block_size: int) -> int:
    """Tokens per window for a model with this context: task.qa.window where set and smaller."""
    return min(qa.window or block_size, block_size)


def question_windows(record: Record, tokenizer: Tokenizer, block_size: int, doc_stride: int,
                     max_question_tokens: int = 64, index: int = 0) -> list[Window]:
    """The record's context in windows of at most block_size tokens; the answer (the first gold one that the
    context holds) is marked in the windows that hold it whole."""
    if tokenizer.eot_id is None:
        raise GptkitError("extractive QA needs a tokenizer with an end-of-text token (the no-answer position)")
    question = tokenizer.encode(QUESTION_PREFIX + record.fields["question"])[:max_question_tokens]
    head = question + tokenizer.encode(CONTEXT_PREFIX)
    room = block_size - len(head) - 1  # context tokens per window
    if room < 8:
        raise GptkitError(f"a window of {block_size} tokens leaves {room} context tokens beside a question of "
                          f"{len(question)}: raise block_size (or task.qa.window, where set) or lower "
                          f"task.qa.max_question_tokens")
    ids, offsets = context_tokens(tokenizer, record.fields["context"])
    answer = _answer(record, offsets)
    step = max(room - doc_stride, 1)
    windows = []
    for first in range(0, max(len(ids) - doc_stride, 1), step):
        last = min(first + room, len(ids))  # exclusive
        piece = head + ids[first:last] + [tokenizer.eot_id]
        null = len(piece) - 1
        start = end = null
        if answer is not None and first <= answer[0] and answer[1] < last:
            start, end = len(head) + answer[0] - first, len(head) + answer[1] - first
        windows.append(Window(index, piece, len(head), offsets[first:last], start, end))
        if last == len(ids):
            break
    return windows


def _answer(record: Record, offsets: list[tuple[int, int]]) -> tuple[int, int] | None:
    """Token positions of the first gold answer whose character start is known."""
    for text, start in zip(record.fields.get("answers", []), record.fields.get("answer_starts", [])):
        if start >= 0:
            return answer_tokens(offsets, start, start + len(text))
    return None


def span_example(window: Window) -> Example:
    """The window as a training row: its ids, and per position the span label (model.span_loss)."""
    labels = [-1] * window.context_start + [0] * (len(window.ids) - window.context_start)
    labels[window.start] += SPAN_START
    labels[window.end] += SPAN_END
    return Example(window.ids + [0], [False] * (len(window.ids) + 1), labels=labels)


def best_span(start_logits: list[float], end_logits: list[float], window: Window, context: str,
              max_answer_tokens: int, top: int = 20) -> Span | None:
    """The highest-scoring span of the window's context (start + end logit), at most max_answer_tokens long."""
    positions = range(window.context_start, window.null)
    starts = sorted(positions, key=lambda i: start_logits[i], reverse=True)[:top]
    ends = sorted(positions, key=lambda i: end_logits[i], reverse=True)[:top]
    best = None
    for s in starts:
        for e in ends:
            if s <= e < s + max_answer_tokens and (best is None or start_logits[s] + end_logits[e] > best[0]):
                best = (start_logits[s] + end_logits[e], s, e)
    if best is None:
        return None
    score, s, e = best
    text, start, end = span_text(context, window.offsets, s - window.context_start, e - window.context_start)
    return Span(text, start, end, score)
