"""The request bodies of the OpenAI-compatible routes, and how each maps onto a `Decoding`.

Fields mean what they mean in OpenAI's API; `top_k`, `min_p` and `repetition_penalty` are the
extensions vLLM also takes. `presence_penalty` and `frequency_penalty` have no gptkit counterpart:
a non-zero value is refused (use `repetition_penalty`), never silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import GptkitError
from ..generate import Decoding


class ApiError(Exception):
    """An error the client sees as OpenAI's error JSON with this HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Sampled(BaseModel):
    """What completions and chat share: the model and how to decode."""

    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int | None = Field(None, ge=1)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
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
                                    f"repeats) instead", name)
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stop) > 4:
            raise ApiError(400, f"stop takes at most 4 sequences, got {len(stop)}", "stop")
        try:
            return Decoding(max_new_tokens, self.temperature, self.top_k, None if self.top_p == 1 else self.top_p,
                            self.min_p, self.repetition_penalty, tuple(stop),
                            () if eot_id is None else (eot_id,), self.seed)
        except GptkitError as e:
            message = str(e).removeprefix("decoding: ")
            raise ApiError(400, message, message.split()[0]) from None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_Sampled):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for completions
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer"]
    content: str


class ChatRequest(_Sampled):
    messages: list[Message]
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


class SearchRequest(BaseModel):
    """gptkit's route for an index: the top k chunks for a query."""

    model_config = ConfigDict(extra="ignore")

    model: str
    query: str = Field(min_length=1)
    k: int = Field(5, ge=1, le=100)
    mode: Literal["dense", "bm25", "hybrid"] | None = None


class AnswerRequest(BaseModel):
    """gptkit's route for extractive question answering: a span of the context."""

    model_config = ConfigDict(extra="ignore")

    model: str
    context: str = Field(min_length=1)
    question: str = Field(min_length=1)
