"""Fine-tuning examples: task files read into records, rendered into prompts, tokenized with a loss mask.

    task = Task.from_config(TaskConfig(format="translation"))
    records, stats = read_records("multi30k/train.{lang}.gz", task)
    example = task.example(records[0], tokenizer, block_size=128)  # ids, and which of them are targets

Formats (`auto` tells them apart by the path or the first record's keys):

    translation   JSONL {"source", "target"}, or two aligned text files: one path with {lang}
    completion    JSONL/JSON {"prompt", "completion"}
    alpaca        JSONL/JSON {"instruction", "input", "output"}
    chat          JSONL/JSON {"messages": [{"role", "content"}, ...]}, rendered by the chat template
                  (with format = "chat", Alpaca and prompt/completion rows become a user turn and a reply)
    qa            SQuAD v1.1/v2.0 JSON, or JSONL {"context", "question", "answers"}; no answers = unanswerable
    summarization JSONL {"document", "summary"} (other keys: task.document_field, task.summary_field)
    pairs         JSONL {"query", "positive", "negative"?}: texts that should embed close (an encoder's training)
    sts           JSONL {"sentence1", "sentence2", "score"}: scored sentence pairs (STS: 0-5)

A record becomes pieces of text, each a target or not: the prompt (no loss) and the completion
followed by end-of-text (loss), or for chat every assistant turn. The task (format, templates,
languages) is stored in the checkpoint, so `translate`, `generate --chat` and the server render
prompts exactly as fine-tuning did.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import TaskConfig
from ..errors import GptkitError
from ..tokenizer import Tokenizer

TEMPLATES = {
    "translation": "{source_lang}: {source}\n{target_lang}:",
    "completion": "{prompt}",
    "qa": "Context: {context}\nQuestion: {question}\nAnswer:",
    "summarization": "{document}\n\nTL;DR:",
    "alpaca": "Below is an instruction that describes a task{with_input}. Write a response that appropriately "
              "completes the request.\n\n### Instruction:\n{instruction}\n\n{input_block}### Response:\n",
}
# the required fields, the fields a too-long prompt gives up tokens from (the longest first), the completion
FIELDS = {"translation": ("source", "target"), "completion": ("prompt", "completion"),
          "alpaca": ("instruction", "output"), "qa": ("context", "question"), "summarization": ("document", "summary"),
          "pairs": ("query", "positive"), "sts": ("sentence1", "sentence2")}
OPTIONAL_FIELDS = {"alpaca": ("input",), "pairs": ("negative",)}
EMBEDDING_FORMATS = ("pairs", "sts")  # an encoder's training data: texts, not prompts and completions
SOURCE_FIELDS = {"translation": ("source",), "completion": ("prompt",), "alpaca": ("input", "instruction"),
                 "qa": ("context",), "summarization": ("document",)}
TARGET_FIELD = {"translation": "target", "completion": "completion", "alpaca": "output", "qa": "answer",
                "summarization": "summary"}
COMPLETION_PREFIX = {"translation": " ", "completion": "", "alpaca": "", "qa": " ", "summarization": " "}
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message.role }}|>\n{{ message.content }}"
    "{% if message.role == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
LANGUAGES = {"en": "English", "de": "German", "fr": "French", "cs": "Czech", "es": "Spanish", "it": "Italian",
             "pt": "Portuguese", "ru": "Russian", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "ar": "Arabic"}
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Record:
    """One example as text: `fields` of its format (or chat `messages`)."""

    fields: dict = field(default_factory=dict)
    messages: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Example:
    """Token ids and, per id, whether the model learns to predict it (the completion) or not (the prompt).

    `labels`, when set, are the row's labels instead (one per input position: len(ids) - 1), e.g. spans.
    """

    ids: list[int]
    targets: list[bool]
    truncated: bool = False
    labels: list[int] | None = None


@dataclass
class TaskStats:
    """What reading a task file found: records kept, lines skipped as malformed (and the first reason)."""

    records: int = 0
    malformed: int = 0
    first_problem: str = ""

    def skip(self, where: str, why: str) -> None:
        self.malformed += 1
        self.first_problem = self.first_problem or f"{where}: {why}"


@dataclass(frozen=True)
class Task:
    """How records become prompts and examples; `to_dict` is what a checkpoint stores."""

    format: str
    template: str = ""
    chat_template: str = CHAT_TEMPLATE
    source_lang: str = "en"
    target_lang: str = "de"
    document_field: str = "document"  # summarization: the keys read as document and summary
    summary_field: str = "summary"
    answer: str = "extract"  # qa: "extract" (a span head picks a span of the context) or "generate"
    doc_stride: int = 128  # qa extract: context windows (gptkit.data.qa)
    max_question_tokens: int = 64
    max_answer_tokens: int = 30

    @classmethod
    def from_config(cls, config: TaskConfig, format: str | None = None) -> Task:
        return cls(format or config.format, config.template, config.chat_template or CHAT_TEMPLATE,
                   config.source_lang, config.target_lang, config.document_field, config.summary_field,
                   config.answer, config.doc_stride, config.max_question_tokens, config.max_answer_tokens)

    @property
    def extractive(self) -> bool:
        """Whether answers are spans picked by a span head (not generated)."""
        return self.format == "qa" and self.answer == "extract"

    @classmethod
    def from_dict(cls, data: dict) -> Task:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return asdict(self)

    # -- prompts --------------------------------------------------------------------
    def prompt(self, record: Record, tokenizer: Tokenizer | None = None, max_tokens: int | None = None) -> str:
        """The text the model continues; with max_tokens, the source field is cut until the prompt fits."""
        if self.format == "chat":
            messages = list(record.messages)
            if messages and messages[-1]["role"] == "assistant":
                messages = messages[:-1]
            return self.render_chat(messages, add_generation_prompt=True)
        fields = dict(record.fields)
        text = self._render(fields)
        if max_tokens is None or tokenizer is None:
            return text
        for _ in range(8):  # cutting tokens and encoding the text again may be off by a token or two
            excess = len(tokenizer.encode(text)) - max_tokens
            if excess <= 0:
                return text
            longest = max(SOURCE_FIELDS[self.format], key=lambda k: len(fields.get(k, "")))
            kept = tokenizer.encode(fields.get(longest, ""))
            if not kept:
                break
            fields[longest] = tokenizer.decode(kept[: max(0, len(kept) - excess)])
            text = self._render(fields)
        raise GptkitError(f"the {self.format} prompt cannot be cut to {max_tokens} tokens: shorten its template")

    def reference(self, record: Record) -> str:
        """The completion the record expects (the one it trains on)."""
        if self.format == "chat":
            return record.messages[-1]["content"] if record.messages else ""
        return record.fields[TARGET_FIELD[self.format]]

    def references(self, record: Record) -> list[str]:
        """Every reference the record's prediction is scored against (a question's gold answers)."""
        return list(record.fields.get("answers") or record.fields.get("references") or [self.reference(record)])

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = False, eos_token: str = "") -> str:
        """Messages through the chat template (Jinja, sandboxed: a template from a checkpoint runs no code)."""
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        try:
            template = ImmutableSandboxedEnvironment(keep_trailing_newline=True).from_string(self.chat_template)
            return template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                   eos_token=eos_token or "<|endoftext|>")
        except TemplateError as e:
            raise GptkitError(f"the chat template failed: {e}; fix task.chat_template") from e

    def _render(self, fields: dict) -> str:
        try:
            return (self.template or TEMPLATES[self.format]).format(**self._values(fields))
        except (KeyError, IndexError, ValueError) as e:
            raise GptkitError(f"the {self.format} template {self.template!r} cannot be filled ({e!r}); its fields "
                              f"are {', '.join('{' + k + '}' for k in self._values(fields))}") from e

    def _values(self, fields: dict) -> dict:
        values = {**fields, "source_lang": LANGUAGES.get(self.source_lang, self.source_lang),
                  "target_lang": LANGUAGES.get(self.target_lang, self.target_lang)}
        if self.format == "alpaca":
            values.setdefault("input", "")
            values["with_input"] = ", paired with an input that provides further context" if values["input"] else ""
            values["input_block"] = f"### Input:\n{values['input']}\n\n" if values["input"] else ""
        return values

    # -- examples -------------------------------------------------------------------
    def example(self, record: Record, tokenizer: Tokenizer, block_size: int) -> Example:
        """Token ids (at most block_size + 1: inputs and targets of one row) with their target flags.

        A too-long example gives up source tokens first (the prompt's source field; for chat the
        oldest tokens), then completion tokens from its end.
        """
        if tokenizer.eot_id is None:
            raise GptkitError("fine-tuning needs a tokenizer with an end-of-text token to end completions")
        limit = block_size + 1
        if self.format == "chat":
            return self._chat_example(record, tokenizer, limit)
        completion = tokenizer.encode(COMPLETION_PREFIX[self.format] + self.reference(record)) + [tokenizer.eot_id]
        prompt_budget = max(limit - len(completion), limit // 2)  # a prompt keeps at least half of the row
        prompt = tokenizer.encode(self.prompt(record))
        truncated = len(prompt) + len(completion) > limit
        if len(prompt) > prompt_budget:
            prompt = tokenizer.encode(self.prompt(record, tokenizer, prompt_budget))
        completion = completion[: limit - len(prompt)]
        return Example(prompt + completion, [False] * len(prompt) + [True] * len(completion), truncated)

    def examples(self, records: list[Record], tokenizer: Tokenizer, block_size: int) -> list[Example]:
        """`example` for every record, encoding them in batches (the tokenizer's threads)."""
        if self.format == "chat" or tokenizer.eot_id is None:
            return [self.example(r, tokenizer, block_size) for r in records]
        prompts = tokenizer.encode_batch([self.prompt(r) for r in records])
        completions = tokenizer.encode_batch([COMPLETION_PREFIX[self.format] + self.reference(r) for r in records])
        examples = []
        for record, prompt, completion in zip(records, prompts, completions):
            if len(prompt) + len(completion) + 1 > block_size + 1:
                examples.append(self.example(record, tokenizer, block_size))
            else:
                ids = prompt + completion + [tokenizer.eot_id]
                examples.append(Example(ids, [False] * len(prompt) + [True] * (len(completion) + 1)))
        return examples

    def _chat_example(self, record: Record, tokenizer: Tokenizer, limit: int) -> Example:
        ids, targets = [], []
        eos = tokenizer.eot_token
        for end, message in enumerate(record.messages, 1):
            before = self.render_chat(list(record.messages[: end - 1]), eos_token=eos)
            if message["role"] == "assistant":  # the generation prompt is context, the turn is the target
                head = self.render_chat(list(record.messages[: end - 1]), add_generation_prompt=True, eos_token=eos)
                turn = self.render_chat(list(record.messages[:end]), eos_token=eos)[len(head):]
                cut = turn.find(eos) + len(eos) if eos in turn else len(turn)  # what follows end-of-text: context
                pieces = [(head[len(before):], False), (turn[:cut], True), (turn[cut:], False)]
            else:
                pieces = [(self.render_chat(list(record.messages[:end]), eos_token=eos)[len(before):], False)]
            for text, target in pieces:
                piece = tokenizer.encode(text)
                ids += piece
                targets += [target] * len(piece)
        truncated = len(ids) > limit
        return Example(ids[-limit:], targets[-limit:], truncated)


# -- reading ------------------------------------------------------------------------


def read_records(path: str | Path, task: Task, on_malformed: str = "skip") -> tuple[Task, list[Record], TaskStats]:
    """The records of a task file (with `auto`, the task gets the format found), and what reading found."""
    path = str(path)
    stats = TaskStats()
    if "{lang}" in path:
        if task.format not in ("auto", "translation"):
            raise GptkitError(f"{path}: a {{lang}} path holds aligned translation files, not {task.format} data")
        task = Task(**{**task.to_dict(), "format": "translation"})
        records = list(_aligned(path, task, stats, on_malformed))
    else:
        rows = list(_json_rows(Path(path), stats, on_malformed))
        fmt = task.format if task.format != "auto" else _guess_format(path, rows, task, stats)
        task = Task(**{**task.to_dict(), "format": fmt})
        if fmt == "summarization":
            rows = [(where, _renamed(row, task)) for where, row in rows]
        records = [r for where, row in rows if (r := _record(row, fmt, where, stats, on_malformed)) is not None]
    stats.records = len(records)
    if not records:
        found = f" ({stats.malformed} malformed; first: {stats.first_problem})" if stats.malformed else ""
        raise GptkitError(f"{path}: no usable {task.format} examples{found}")
    return task, records, stats


def _open_text(path: Path):
    if path.is_dir():
        raise GptkitError(f"{path} is a directory; give a file of examples (JSON lines, or aligned text files as "
                          f"train.{{lang}})")
    if not path.is_file():
        raise GptkitError(f"{path}: no such file")
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def _lines(path: Path) -> list[str]:
    try:
        with _open_text(path) as f:
            return f.read().split("\n")
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise GptkitError(f"{path}: not readable as UTF-8 text ({e})") from e


def _aligned(pattern: str, task: Task, stats: TaskStats, on_malformed: str) -> Iterator[Record]:
    source_path, target_path = (Path(pattern.replace("{lang}", lang)) for lang in (task.source_lang, task.target_lang))
    sources, targets = _lines(source_path), _lines(target_path)
    for lines in (sources, targets):
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line
    if len(sources) != len(targets):
        raise GptkitError(f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}: "
                          f"aligned files must translate line by line")
    for number, (source, target) in enumerate(zip(sources, targets), 1):
        if source.strip() and target.strip():
            yield Record({"source": source.strip(), "target": target.strip()})
        else:
            _malformed(stats, f"{source_path.name} line {number}", "an empty side", on_malformed)


