"""The request bodies of the OpenAI-compatible routes, and how each maps onto a `Decoding`.

Fields mean what they mean in OpenAI's API; `top_k`, `min_p` and `repetition_penalty` are the
extensions vLLM also takes. Types are strict, as OpenAI's are (`"max_tokens": "5"` is refused).
A field gptkit does not implement is refused with a 400 that names it, never silently ignored;
OpenAI fields that gptkit lacks are accepted only at a value that changes nothing (`"tools": []`).
Text must be valid Unicode: a lone surrogate (`"\\ud800"`) is refused.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import GptkitError
from ..generate import Decoding
from .errors import ApiError

TokenId = Annotated[int, Field(ge=0)]
MAX_STOP_CHARS = 256  # a stop string is matched against each new piece of text: long ones cost every token


class _Body(BaseModel):
    """Strict types, no unknown fields, valid Unicode; `neutral` lists the OpenAI fields gptkit lacks and the
    values of each that change nothing."""

    model_config = ConfigDict(extra="forbid", strict=True)
    neutral: ClassVar[dict[str, tuple]] = {}

    @model_validator(mode="before")
    @classmethod
    def _accepted(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        _check_unicode(data, "")
        for name, values in cls.neutral.items():
            if name in data:
                if not any(type(data[name]) is type(v) and data[name] == v for v in values):  # true is not 1
                    raise ApiError(400, f"{name} is not supported by gptkit (accepted only as "
                                        f"{' or '.join(map(_json, values))})", name, "unsupported_parameter")
                data = {k: v for k, v in data.items() if k != name}
        return data


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampled(_Body):
    """What completions and chat share: the model and how to decode."""

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int | None = Field(None, ge=1)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float = Field(1.0, ge=0.01, le=100)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, lt=2**64)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    def decoding(self, max_new_tokens: int, eot_id: int | None) -> Decoding:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise ApiError(400, f"{name} is not supported by gptkit; use repetition_penalty (> 1 discourages "
                                    f"repeats) instead", name, "unsupported_parameter")
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stop) > 4 or any(len(s) > MAX_STOP_CHARS for s in stop):
            raise ApiError(400, f"stop takes at most 4 sequences of at most {MAX_STOP_CHARS} characters", "stop")
        try:
            return Decoding(max_new_tokens, self.temperature, self.top_k, None if self.top_p == 1 else self.top_p,
                            self.min_p, self.repetition_penalty, tuple(stop),
                            () if eot_id is None else (eot_id,), self.seed, self._logit_bias())
        except GptkitError as e:
            message = str(e).removeprefix("decoding: ")
            raise ApiError(400, message, message.split()[0]) from None

    def _logit_bias(self) -> tuple[tuple[int, float], ...]:
        bias = self.logit_bias or {}
        if not all(k.isascii() and k.isdigit() and len(k) < 10 for k in bias):
            raise ApiError(400, "logit_bias: keys are token ids, written as strings of digits", "logit_bias")
        return tuple(sorted((int(k), v) for k, v in bias.items()))

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_Sampled):
    neutral: ClassVar[dict[str, tuple]] = {"suffix": (None, ""), "best_of": (None, 1)}

    prompt: str | list[str] | list[TokenId] | list[list[TokenId]]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for completions
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)


class Message(_Body):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]]
    name: str | None = None  # passed to the chat template, which may use it

    @field_validator("content")
    @classmethod
    def _text(cls, content: str | list[dict]) -> str:
        """Content parts (what LangChain and the SDKs' helpers send) as one text; only text parts are read."""
        if isinstance(content, str):
            return content
        texts = []
        for part in content:
            if part.get("type") != "text":
                raise ValueError(f"a {part.get('type')!r} part: gptkit models read text only (parts of type "
                                 f"'text')")
            if not isinstance(part.get("text"), str) or set(part) != {"type", "text"}:
                raise ValueError("a text part is {\"type\": \"text\", \"text\": \"...\"}")
            texts.append(part["text"])
        return "\n".join(texts)


class ChatRequest(_Sampled):
    neutral: ClassVar[dict[str, tuple]] = {
        "tools": (None, []), "tool_choice": (None, "none", "auto"), "parallel_tool_calls": (None, True, False),
        "functions": (None, []), "function_call": (None, "none", "auto"),
        "response_format": (None, {"type": "text"}), "modalities": (None, ["text"]), "store": (None, False),
    }

    messages: list[Message]
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class EmbeddingRequest(_Body):
    model: str
    input: str | list[str] | list[TokenId] | list[list[TokenId]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)  # only the encoder's own size: gptkit does not shorten vectors
    user: str | None = None


class SearchRequest(_Body):
    """gptkit's route for an index: the top k chunks for a query."""

    model: str
    query: str = Field(min_length=1)
    k: int = Field(5, ge=1, le=100)
    mode: Literal["dense", "bm25", "hybrid"] | None = None


class AnswerRequest(_Body):
    """gptkit's route for extractive question answering: a span of the context."""

    model: str
    context: str = Field(min_length=1)
    question: str = Field(min_length=1)


def _check_unicode(value: Any, path: str, depth: int = 0) -> None:
    """Refuse lone surrogates anywhere in the body: they cannot be encoded, tokenized or sent back."""
    if depth > 32:  # no request of the API nests this deep
        raise ApiError(400, f"{path}: the body nests too deeply", path)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, f"{path or 'body'}: not valid Unicode text (it holds a lone surrogate)",
                           path or None) from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_unicode(k, path)
            _check_unicode(v, f"{path}.{k}" if path else str(k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_unicode(v, f"{path}.{i}", depth + 1)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
