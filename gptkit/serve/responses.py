"""Response bodies in OpenAI's shapes: whole (`choices`, `usage`) or streamed as server-sent events
(`data: {chunk}` lines ending with `data: [DONE]`), for text completions and chat completions.

The jobs are admitted before a reply is built, so a 200 always has its slots. Whatever way a reply
ends (done, the client gone, a whole reply's client disconnecting while it waits, an engine failure),
its unfinished jobs are cancelled; an engine failure ends a stream with an error event, then [DONE].
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from ..generate.engine import TokenLogprob
from .errors import ApiError
from .metrics import Metrics
from .models import ServedModel
from .scheduler import Job, Scheduler
from .streams import Delta, EngineFailed, cancel_unfinished, choices


@dataclass
class Generation:
    """One request's admitted work: choice i is jobs[i], continuing prompts[i // n]."""

    served: ServedModel
    scheduler: Scheduler
    jobs: list[Job]
    prompts: list[list[int]]
    texts: list[str]  # each prompt as text (what echo shows)
    logprobs: int | None  # top alternatives per token; None: no logprobs
    metrics: Metrics
    request: Request  # the HTTP request: a whole reply watches it for the client leaving
    prompt_logprobs: list[list[TokenLogprob | None]] | None = None  # echo + logprobs: per prompt token

    def deltas(self) -> AsyncIterator[Delta]:
        return choices(self.served, self.scheduler, self.jobs, self.metrics)

    def close(self) -> None:
        cancel_unfinished(self.scheduler, self.jobs)


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


class _ClosingStream(StreamingResponse):
    """A stream that cancels its jobs however it ends, even if it never started (the client left first)."""

    def __init__(self, content, on_close: Callable[[], None], **kw):
        super().__init__(content, **kw)
        self.on_close = on_close

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def _stream(gen: Generation, reply: _Reply, obj: str, chunk: Callable[[Delta], dict], include_usage: bool,
            first: list[dict] = ()) -> StreamingResponse:
    async def events():
        for extra in first:
            yield sse({**reply.head(obj), **extra})
        try:
            async for delta in gen.deltas():
                reply.count(delta)
                yield sse({**reply.head(obj), "choices": [chunk(delta)]} | ({"usage": None} if include_usage else {}))
        except EngineFailed as e:
            yield sse(_failure(e).body())
        else:
            if include_usage:
                yield sse({**reply.head(obj), "choices": [], "usage": reply.usage})
        yield sse("[DONE]")

    return _ClosingStream(events(), gen.close, media_type="text/event-stream",
                          headers={"Cache-Control": "no-cache", "X-Request-Id": reply.id})


async def _collect(gen: Generation, reply: _Reply) -> list[Delta]:
    """Each choice's deltas joined into one; the jobs are cancelled if the client leaves meanwhile."""
    whole = [Delta(i) for i in range(len(gen.jobs))]

    async def gather() -> None:
        async for delta in gen.deltas():
            reply.count(delta)
            into = whole[delta.index]
            into.text += delta.text
            into.tokens += delta.tokens
            into.logprobs += delta.logprobs
            into.finish_reason = delta.finish_reason or into.finish_reason

    try:
        await until_disconnected(gen.request, gather())
    except EngineFailed as e:
        raise _failure(e) from None
    finally:
        gen.close()
    return whole


class ClientGone(Exception):
    """The client closed the connection before its whole reply was ready (nothing is sent back)."""