def _json_rows(path: Path, stats: TaskStats, on_malformed: str) -> Iterator[tuple[str, object]]:
    text = "\n".join(_lines(path))
    if path.name.removesuffix(".gz").endswith(".json"):
        try:
            rows = json.loads(text)
        except ValueError as e:
            raise GptkitError(f"{path}: not valid JSON ({e}); a .json file holds one list of examples") from e
        if isinstance(rows, dict) and isinstance(rows.get("data"), list):  # SQuAD: articles > paragraphs > qas
            yield from _squad_rows(path, rows["data"], stats, on_malformed)
            return
        if not isinstance(rows, list):
            raise GptkitError(f"{path}: a .json file must hold a list of examples (or use JSONL, one per line)")
        yield from ((f"{path.name} item {i}", row) for i, row in enumerate(rows, 1))
        return
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield f"{path.name} line {number}", json.loads(line)
        except ValueError as e:
            _malformed(stats, f"{path.name} line {number}", f"not JSON ({e})", on_malformed)


def _squad_rows(path: Path, articles: list, stats: TaskStats, on_malformed: str) -> Iterator[tuple[str, dict]]:
    """One {"id", "context", "question", "answers", "is_impossible"} row per SQuAD question."""
    for a, article in enumerate(articles, 1):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            _malformed(stats, f"{path.name} article {a}", "no list of paragraphs", on_malformed)
            continue
        for p, paragraph in enumerate(paragraphs, 1):
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(qas, list):
                _malformed(stats, f"{path.name} article {a} paragraph {p}", "no list of qas", on_malformed)
                continue
            for q, qa in enumerate(qas, 1):
                row = {**qa, "context": paragraph.get("context")} if isinstance(qa, dict) else qa
                yield f"{path.name} article {a} paragraph {p} question {q}", row


