"""Fine-tuning examples: records rendered into prompts and tokenized with a loss mask.

    task = Task.from_config(TaskConfig(format="translation"))
    task, records, stats = read_records("multi30k/train.{lang}.gz", task)
    example = task.example(records[0], tokenizer, block_size=128)  # ids, and which of them are targets

Formats (gptkit.data.formats; `auto` tells them apart by the path or the first record's keys):

    translation   JSONL {"source", "target"}, or two aligned text files: one path with {lang}
    completion    JSONL/JSON {"prompt", "completion"}
    alpaca        JSONL/JSON {"instruction", "input", "output"}
    chat          JSONL/JSON {"messages": [{"role", "content"}, ...]}, rendered by the chat template
                  (with format = "chat", Alpaca and prompt/completion rows become a user turn and a reply)
    qa            SQuAD v1.1/v2.0 JSON, or JSONL {"context", "question", "answers"}; no answers = unanswerable
    summarization JSONL {"document", "summary"} (other keys: [task.summarization] document_field, summary_field)
    pairs         JSONL {"query", "positive", "negative"?}: texts that should embed close (an encoder's training)
    sts           JSONL {"sentence1", "sentence2", "score"}: scored sentence pairs (STS: 0-5)

A record becomes pieces of text, each a target or not: the prompt (no loss) and the completion
followed by end-of-text (loss), or for chat every assistant turn. The task (format, templates,
languages) is stored in the checkpoint, so `translate`, `generate --chat` and the server render
prompts exactly as fine-tuning did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..config import MOVED_TASK_KEYS, QaSettings, SummarizationSettings, TaskConfig, TranslationSettings
from ..errors import GptkitError
from ..tokenizer import Tokenizer
from .chat import CHAT_TEMPLATE
from .formats import Format, get_format
from .records import Example, Record

LANGUAGES = {"en": "English", "de": "German", "fr": "French", "cs": "Czech", "es": "Spanish", "it": "Italian",
             "pt": "Portuguese", "ru": "Russian", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "ar": "Arabic"}
_SECTIONS = {"translation": TranslationSettings, "qa": QaSettings, "summarization": SummarizationSettings}


@dataclass(frozen=True)
class Task:
    """How records become prompts and examples; `to_dict` is what a checkpoint stores."""

    format: str  # a registered format (gptkit.data.formats), or "auto" before the data is read
    template: str = ""  # "" = the format's
    chat_template: str = CHAT_TEMPLATE
    translation: TranslationSettings = field(default_factory=TranslationSettings)
    qa: QaSettings = field(default_factory=QaSettings)
    summarization: SummarizationSettings = field(default_factory=SummarizationSettings)

    def __post_init__(self):
        if self.format != "auto":
            get_format(self.format)

    @classmethod
    def from_config(cls, config: TaskConfig, format: str | None = None) -> Task:
        return cls(format or config.format, config.template, config.chat_template or CHAT_TEMPLATE,
                   config.translation, config.qa, config.summarization)

    @classmethod
    def from_dict(cls, data: dict) -> Task:
        """A stored task; one saved with flat keys (source_lang, doc_stride, ...) is read into its sections."""
        sections = {name: dict(data.get(name) or {}) for name in _SECTIONS}
        for key, value in data.items():
            if MOVED_TASK_KEYS.get(key) in sections:
                sections[MOVED_TASK_KEYS[key]].setdefault(key, value)
        top = {k: v for k, v in data.items() if k in {"format", "template", "chat_template"}}
        return cls(**top, **{name: _SECTIONS[name](**values) for name, values in sections.items()})

    def to_dict(self) -> dict:
        return asdict(self)

    def with_format(self, format: str) -> Task:
        return replace(self, format=format)

    @property
    def spec(self) -> Format:
        """The format's definition (its fields, template, metrics and hooks)."""
        return get_format(self.format)

    @property
    def extractive(self) -> bool:
        """Whether answers are spans picked by a span head (not generated)."""
        return self.format != "auto" and self.spec.spans and self.qa.answer == "extract"

    # -- prompts --------------------------------------------------------------------
    def prompt(self, record: Record, tokenizer: Tokenizer | None = None, max_tokens: int | None = None) -> str:
        """The text the model continues; with max_tokens, the source field is cut until the prompt fits."""
        if self.spec.prompt is not None:
            return self.spec.prompt(self, record)
        fields = dict(record.fields)
        text = self._render(fields)
        if max_tokens is None or tokenizer is None:
            return text
        for _ in range(8):  # cutting tokens and encoding the text again may be off by a token or two
            excess = len(tokenizer.encode(text)) - max_tokens
            if excess <= 0:
                return text
            longest = max(self.spec.source, key=lambda k: len(fields.get(k, "")))
            kept = tokenizer.encode(fields.get(longest, ""))
            if not kept:
                break
            fields[longest] = tokenizer.decode(kept[: max(0, len(kept) - excess)])
            text = self._render(fields)
        raise GptkitError(f"the {self.format} prompt cannot be cut to {max_tokens} tokens: shorten its template")

    def reference(self, record: Record) -> str:
        """The completion the record expects (the one it trains on)."""
        if self.spec.reference is not None:
            return self.spec.reference(record)
        return record.fields[self.spec.target]

    def references(self, record: Record) -> list[str]:
        """Every reference the record's prediction is scored against (a question's gold answers)."""
        return list(record.fields.get("answers") or record.fields.get("references") or [self.reference(record)])

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = False, eos_token: str = "") -> str:
        """Messages through the task's chat template (Jinja, sandboxed: a template from a checkpoint runs no code)."""
        from .chat import render_chat

        return render_chat(self.chat_template, messages, add_generation_prompt, eos_token)

    def _render(self, fields: dict) -> str:
        try:
            return (self.template or self.spec.template).format(**self._values(fields))
        except (KeyError, IndexError, ValueError) as e:
            raise GptkitError(f"the {self.format} template {self.template!r} cannot be filled ({e!r}); its fields "
                              f"are {', '.join('{' + k + '}' for k in self._values(fields))}") from e

    def _values(self, fields: dict) -> dict:
        languages = self.translation
        return self.spec.values({**fields, "source_lang": LANGUAGES.get(languages.source_lang, languages.source_lang),
                                 "target_lang": LANGUAGES.get(languages.target_lang, languages.target_lang)})

    # -- examples -------------------------------------------------------------------
    def example(self, record: Record, tokenizer: Tokenizer, block_size: int) -> Example:
        """Token ids (at most block_size + 1: inputs and targets of one row) with their target flags.

        A too-long example gives up source tokens first (the prompt's source field; for chat the
        oldest tokens), then completion tokens from its end.
        """
        if tokenizer.eot_id is None:
            raise GptkitError("fine-tuning needs a tokenizer with an end-of-text token to end completions")
        limit = block_size + 1
        if self.spec.example is not None:
            return self.spec.example(self, record, tokenizer, limit)
        completion = tokenizer.encode(self.spec.prefix + self.reference(record)) + [tokenizer.eot_id]
        prompt_budget = max(limit - len(completion), limit // 2)  # a prompt keeps at least half of the row
        prompt = tokenizer.encode(self.prompt(record))
        truncated = len(prompt) + len(completion) > limit
        if len(prompt) > prompt_budget:
            prompt = tokenizer.encode(self.prompt(record, tokenizer, prompt_budget))
        completion = completion[: limit - len(prompt)]
        return Example(prompt + completion, [False] * len(prompt) + [True] * len(completion), truncated)

    def examples(self, records: list[Record], tokenizer: Tokenizer, block_size: int) -> list[Example]:
        """`example` for every record, encoding them in batches (the tokenizer's threads)."""
        if self.spec.example is not None or tokenizer.eot_id is None:
            return [self.example(r, tokenizer, block_size) for r in records]
        prompts = tokenizer.encode_batch([self.prompt(r) for r in records])
        completions = tokenizer.encode_batch([self.spec.prefix + self.reference(r) for r in records])
        examples = []
        for record, prompt, completion in zip(records, prompts, completions):
            if len(prompt) + len(completion) + 1 > block_size + 1:
                examples.append(self.example(record, tokenizer, block_size))
            else:
                ids = prompt + completion + [tokenizer.eot_id]
                examples.append(Example(ids, [False] * len(prompt) + [True] * (len(completion) + 1)))
        return examples
