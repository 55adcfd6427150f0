"""One engine loop per model: a thread that owns a `Generator`, and the asyncio side that talks to it.

    scheduler = Scheduler(model, max_batch=8, max_queue=64)
    [job] = scheduler.submit_all([Request(prompt_ids, decoding, logprobs=5)])  # QueueFull: no room for all
    async for token, logprob in job:                           # each new token as the engine makes it
        ...
    job.error                                                  # set when the engine failed on this job's step
    scheduler.cancel(job)                                      # e.g. the client went away: its slot is freed
    result = await scheduler.call(fn)                          # other model work, run in the engine thread

Requests join the running batch between decode steps (continuous batching) and leave it
the moment they finish, so a short request never waits for a long one. The engine runs
in its own thread (PyTorch releases the GIL), so the event loop keeps serving while it
computes; every change to the engine happens in that thread, through its inbox.

A request never stops the engine: an exception while stepping fails the requests of that step
(their jobs end with `error` set) and the loop goes on with the rest; `alive` says whether the
thread still runs, for /health.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from ..generate import Decoding, Generator, Request
from ..generate.engine import TokenLogprob
from ..generate.prefix import PrefixCache
from ..model import GPT

log = logging.getLogger("gptkit.serve")


class QueueFull(Exception):
    """More requests wait than the scheduler takes (the server answers 429)."""


class EngineStopped(Exception):
    """The engine thread is not running (the server answers 503 and /health says so)."""


@dataclass(eq=False)
class Job:
    """One request's life on the scheduler: the engine's Request and the events the event loop reads."""

    request: Request
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    submitted: float = field(default_factory=time.perf_counter)
    error: str | None = None  # why the engine failed this job, if it did

    @property
    def finish_reason(self) -> str | None:
        return self.request.finish_reason

    async def __aiter__(self) -> AsyncIterator[tuple[int, TokenLogprob | None]]:
        while (event := await self.events.get()) is not None:
            yield event


class Scheduler:
    """Continuous batching for one model: `submit` from the event loop, tokens arrive on each Job."""

    def __init__(self, model: GPT, max_batch: int = 8, max_queue: int = 64, prefill_chunk: int = 64,
                 prefix_cache_mb: float = 256, on_step: Callable[[Generator], None] | None = None,
                 on_error: Callable[[], None] | None = None):
        cache = PrefixCache(prefill_chunk, int(prefix_cache_mb * 2**20)) if prefix_cache_mb > 0 else None
        self.engine = Generator(model, max_batch, prefill_chunk=prefill_chunk, prefill_budget=4 * prefill_chunk,
                                prefix_cache=cache, at_window="stop")
        self.max_queue = max_queue
        self.on_step = on_step  # the engine after each step: the metrics' gauges
        self.on_error = on_error  # a step failed: the metrics' counter
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

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopped

    def room(self) -> int:
        """How many more requests it takes now: free slots plus free places in the queue."""
        return self.engine.cache.batch_size + self.max_queue - self._pending

    def submit_all(self, requests: list[Request]) -> list[Job]:
        """Queue requests, all or none: raises GptkitError for a request the engine cannot run, QueueFull when
        there is no room for all of them (reserved atomically, so concurrent callers never overbook)."""
        for request in requests:
            self.engine.check(request)
        with self._lock:
            if not self.alive:
                raise EngineStopped("the engine of this model has stopped; see the server's log")
            if self.room() < len(requests):
                raise QueueFull(f"{self._pending} requests are in flight and the queue holds {self.max_queue}")
            self._pending += len(requests)
        loop = asyncio.get_running_loop()
        jobs = [Job(request, loop) for request in requests]
        for job in jobs:
            self._inbox.put(("submit", job))
        return jobs

    def submit(self, prompt: list[int], decoding: Decoding, logprobs: int | None = None) -> Job:
        """Queue one generation (see submit_all)."""
        return self.submit_all([Request(list(prompt), decoding, logprobs)])[0]

    async def call(self, fn: Callable[[], object]) -> object:
        """fn() run in the engine thread between steps (model work that must not run on the event loop)."""
        future = asyncio.get_running_loop().create_future()
        if not self.alive:
            raise EngineStopped("the engine of this model has stopped; see the server's log")
        self._inbox.put(("call", fn, future))
        return await future

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
            try:
                self._take_inbox(block=not self.engine.busy)
                if not self._stopped and self.engine.busy:
                    self._step()
            except Exception as e:  # a failed step fails its requests, never the loop
                log.exception("the engine failed while generating; its running requests get an error")
                self._fail_running(f"the model failed while generating ({type(e).__name__}: {e})")
        for job in list(self._jobs.values()):
            job.request.finish_reason = job.request.finish_reason or "cancelled"
            self._finish(job)

    def _step(self) -> None:
        for request, token in self.engine.step():
            job = self._jobs[id(request)]
            logprob = request.token_logprobs[-1] if request.logprobs is not None else None
            job.loop.call_soon_threadsafe(job.events.put_nowait, (token, logprob))
        for job in [job for job in self._jobs.values() if job.request.done]:  # with a token, or at the window
            self._finish(job)
        if self.on_step is not None:
            self.on_step(self.engine)

    def _fail_running(self, message: str) -> None:
        """End every request that holds a slot with an error; the waiting ones are untouched."""
        for run in [run for run in self.engine.running if run is not None]:
            job = self._jobs.get(id(run.request))
            self.engine.cancel(run.request, "error")
            if job is not None:
                job.error = message
                self._finish(job)
        if self.on_error is not None:
            self.on_error()

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
            except Exception as e:  # checked before submitting; a failure here still must not hang the client
                job.request.finish_reason, job.error = "cancelled", str(e)
                self._finish(job)
        elif message[0] == "call":
            fn, future = message[1], message[2]
            try:
                result, error = fn(), None
            except Exception as e:
                result, error = None, e
            future.get_loop().call_soon_threadsafe(_settle, future, result, error)
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


def _settle(future: asyncio.Future, result: object, error: Exception | None) -> None:
    if future.done():  # its caller went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