def _renamed(row: object, task: Task) -> object:
    """A summarization row with its document and summary under the standard keys."""
    if not isinstance(row, dict):
        return row
    renamed = {k: v for k, v in row.items() if k not in ("document", "summary")}
    renamed.update(document=row.get(task.document_field), summary=row.get(task.summary_field))
    return renamed


def _answers(row: dict) -> tuple[list[str], list[int]] | None:
    """A QA row's gold answer texts and character starts (-1: unknown); None if malformed.

    Accepted: [{"text", "answer_start"}, ...], {"text": [...], "answer_start": [...]} (datasets), [str, ...].
    """
    answers = row.get("answers", [])
    if row.get("is_impossible"):
        return [], []
    if isinstance(answers, dict):
        texts, starts = answers.get("text", []), answers.get("answer_start", [])
        answers = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)] if len(texts) == len(starts) \
            else None
    if not isinstance(answers, list):
        return None
    texts, starts = [], []
    for answer in answers:
        text, start = (answer, -1) if isinstance(answer, str) else \
            (answer.get("text"), answer.get("answer_start", -1)) if isinstance(answer, dict) else (None, None)
        if not isinstance(text, str) or not isinstance(start, int) or not text.strip():
            return None
        texts.append(text)
        starts.append(start)
    return texts, starts


