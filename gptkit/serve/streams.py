"""One generation as text: tokens from the scheduler through a `TextStream` (whole characters, stop
strings held back and cut), with timing for the metrics; `n` choices run side by side.

    async for delta in choices(served, scheduler, [prompt_ids], decoding, n=2, logprobs=5, metrics=m):
        delta.index, delta.text, delta.logprobs, delta.finish_reason
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from ..generate import Decoding, TextStream
from ..generate.engine import TokenLogprob
from .metrics import Metrics
from .models import ServedModel
from .scheduler import Scheduler


@dataclass
class Delta:
    """New text of choice `index` (and the tokens behind it); finish_reason is set on its last delta."""

    index: int
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None


async def one_choice(served: ServedModel, scheduler: Scheduler, prompt: list[int], decoding: Decoding,
                     index: int = 0, logprobs: int | None = None, metrics: Metrics | None = None
                     ) -> AsyncIterator[Delta]:
    """The continuation of `prompt` as deltas; the job is cancelled if the caller stops listening."""
    job = scheduler.submit(prompt, decoding, logprobs)
    text = TextStream(served.tokenizer, decoding.stop)
    clock = _Clock(served.name, metrics, job.submitted)
    pending = Delta(index)
    try:
        async for token, logprob in job:
            clock.tick()
            if token != served.tokenizer.eot_id:
                pending.tokens.append(token)
                if logprob is not None:
                    pending.logprobs.append(logprob)
            pending.text += text.feed(token)
            if text.stopped:
                scheduler.cancel(job, "stop")
                break
            if pending.text:
                yield pending
                pending = Delta(index)
        pending.text += text.finish()
        pending.finish_reason = "stop" if text.stopped else (job.finish_reason or "stop")
        yield pending
    finally:
        clock.done(job.request.tokens, len(prompt))
        if not job.request.done:
            scheduler.cancel(job)
            if metrics is not None:
                metrics.cancelled.labels(served.name).inc()


async def choices(served: ServedModel, scheduler: Scheduler, prompts: list[list[int]], decoding: Decoding,
                  n: int = 1, logprobs: int | None = None, metrics: Metrics | None = None) -> AsyncIterator[Delta]:
    """n continuations of each prompt, interleaved as their deltas come: choice p * n + j continues prompt p,
    sampled from seed + j (so choice j of a prompt is the same whatever else the request asks)."""
    if len(prompts) * n == 1:
        async for delta in one_choice(served, scheduler, prompts[0], decoding, 0, logprobs, metrics):
            yield delta
        return
    merged: asyncio.Queue = asyncio.Queue()

    async def run(index: int) -> None:
        j = index % n
        seeded = decoding if decoding.seed is None else replace(decoding, seed=decoding.seed + j)
        try:
            async for delta in one_choice(served, scheduler, prompts[index // n], seeded, index, logprobs, metrics):
                await merged.put(delta)
        finally:
            await merged.put(None)

    tasks = [asyncio.create_task(run(i)) for i in range(len(prompts) * n)]
    try:
        for _ in tasks:
            while (delta := await merged.get()) is not None:
                yield delta
    finally:
        for task in tasks:
            task.cancel()


class _Clock:
    """Time to first token, inter-token latency and duration of one request, into the metrics."""

    def __init__(self, model: str, metrics: Metrics | None, start: float):
        self.model, self.metrics, self.start, self.last = model, metrics, start, None

    def tick(self) -> None:
        now = time.perf_counter()
        if self.metrics is not None:
            if self.last is None:
                self.metrics.ttft.labels(self.model).observe(now - self.start)
            else:
                self.metrics.itl.labels(self.model).observe(now - self.last)
        self.last = now

    def done(self, tokens: list[int], prompt_tokens: int) -> None:
        if self.metrics is None:
            return
        self.metrics.duration.labels(self.model).observe(time.perf_counter() - self.start)
        self.metrics.prompt_tokens.labels(self.model).inc(prompt_tokens)
        self.metrics.generated_tokens.labels(self.model).inc(len(tokens))
