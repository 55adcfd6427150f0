"""One engine loop per model: a thread that owns a `Generator`, and the asyncio side that talks to it.

    scheduler = Scheduler(model, max_batch=8, max_queue=64)
    job = scheduler.submit(prompt_ids, decoding, logprobs=5)   # raises QueueFull when the queue is full
    async for token, logprob in job:                           # each new token as the engine makes it
        ...
    scheduler.cancel(job)                                      # e.g. the client went away: its slot is freed

Requests join the running batch between decode steps (continuous batching) and leave it
the moment they finish, so a short request never waits for a long one. The engine runs
in its own thread (PyTorch releases the GIL), so the event loop keeps serving while it
computes; every change to the engine happens in that thread, through its inbox.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from ..generate import Decoding, Generator, Request
from ..generate.engine import TokenLogprob
from ..generate.prefix import PrefixCache
from ..model import GPT


class QueueFull(Exception):
    """More requests wait than the scheduler takes (the server answers 429)."""


@dataclass(eq=False)
class Job:
    """One request's life on the scheduler: the engine's Request and the events the event loop reads."""

    request: Request
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    submitted: float = field(default_factory=time.perf_counter)

    @property
    def finish_reason(self) -> str | None:
        return self.request.finish_reason

    async def __aiter__(self) -> AsyncIterator[tuple[int, TokenLogprob | None]]:
        while (event := await self.events.get()) is not None:
            yield event


class Scheduler:
    """Continuous batching for one model: `submit` from the event loop, tokens arrive on each Job."""

    def __init__(self, model: GPT, max_batch: int = 8, max_queue: int = 64, prefill_chunk: int = 64,
                 prefix_cache_mb: float = 256, on_step: Callable[[Generator], None] | None = None):
        cache = PrefixCache(prefill_chunk, int(prefix_cache_mb * 2**20)) if prefix_cache_mb > 0 else None
        self.engine = Generator(model, max_batch, prefill_chunk=prefill_chunk, prefill_budget=4 * prefill_chunk,
                                prefix_cache=cache, at_window="stop")
        self.max_queue = max_queue
        self.on_step = on_step  # the engine after each step: the metrics' gauges
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._jobs: dict[int, Job] = {}  # id(request) -> job, for the requests the engine holds
        self._pending = 0  # submitted and not yet finished
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="gptkit-engine", daemon=True)
        self._thread.start()

    @property
    def window(self) -> int:
        return self.engine.window

    @property
    def pending(self) -> int:
        return self._pending

    def room(self) -> int:
        """How many more requests it takes now: free slots plus free places in the queue."""
        return self.engine.cache.batch_size + self.max_queue - self._pending

    def submit(self, prompt: list[int], decoding: Decoding, logprobs: int | None = None) -> Job:
        """Queue a generation; raises QueueFull when max_queue requests already wait for a slot."""
        with self._lock:
            if self.room() < 1:
                raise QueueFull(f"{self._pending} requests are in flight and the queue holds {self.max_queue}")
            self._pending += 1
        job = Job(Request(list(prompt), decoding, logprobs), asyncio.get_running_loop())
        self._inbox.put(("submit", job))
        return job

    def cancel(self, job: Job, reason: str = "cancelled") -> None:
        """Free the job's slot at the next step (thread-safe; a finished job is left as it is)."""
        self._inbox.put(("cancel", job, reason))

    def stop(self) -> None:
        """End the engine thread: jobs still running are cancelled."""
        self._stopped = True
        self._inbox.put(("stop",))
        self._thread.join(timeout=10)

    # -- the engine thread ------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopped:
            self._take_inbox(block=not self.engine.busy)
            if self._stopped or not self.engine.busy:
                continue
            for request, token in self.engine.step():
                job = self._jobs[id(request)]
                logprob = request.token_logprobs[-1] if request.logprobs is not None else None
                job.loop.call_soon_threadsafe(job.events.put_nowait, (token, logprob))
            for job in [job for job in self._jobs.values() if job.request.done]:  # with a token, or at the window
                self._finish(job)
            if self.on_step is not None:
                self.on_step(self.engine)
        for job in list(self._jobs.values()):
            job.request.finish_reason = job.request.finish_reason or "cancelled"
            self._finish(job)

    def _take_inbox(self, block: bool) -> None:
        try:
            message = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            self._handle(message)
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _handle(self, message: tuple) -> None:
        if message[0] == "submit":
            job = message[1]
            self._jobs[id(job.request)] = job
            try:
                self.engine.submit(job.request)
            except Exception:  # checked before submitting; a failure here still must not hang the client
                job.request.finish_reason = "cancelled"
                self._finish(job)
        elif message[0] == "cancel":
            job, reason = message[1], message[2]
            if id(job.request) in self._jobs and not job.request.done:
                self.engine.cancel(job.request, reason)
                self._finish(job)

    def _finish(self, job: Job) -> None:
        if self._jobs.pop(id(job.request), None) is None:
            return
        with self._lock:
            self._pending -= 1
        job.loop.call_soon_threadsafe(job.events.put_nowait, None)