def _qa_record(row: dict) -> Record:
    """A checked QA row as a record; an answer whose start does not point at its text is looked up."""
    texts, starts = _answers(row)
    context = row["context"]
    starts = [s if s >= 0 and context[s : s + len(t)] == t else context.find(t) for t, s in zip(texts, starts)]
    return Record({"id": str(row.get("id", "")), "context": context, "question": row["question"],
                   "answer": texts[0] if texts else "", "answers": texts, "answer_starts": starts})


def _guess_format(path: str, rows: list[tuple[str, object]], task: Task, stats: TaskStats) -> str:
    first = next((row for _, row in rows if isinstance(row, dict)), None)
    if first is None:
        seen = f" ({stats.malformed} lines are not JSON; first: {stats.first_problem})" if stats.malformed else ""
        raise GptkitError(f"{path}: cannot tell the format: no JSON objects in it{seen}; fine-tuning data is JSON "
                          f"lines (one example per line), a JSON array, or aligned text files (data=train.{{lang}})")
    summary = ("summarization", (task.document_field, task.summary_field))
    for fmt, keys in (("chat", ("messages",)), summary, *FIELDS.items()):
        if set(keys) <= set(first):
            return fmt
    raise GptkitError(f"{path}: cannot tell the format from the keys {sorted(first)}; set task.format "
                      f"(translation: source/target, completion: prompt/completion, alpaca: instruction/input/output, "
                      f"chat: messages, qa: context/question/answers, summarization: document/summary or "
                      f"task.document_field/summary_field)")


