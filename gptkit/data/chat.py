"""The chat format: conversations as messages, rendered by a Jinja chat template (sandboxed).

Every assistant turn is a target; the rest of the rendered conversation is context. An Alpaca or
prompt/completion row read as chat becomes one user turn and the assistant's reply.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import GptkitError
from ..tokenizer import Tokenizer
from .records import Example, Record

if TYPE_CHECKING:
    from .tasks import Task

# gptkit's own format: "<|role|>\n" + content (+ eos after an assistant's turn) + "\n" per message. The newlines
# are written as expressions, so Hugging Face's Jinja settings (trim_blocks) render it the same.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message.role + '|>\\n' + message.content }}"
    "{% if message.role == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
# The same format as checkpoints written before chat templates were rendered with Hugging Face's settings stored it.
_OLD_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message.role }}|>\n{{ message.content }}"
    "{% if message.role == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
ROLES = ("system", "user", "assistant")


def render_chat(template: str, messages: list[dict], add_generation_prompt: bool = False,
                eos_token: str = "", bos_token: str = "") -> str:
    """Messages through a chat template as transformers' `apply_chat_template` renders it: the same Jinja
    settings and helpers, sandboxed (a template from a checkpoint runs no code)."""
    from jinja2 import TemplateError

    try:
        compiled = _environment().from_string(CHAT_TEMPLATE if template == _OLD_CHAT_TEMPLATE
                                              else template)
        return compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               eos_token=eos_token or "<|endoftext|>", bos_token=bos_token)
    except TemplateError as e:
        raise GptkitError(f"the chat template failed: {e}; fix task.chat_template") from e


@functools.cache
def _environment():
    """Hugging Face's chat-template environment: trim_blocks, lstrip_blocks, loop controls, JSON without
    HTML escaping, raise_exception and strftime_now."""
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=lambda f: datetime.now().strftime(f))
    return env


def trained_chat_template(meta: dict) -> str | None:
    """The chat template a checkpoint was fine-tuned with (its config.json's task), if it was a chat task."""
    task = meta.get("task") or {}
    if task.get("format") != "chat" or not task.get("chat_template"):
        return None
    return CHAT_TEMPLATE if task["chat_template"] == _OLD_CHAT_TEMPLATE else task["chat_template"]


def as_chat(row: dict, task: Task) -> dict:
    """An Alpaca or prompt/completion row as one user turn and the assistant's reply (else unchanged)."""
    if "messages" in row:
        return row
    if isinstance(row.get("instruction"), str) and isinstance(row.get("output"), str):
        extra = row.get("input") if isinstance(row.get("input"), str) else ""
        user = row["instruction"] + (f"\n\n{extra}" if extra.strip() else "")
        return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]}
    if isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
        return {"messages": [{"role": "user", "content": row["prompt"]},
                             {"role": "assistant", "content": row["completion"]}]}
    return row


def is_chat(row: dict, task: Task) -> bool:
    return "messages" in row


def chat_problem(row: dict) -> str:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return "no list of messages"
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return f"a message needs a role ({', '.join(ROLES)}) and a string content"
    return "" if any(m["role"] == "assistant" for m in messages) else "no assistant message to learn"


def chat_record(row: dict) -> Record:
    return Record(messages=tuple({"role": m["role"], "content": m["content"]} for m in row["messages"]))


def chat_prompt(task: Task, record: Record) -> str:
    """The conversation up to its last user turn, ending where the assistant's reply begins."""
    messages = list(record.messages)
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    return render_chat(task.chat_template, messages, add_generation_prompt=True)


def chat_reference(record: Record) -> str:
    return record.messages[-1]["content"] if record.messages else ""


def chat_example(task: Task, record: Record, tokenizer: Tokenizer, limit: int) -> Example:
    """Every assistant turn (to its end-of-text) a target; a too-long conversation keeps its newest tokens."""
    ids, targets = [], []
    eos = tokenizer.eot_token
    for end, message in enumerate(record.messages, 1):
        for text, target in _pieces(task.chat_template, list(record.messages), end, message["role"], eos):
            piece = tokenizer.encode(text)
            ids += piece
            targets += [target] * len(piece)
    truncated = len(ids) > limit
    return Example(ids[-limit:], targets[-limit:], truncated)


def _pieces(template: str, messages: list[dict], end: int, role: str, eos: str) -> list[tuple[str, bool]]:
    """The text that message `end` adds to the rendered conversation, each piece a target or not."""
    before = render_chat(template, messages[: end - 1], eos_token=eos)
    if role != "assistant":
        return [(render_chat(template, messages[:end], eos_token=eos)[len(before):], False)]
    # the generation prompt is context, the turn is the target
    head = render_chat(template, messages[: end - 1], add_generation_prompt=True, eos_token=eos)
    turn = render_chat(template, messages[:end], eos_token=eos)[len(head):]
    cut = turn.find(eos) + len(eos) if eos in turn else len(turn)  # what follows end-of-text: context
    return [(head[len(before):], False), (turn[:cut], True), (turn[cut:], False)]


def chat_question(sources: str, question: str, instruction: str) -> Record:
    return Record(messages=({"role": "user", "content": f"{instruction}\n\n{sources}\n\nQuestion: {question}"},))


def chat_texts(records: list[Record]) -> list[str]:
    return ["\n".join(m["content"] for m in r.messages) for r in records]
