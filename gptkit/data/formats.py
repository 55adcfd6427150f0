"""Task formats as data: one frozen `Format` per format, registered in one table.

A format says which fields a record has, which of them the prompt may cut and which
one is the completion, its default prompt template, its standard metrics, and the
hooks where it really differs from a plain prompt/completion format (how a row is
recognised, checked and read; chat's prompts and examples; how it asks a question).
Adding a format is one entry in `FORMATS` plus its tests.

    spec = get_format("translation")
    spec.fields, spec.target, spec.metrics        # ("source", "target"), "target", ("bleu", "chrf")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import GptkitError
from ..tokenizer import Tokenizer
from . import chat
from .records import Example, Record

if TYPE_CHECKING:
    from .tasks import Task

ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _has_fields(spec: Format) -> Callable[[dict, Task], bool]:
    return lambda row, task: set(spec.fields) <= set(row)


def _unchanged(row: dict, task: Task) -> dict:
    return row


def _no_problem(row: dict) -> str:
    return ""


def _same(values: dict) -> dict:
    return values


@dataclass(frozen=True)
class Format:
    """One task format. Hooks left unset behave as a prompt/completion format's."""

    name: str
    fields: tuple[str, ...] = ()  # required: non-empty strings
    optional: tuple[str, ...] = ()  # strings that may be missing
    source: tuple[str, ...] = ()  # what a too-long prompt gives up tokens from (the longest first)
    target: str = ""  # the completion's field ("" for formats without one)
    prefix: str = ""  # between the prompt and the completion
    template: str = ""  # the default prompt template (Python format fields)
    metrics: tuple[str, ...] = ()  # its standard scores: what `eval` reports and task.select may pick
    encoder: bool = False  # texts to embed close together (an encoder's training), not prompts
    conversation: bool = False  # rows are messages, rendered by a chat template (a chat model)
    spans: bool = False  # answers are spans of a context (a span head may extract them)
    aligned: bool = False  # may come as two aligned text files (a path with {lang})
    label: str = ""  # a number that scores the record's pair (sts)
    keys: tuple[str, ...] = ()  # a row's keys, as messages name them ("": its fields)
    matches: Callable[[dict, Task], bool] | None = None  # whether a row is this format's (format = auto)
    normalize: Callable[[dict, Task], dict] = _unchanged  # a row before it is checked (renamed keys)
    check: Callable[[dict], str] = _no_problem  # why a row is not an example, beyond its fields
    read: Callable[[dict, Format], Record] | None = None  # a checked row as a record
    values: Callable[[dict], dict] = _same  # the template's values from a record's fields
    prompt: Callable[[Task, Record], str] | None = None  # the prompt, when it is not the filled template
    reference: Callable[[Record], str] | None = None  # the completion, when it is not the target field
    example: Callable[[Task, Record, Tokenizer, int], Example] | None = None  # tokens, when not prompt + completion
    question: Callable[[str, str, str], Record] | None = None  # (instruction, sources, question): RAG's record
    texts: Callable[[list[Record]], list[str]] | None = None  # the texts an audit reads

    def row_keys(self) -> str:
        return "/".join(self.keys or self.fields + self.optional)

    def recognises(self, row: dict, task: Task) -> bool:
        return (self.matches or _has_fields(self))(row, task)

    def problem(self, row: object) -> str:
        """Why `row` is not an example of this format ("" if it is one)."""
        if not isinstance(row, dict):
            return "not a JSON object"
        for key in self.fields:
            if not isinstance(row.get(key), str) or not row[key].strip():
                return f"{key!r} missing, empty or not a string"
        for key in self.optional:
            if not isinstance(row.get(key, ""), str):
                return f"{key!r} is not a string"
        return self.check(row)

    def record(self, row: dict) -> Record:
        if self.read is not None:
            return self.read(row, self)
        return Record({k: row.get(k, "") for k in self.fields + self.optional})

    def audit_texts(self, records: list[Record]) -> list[str]:
        if self.texts is not None:
            return self.texts(records)
        return ["\n".join(v for k, v in r.fields.items() if isinstance(v, str) and k not in ("id", "answer"))
                for r in records]


# -- the hooks of formats that need them ----------------------------------------------------


def _alpaca_values(values: dict) -> dict:
    values.setdefault("input", "")
    values["with_input"] = ", paired with an input that provides further context" if values["input"] else ""
    values["input_block"] = f"### Input:\n{values['input']}\n\n" if values["input"] else ""
    return values


def _alpaca_question(instruction: str, sources: str, question: str) -> Record:
    return Record({"instruction": f"{instruction}\n\nQuestion: {question}", "input": sources, "output": ""})


def _completion_question(instruction: str, sources: str, question: str) -> Record:
    return Record({"prompt": f"{instruction}\n\n{sources}\n\nQuestion: {question}\nAnswer:", "completion": ""})


def answers(row: dict) -> tuple[list[str], list[int]] | None:
    """A QA row's gold answer texts and character starts (-1: unknown); None if malformed.

    Accepted: [{"text", "answer_start"}, ...], {"text": [...], "answer_start": [...]} (datasets), [str, ...].
    """
    given = row.get("answers", [])
    if row.get("is_impossible"):
        return [], []
    if isinstance(given, dict):
        texts, starts = given.get("text", []), given.get("answer_start", [])
        given = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)] if len(texts) == len(starts) else None
    if not isinstance(given, list):
        return None
    texts, starts = [], []
    for answer in given:
        text, start = (answer, -1) if isinstance(answer, str) else \
            (answer.get("text"), answer.get("answer_start", -1)) if isinstance(answer, dict) else (None, None)
        if not isinstance(text, str) or not isinstance(start, int) or not text.strip():
            return None
        texts.append(text)
        starts.append(start)
    return texts, starts