def _record(row: object, fmt: str, where: str, stats: TaskStats, on_malformed: str) -> Record | None:
    if fmt == "chat" and isinstance(row, dict) and "messages" not in row:
        row = _as_chat(row)
    problem = _problem(row, fmt)
    if problem:
        _malformed(stats, where, problem, on_malformed)
        return None
    if fmt == "chat":
        return Record(messages=tuple({"role": m["role"], "content": m["content"]} for m in row["messages"]))
    if fmt == "qa":
        return _qa_record(row)
    fields = {k: row.get(k, "") for k in FIELDS[fmt] + OPTIONAL_FIELDS.get(fmt, ())}
    if fmt == "sts":
        fields["score"] = float(row["score"])
    extra = row.get("references")  # more summaries to score against
    if fmt == "summarization" and isinstance(extra, list) and all(isinstance(r, str) and r.strip() for r in extra):
        fields["references"] = [fields["summary"], *extra]
    return Record(fields)


def _as_chat(row: dict) -> dict:
    """An Alpaca or prompt/completion row as one user turn and the assistant's reply (else unchanged)."""
    if isinstance(row.get("instruction"), str) and isinstance(row.get("output"), str):
        extra = row.get("input") if isinstance(row.get("input"), str) else ""
        user = row["instruction"] + (f"\n\n{extra}" if extra.strip() else "")
        return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]}
    if isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
        return {"messages": [{"role": "user", "content": row["prompt"]},
                             {"role": "assistant", "content": row["completion"]}]}
    return row


def _problem(row: object, fmt: str) -> str:
    """Why `row` is not a `fmt` example ("" if it is one)."""
    if not isinstance(row, dict):
        return "not a JSON object"
    if fmt == "chat":
        return _chat_problem(row.get("messages"))
    for key in FIELDS[fmt]:
        if not isinstance(row.get(key), str) or not row[key].strip():
            return f"{key!r} missing, empty or not a string"
    for key in OPTIONAL_FIELDS.get(fmt, ()):
        if not isinstance(row.get(key, ""), str):
            return f"{key!r} is not a string"
    if fmt == "sts" and (isinstance(row.get("score"), bool) or not isinstance(row.get("score"), (int, float))):
        return "'score' missing or not a number"
    if fmt == "qa" and _answers(row) is None:
        return "'answers' is not a list of {text, answer_start} (or of strings)"
    return ""


def _chat_problem(messages: object) -> str:
    if not isinstance(messages, list) or not messages:
        return "no list of messages"
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return f"a message needs a role ({', '.join(ROLES)}) and a string content"
    return "" if any(m["role"] == "assistant" for m in messages) else "no assistant message to learn"


def _malformed(stats: TaskStats, where: str, why: str, on_malformed: str) -> None:
    if on_malformed == "error":
        raise GptkitError(f"{where}: {why} (set task.on_malformed=skip to skip such lines)")
    stats.skip(where, why)
