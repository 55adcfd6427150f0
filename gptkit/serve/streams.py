"""Generations as text: each job's tokens from the scheduler through a `TextStream` (whole characters,
stop strings held back and cut), with timing for the metrics; a request's choices run side by side.

    jobs = scheduler.submit_all(requests)             # admitted (or refused) before any reply goes out
    async for delta in choices(served, scheduler, jobs, metrics=m):
        delta.index, delta.text, delta.logprobs, delta.finish_reason
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..generate import TextStream
from ..generate.engine import TokenLogprob
from .metrics import Metrics
from .models import ServedModel
from .scheduler import Job, Scheduler


class EngineFailed(Exception):
    """The engine failed on a step this choice was in: the reply ends with an error (500, or an error event)."""


@dataclass
class Delta:
    """New text of choice `index` (and the tokens behind it); finish_reason is set on its last delta."""

    index: int
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None


async def one_choice(served: ServedModel, scheduler: Scheduler, job: Job, index: int = 0,
                     metrics: Metrics | None = None) -> AsyncIterator[Delta]:
    """The continuation of the job's prompt as deltas; the job is cancelled if the caller stops listening."""
    decoding = job.request.decoding
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
        if job.error is not None:
            raise EngineFailed(job.error)
        pending.text += text.finish()
        pending.finish_reason = "stop" if text.stopped else (job.finish_reason or "stop")
        yield pending
    finally:
        clock.done(job.request.tokens, len(job.request.prompt))
        if not job.request.done:
            scheduler.cancel(job)
            if metrics is not None:
                metrics.cancelled.labels(served.name).inc()


async def choices(served: ServedModel, scheduler: Scheduler, jobs: list[Job],
                  metrics: Metrics | None = None) -> AsyncIterator[Delta]:
    """Each job's deltas (choice i is jobs[i]), interleaved as they come. Every job is cancelled if the
    caller stops listening, and an engine failure in any of them ends the whole reply (EngineFailed)."""
    if len(jobs) == 1:
        async for delta in one_choice(served, scheduler, jobs[0], 0, metrics):
            yield delta
        return
    merged: asyncio.Queue = asyncio.Queue()

    async def run(index: int) -> None:
        try:
            async for delta in one_choice(served, scheduler, jobs[index], index, metrics):
                await merged.put(delta)
        except EngineFailed as e:
            await merged.put(e)
        finally:
            await merged.put(None)

    tasks = [asyncio.create_task(run(i)) for i in range(len(jobs))]
    try:
        for _ in tasks:
            while (item := await merged.get()) is not None:
                if isinstance(item, EngineFailed):
                    raise item
                yield item
    finally:
        for task in tasks:
            task.cancel()
        cancel_unfinished(scheduler, jobs)


def cancel_unfinished(scheduler: Scheduler, jobs: list[Job]) -> None:
    """Free the slots of jobs whose reply nobody reads any more (a no-op for finished ones)."""
    for job in jobs:
        if not job.request.done:
            scheduler.cancel(job)


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
