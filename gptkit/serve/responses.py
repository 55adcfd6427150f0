"""Response bodies in OpenAI's shapes: whole (`choices`, `usage`) or streamed as server-sent events
(`data: {chunk}` lines ending with `data: [DONE]`), for text completions and chat completions."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse

from ..generate import Decoding
from .metrics import Metrics
from .models import ServedModel
from .scheduler import Scheduler
from .streams import Delta, choices


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


class _Reply:
    """What every response carries: an id, the time, the model, and the usage counted as deltas come."""

    def __init__(self, prefix: str, served: ServedModel, prompt_tokens: int):
        self.id, self.created, self.model = f"{prefix}-{uuid.uuid4().hex}", int(time.time()), served.name
        self.prompt_tokens, self.completion_tokens = prompt_tokens, 0

    def head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def count(self, delta: Delta) -> Delta:
        self.completion_tokens += len(delta.tokens)
        return delta

    @property
    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


def _stream(reply: _Reply, obj: str, deltas: AsyncIterator[Delta], chunk: Callable[[Delta], dict],
            include_usage: bool, first: list[dict] = ()) -> StreamingResponse:
    async def events():
        for extra in first:
            yield sse({**reply.head(obj), **extra})
        async for delta in deltas:
            reply.count(delta)
            yield sse({**reply.head(obj), "choices": [chunk(delta)]} | ({"usage": None} if include_usage else {}))
        if include_usage:
            yield sse({**reply.head(obj), "choices": [], "usage": reply.usage})
        yield sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Request-Id": reply.id})


async def _collect(reply: _Reply, deltas: AsyncIterator[Delta], n: int) -> list[Delta]:
    """Each choice's deltas joined into one."""
    whole = [Delta(i) for i in range(n)]
    async for delta in deltas:
        reply.count(delta)
        into = whole[delta.index]
        into.text += delta.text
        into.tokens += delta.tokens
        into.logprobs += delta.logprobs
        into.finish_reason = delta.finish_reason or into.finish_reason
    return whole


# -- text completions ---------------------------------------------------------------------


async def completion_response(served: ServedModel, scheduler: Scheduler, body, prompts: list[list[int]],
                              texts: list[str], decoding: Decoding, logprobs: int | None, metrics: Metrics):
    """Choice p * n + j continues prompt p; with echo, each choice's text starts with its prompt."""
    reply = _Reply("cmpl", served, sum(map(len, prompts)))
    deltas = choices(served, scheduler, prompts, decoding, body.n, logprobs, metrics)
    count = len(prompts) * body.n
    echoes = [texts[i // body.n] if body.echo else "" for i in range(count)]
    offsets = [len(e) for e in echoes]

    def choice(delta: Delta, text: str) -> dict:
        lp = None
        if logprobs is not None:
            lp = _completion_logprobs(served, delta, offsets[delta.index])
            offsets[delta.index] += len(delta.text)
        return {"index": delta.index, "text": text, "logprobs": lp, "finish_reason": delta.finish_reason}

    if body.stream:
        first = [{"choices": [{"index": i, "text": echoes[i], "logprobs": None, "finish_reason": None}
                              for i in range(count)]}] if body.echo else []
        return _stream(reply, "text_completion", deltas, lambda d: choice(d, d.text), body.include_usage, first)
    whole = await _collect(reply, deltas, count)
    return {**reply.head("text_completion"), "choices": [choice(d, echoes[d.index] + d.text) for d in whole],
            "usage": reply.usage}


def _completion_logprobs(served: ServedModel, delta: Delta, offset: int) -> dict:
    """OpenAI's legacy completions logprobs: tokens, their logprobs, the top alternatives, text offsets."""
    decode = served.tokenizer.decode
    tokens = [decode([t]) for t in delta.tokens]
    starts = [offset + sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    return {"tokens": tokens, "token_logprobs": [lp.logprob for lp in delta.logprobs],
            "top_logprobs": [{decode([t]): v for t, v in lp.top} for lp in delta.logprobs], "text_offset": starts}


# -- chat completions ---------------------------------------------------------------------


async def chat_response(served: ServedModel, scheduler: Scheduler, body, prompts: list[list[int]], texts: list[str],
                        decoding: Decoding, logprobs: int | None, metrics: Metrics):
    reply = _Reply("chatcmpl", served, len(prompts[0]))
    deltas = choices(served, scheduler, prompts, decoding, body.n, logprobs, metrics)

    def choice(delta: Delta, key: str) -> dict:
        lp = {"content": _chat_logprobs(served, delta)} if logprobs is not None else None
        return {"index": delta.index, key: {"role": "assistant", "content": delta.text}, "logprobs": lp,
                "finish_reason": delta.finish_reason}

    if body.stream:
        return _stream(reply, "chat.completion.chunk", deltas, lambda d: choice(d, "delta"), body.include_usage)
    whole = await _collect(reply, deltas, body.n)
    return {**reply.head("chat.completion"), "choices": [choice(d, "message") for d in whole], "usage": reply.usage}


def _chat_logprobs(served: ServedModel, delta: Delta) -> list[dict]:
    decode = served.tokenizer.decode

    def entry(token: int, logprob: float) -> dict:
        text = decode([token])
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    return [{**entry(t, lp.logprob), "top_logprobs": [entry(a, v) for a, v in lp.top]}
            for t, lp in zip(delta.tokens, delta.logprobs)]