async def until_disconnected(request: Request, work: Awaitable):
    """work's result, or ClientGone (work cancelled) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the handler itself is cancelled (the server shuts down)
        task.cancel()
        raise
    finally:
        watch.cancel()
    if task in done:
        return task.result()
    task.cancel()  # its jobs are cancelled as the cancellation unwinds it
    await asyncio.gather(task, return_exceptions=True)
    raise ClientGone()


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _failure(e: EngineFailed) -> ApiError:
    return ApiError(500, f"{e}; the server goes on serving, retry the request", code="engine_error")


def gone_response() -> Response:
    return Response(status_code=499)  # nginx's "client closed request": nobody reads it, the metrics count it


# -- text completions ---------------------------------------------------------------------


async def completion_response(gen: Generation, body):
    """Choice p * n + j continues prompt p; with echo, each choice's text starts with its prompt."""
    served, n = gen.served, body.n
    reply = _Reply("cmpl", served, sum(map(len, gen.prompts)))
    count = len(gen.jobs)
    echoes = [gen.texts[i // n] if body.echo else "" for i in range(count)]
    offsets = [len(e) for e in echoes]

    def choice(delta: Delta, text: str, echo: bool = False) -> dict:
        lp = None
        if gen.logprobs is not None:
            lp = _completion_logprobs(served, delta.tokens, delta.logprobs, offsets[delta.index])
            offsets[delta.index] += len(delta.text)
            if echo:
                lp = _join_logprobs(_echo_logprobs(gen, delta.index // n), lp)
        return {"index": delta.index, "text": text, "logprobs": lp, "finish_reason": delta.finish_reason}

    if body.stream:
        first = [{"choices": [{"index": i, "text": echoes[i], "finish_reason": None, "logprobs":
                               None if gen.logprobs is None else _echo_logprobs(gen, i // n)}
                              for i in range(count)]}] if body.echo else []
        return _stream(gen, reply, "text_completion", lambda d: choice(d, d.text), body.include_usage, first)
    whole = await _collect(gen, reply)
    return {**reply.head("text_completion"), "usage": reply.usage,
            "choices": [choice(d, echoes[d.index] + d.text, body.echo) for d in whole]}


def _completion_logprobs(served: ServedModel, tokens: list[int], logprobs: list[TokenLogprob | None],
                         offset: int) -> dict:
    """OpenAI's legacy completions logprobs: tokens, their logprobs, the top alternatives, text offsets
    (None for a prompt's first token, which nothing predicts)."""
    decode = served.tokenizer.decode
    texts = [decode([t]) for t in tokens]
    starts = [offset + sum(len(t) for t in texts[:i]) for i in range(len(texts))]
    return {"tokens": texts, "token_logprobs": [lp and lp.logprob for lp in logprobs],
            "top_logprobs": [lp and {decode([t]): v for t, v in lp.top} for lp in logprobs], "text_offset": starts}


def _echo_logprobs(gen: Generation, prompt: int) -> dict:
    return _completion_logprobs(gen.served, gen.prompts[prompt], gen.prompt_logprobs[prompt], 0)


def _join_logprobs(first: dict, then: dict) -> dict:
    return {key: first[key] + then[key] for key in first}


# -- chat completions ---------------------------------------------------------------------


async def chat_response(gen: Generation, body):
    served = gen.served
    reply = _Reply("chatcmpl", served, len(gen.prompts[0]))

    def choice(delta: Delta, key: str) -> dict:
        lp = {"content": _chat_logprobs(served, delta)} if gen.logprobs is not None else None
        return {"index": delta.index, key: {"role": "assistant", "content": delta.text}, "logprobs": lp,
                "finish_reason": delta.finish_reason}

    if body.stream:
        return _stream(gen, reply, "chat.completion.chunk", lambda d: choice(d, "delta"), body.include_usage)
    whole = await _collect(gen, reply)
    return {**reply.head("chat.completion"), "choices": [choice(d, "message") for d in whole], "usage": reply.usage}


def _chat_logprobs(served: ServedModel, delta: Delta) -> list[dict]:
    decode = served.tokenizer.decode

    def entry(token: int, logprob: float) -> dict:
        text = decode([token])
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    return [{**entry(t, lp.logprob), "top_logprobs": [entry(a, v) for a, v in lp.top]}
            for t, lp in zip(delta.tokens, delta.logprobs)]
