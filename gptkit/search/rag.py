"""Retrieval-augmented answers: a question answered from the top chunks of an index, citing them.

    answer = answer_from_index(model, tokenizer, task, searcher, "What lowers blood pressure?", k=3)
    answer.text, answer.sources          # the answer and the hits it was read from

The checkpoint's task says how it reads the chunks:

    qa, extract     each chunk is a context; the best-scoring span over all of them wins and
                    cites its chunk (no span beats "no answer" by null_threshold: no answer)
    qa, generate    the chunks, numbered, are one context; all of them are cited
    alpaca, chat,   an instruction to answer from the numbered sources; all of them are cited
    completion
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data import Record, Task
from ..data.formats import qa_record
from ..errors import GptkitError
from ..eval.qa import answer_questions
from ..eval.tasks import predict
from ..generate import Decoding
from ..model import GPT
from ..tokenizer import Tokenizer
from .hybrid import Hit, Mode, Searcher

INSTRUCTION = "Answer the question using only the numbered sources below, and cite them like [1]."


@dataclass(frozen=True)
class RagAnswer:
    text: str  # "" when an extractive model finds no answer
    sources: list[Hit] = field(default_factory=list)  # what the answer was read from
    retrieved: list[Hit] = field(default_factory=list)  # every chunk retrieved
    score: float | None = None  # an extractive span's score


def numbered(hits: list[Hit]) -> str:
    return "\n\n".join(f"[{n}] {hit.chunk.text}" for n, hit in enumerate(hits, 1))


def answer_from_index(model: GPT, tokenizer: Tokenizer, task: Task, searcher: Searcher, question: str, k: int = 3,
                      mode: Mode | None = None, null_threshold: float | None = None,
                      decoding: Decoding = Decoding(64, temperature=0)) -> RagAnswer:
    """Retrieve the top k chunks for `question` and answer it from them with the checkpoint's task."""
    if not question.strip():
        raise GptkitError("the question is empty")
    hits = searcher.search(question, k=k, mode=mode)
    if not hits:
        return RagAnswer("", [], [])
    if task.extractive:
        records = [qa_record(hit.chunk.text, question) for hit in hits]
        spans = answer_questions(model, tokenizer, task, records, null_threshold=null_threshold)
        found = [(span, hit) for span, hit in zip(spans, hits) if span.text]
        if not found:
            return RagAnswer("", [], hits)
        span, hit = max(found, key=lambda pair: pair[0].score)
        return RagAnswer(span.text, [hit], hits, span.score)
    retrieved, budget = hits, model.config.block_size - decoding.max_new_tokens
    record = _generative_record(task, numbered(hits), question)
    while len(hits) > 1 and len(tokenizer.encode(task.prompt(record))) > budget:  # fewer sources, each whole
        hits = hits[:-1]
        record = _generative_record(task, numbered(hits), question)
    (text,) = predict(model, tokenizer, task, [record], decoding)
    return RagAnswer(text, hits, retrieved)


def _generative_record(task: Task, sources: str, question: str) -> Record:
    """The question over numbered sources, as the task's format asks it."""
    ask = task.spec.question
    if ask is not None:
        return ask(INSTRUCTION, sources, question)
    raise GptkitError(f"a {task.format} checkpoint does not answer questions; use a qa, alpaca, chat or "
                      f"completion checkpoint")