def _qa_check(row: dict) -> str:
    return "'answers' is not a list of {text, answer_start} (or of strings)" if answers(row) is None else ""


def qa_record(context: str, question: str) -> Record:
    """A question about a context, with no gold answer (to be answered)."""
    return Record({"context": context, "question": question, "answer": "", "answers": [], "answer_starts": []})


def _qa_read(row: dict, spec: Format) -> Record:
    """A checked QA row as a record; an answer whose start does not point at its text is looked up."""
    texts, starts = answers(row)
    context = row["context"]
    starts = [s if s >= 0 and context[s : s + len(t)] == t else context.find(t) for t, s in zip(texts, starts)]
    return Record({"id": str(row.get("id", "")), "context": context, "question": row["question"],
                   "answer": texts[0] if texts else "", "answers": texts, "answer_starts": starts})


def _qa_question(instruction: str, sources: str, question: str) -> Record:
    return qa_record(sources, question)


def _qa_texts(records: list[Record]) -> list[str]:
    """Questions share their paragraph: one text per context, with its questions."""
    questions: dict[str, list[str]] = {}
    for r in records:
        questions.setdefault(r.fields["context"], []).append(r.fields["question"])
    return ["\n".join([context, *asked]) for context, asked in questions.items()]


def _summary_keys(task: Task) -> tuple[str, str]:
    return task.summarization.document_field, task.summarization.summary_field


def _summary_row(row: dict, task: Task) -> dict:
    """The document and summary under the standard keys (task.summarization names the file's keys)."""
    document, summary = _summary_keys(task)
    renamed = {k: v for k, v in row.items() if k not in ("document", "summary")}
    renamed.update(document=row.get(document), summary=row.get(summary))
    return renamed


def _summary_read(row: dict, spec: Format) -> Record:
    fields = {k: row.get(k, "") for k in spec.fields}
    extra = row.get("references")  # more summaries to score against
    if isinstance(extra, list) and all(isinstance(r, str) and r.strip() for r in extra):
        fields["references"] = [fields["summary"], *extra]
    return Record(fields)


def _score_check(row: dict) -> str:
    score = row.get("score")
    return "'score' missing or not a number" if isinstance(score, bool) or not isinstance(score, (int, float)) else ""


def _scored_read(row: dict, spec: Format) -> Record:
    return Record({**{k: row.get(k, "") for k in spec.fields}, "score": float(row["score"])})


ALPACA_TEMPLATE = ("Below is an instruction that describes a task{with_input}. Write a response that appropriately "
                   "completes the request.\n\n### Instruction:\n{instruction}\n\n{input_block}### Response:\n")

# the table; `auto` tries them in this order
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("chat", keys=("messages",), conversation=True, matches=chat.is_chat, normalize=chat.as_chat,
           check=chat.chat_problem,
           read=lambda row, spec: chat.chat_record(row), prompt=chat.chat_prompt, reference=chat.chat_reference,
           example=chat.chat_example, question=chat.chat_question, texts=chat.chat_texts),
    Format("summarization", ("document", "summary"), source=("document",), target="summary", prefix=" ",
           template="{document}\n\nTL;DR:", metrics=ROUGE,
           matches=lambda row, task: set(_summary_keys(task)) <= set(row), normalize=_summary_row,
           read=_summary_read),
    Format("translation", ("source", "target"), source=("source",), target="target", prefix=" ",
           template="{source_lang}: {source}\n{target_lang}:", metrics=("bleu", "chrf"), aligned=True),
    Format("completion", ("prompt", "completion"), source=("prompt",), target="completion", template="{prompt}",
           question=_completion_question),
    Format("alpaca", ("instruction", "output"), ("input",), source=("input", "instruction"), target="output",
           template=ALPACA_TEMPLATE, values=_alpaca_values, question=_alpaca_question),
    Format("qa", ("context", "question"), source=("context",), target="answer", prefix=" ",
           template="Context: {context}\nQuestion: {question}\nAnswer:", metrics=("exact", "f1"), spans=True,
           keys=("context", "question", "answers"),
           check=_qa_check, read=_qa_read, question=_qa_question, texts=_qa_texts),
    Format("pairs", ("query", "positive"), ("negative",), metrics=("recall1", "mrr"), encoder=True),
    Format("sts", ("sentence1", "sentence2"), metrics=("spearman",), encoder=True, label="score",
           check=_score_check, read=_scored_read),
)}


def get_format(name: str) -> Format:
    """The registered format called `name`; an unknown name is an error that lists them."""
    if name not in FORMATS:
        raise GptkitError(f"unknown task format {name!r} (task.format); the formats: {', '.join(FORMATS)} "
                          f"(or auto, to tell them apart by the data)")
    return FORMATS[name]


def aligned_format() -> Format:
    """The format of aligned text files (a path with {lang})."""
    return next(f for f in FORMATS.values() if f.aligned)
