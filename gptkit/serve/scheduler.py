"""The engine loop: one thread that steps every served model's `Generator`, and, per model, the `Scheduler`
the asyncio side talks to.

    scheduler = Scheduler(model, max_batch=8, max_queue=64)   # with a loop (a thread) of its own
    [job] = scheduler.submit_all([Request(prompt_ids, decoding, logprobs=5)])  # QueueFull: no room for all
    async for token, logprob in job:                           # each new token as the engine makes it
        ...
    job.error                                                  # set when the engine failed on this job's step
    scheduler.cancel(job)                                      # e.g. the client went away: its slot is freed
    result = await scheduler.call(fn)                          # other model work, run in the engine thread

    loop = EngineLoop()                                        # several models, one loop; run() in the main
    schedulers = [loop.add(m) for m in models]                 # thread (`gptkit serve` does), or start() one
    loop.run()                                                 # until loop.stop()

Requests join the running batch between decode steps (continuous batching) and leave it
the moment they finish, so a short request never waits for a long one. The loop runs in its
own thread (PyTorch releases the GIL), so the event loop keeps serving while it computes;
every change to an engine happens in that thread, through the loop's inbox. Run in the
process's main thread, PyTorch's OpenMP kernels are faster than in any other (1.4x a decode
step of a 92M model here), so `gptkit serve` gives the loop the main thread and uvicorn another.

A request never stops the engine: an exception while stepping fails the requests of that step
(their jobs end with `error` set) and the loop goes on with the rest; `alive` says whether the
loop still runs, for /health.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from ..generate import Generator, Request
from ..generate.engine import TokenLogprob
from ..generate.prefix import PrefixCache
from ..model import GPT

log = logging.getLogger("gptkit.serve")


class QueueFull(Exception):
    """More requests wait than the scheduler takes (the server answers 429)."""


class EngineStopped(Exception):
    """The engine loop is not running (the server answers 503 and /health says so)."""


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


class EngineLoop:
    """Steps the engines of its schedulers in turn, in the thread that calls `run` (or its own: `start`)."""

    def __init__(self):
        self.schedulers: list[Scheduler] = []
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._calls: deque = deque()  # work to run between steps, in order
        self._stopped = False
        self._thread: threading.Thread | None = None

    def add(self, model: GPT, *args, **kw) -> Scheduler:
        """A scheduler for `model` on this loop (add them all before the loop runs)."""
        scheduler = Scheduler(model, *args, loop=self, **kw)
        self.schedulers.append(scheduler)
        return scheduler

    @property
    def alive(self) -> bool:
        return not self._stopped and (self._thread.is_alive() if self._thread is not None else True)

    def start(self) -> EngineLoop:
        """Run the loop in a thread of its own."""
        self._thread = threading.Thread(target=self.run, name="gptkit-engine", daemon=True)
        self._thread.start()
        return self

    async def call(self, fn: Callable[[], object]) -> object:
        """fn() run in the loop's thread between engine steps: model work that must not run on the event loop
        and should not contend with the engines for the cores (embeddings, search, extractive answers)."""
        future = asyncio.get_running_loop().create_future()
        if not self.alive:
            raise EngineStopped("the engine loop has stopped; see the server's log")
        self.inbox.put(("call", None, fn, future))
        return await future

    def stop(self) -> None:
        """End the loop: jobs still running are cancelled."""
        self._stopped = True
        self.inbox.put(("stop", None))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def run(self) -> None:
        """Step every busy engine, read the inbox between steps, until stop()."""
        while not self._stopped:
            try:
                busy = [s for s in self.schedulers if s.engine.busy]
                self._take_inbox(block=not busy and not self._calls)
                if self._calls:  # one call a turn: a request that calls in many chunks lets the engines step
                    _call(*self._calls.popleft())
                for scheduler in busy:
                    if not self._stopped:
                        scheduler.step()
            except Exception:  # a scheduler's own failure: logged, and the loop goes on
                log.exception("the engine loop failed between steps")
        for scheduler in self.schedulers:
            scheduler.end_all()
        self._take_inbox(block=False)
        while self._calls:  # no caller waits forever for work that will not run
            fn, future = self._calls.popleft()
            future.get_loop().call_soon_threadsafe(_settle, future, None, EngineStopped("the server is stopping"))

    def _take_inbox(self, block: bool) -> None:
        try:
            message = self.inbox.get(timeout=0.5) if block else self.inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            kind, scheduler, *rest = message
            if kind == "call":
                self._calls.append(rest)
            elif scheduler is not None:
                scheduler.handle(kind, *rest)
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                return


class Scheduler:
    """Continuous batching for one model: `submit_all` from the event loop, tokens arrive on each Job."""

    def __init__(self, model: GPT, max_batch: int = 8, max_queue: int = 64, prefill_chunk: int = 64,
                 prefix_cache_mb: float = 256, on_step: Callable[[Generator], None] | None = None,
                 on_error: Callable[[], None] | None = None, loop: EngineLoop | None = None):
        cache = PrefixCache(prefill_chunk, int(prefix_cache_mb * 2**20)) if prefix_cache_mb > 0 else None
        self.engine = Generator(model, max_batch, prefill_chunk=prefill_chunk, prefill_budget=4 * prefill_chunk,
                                prefix_cache=cache, at_window="stop")
        self.max_queue = max_queue
        self.on_step = on_step  # the engine after each step: the metrics' gauges
        self.on_error = on_error  # a step failed: the metrics' counter
        self._jobs: dict[int, Job] = {}  # id(request) -> job, for the requests the engine holds
        self._pending = 0  # submitted and not yet finished
        self._lock = threading.Lock()
        if loop is None:  # a loop of its own
            loop = EngineLoop()
            loop.schedulers.append(self)
            loop.start()
        self.loop = loop

    @property
    def window(self) -> int:
        return self.engine.window

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def alive(self) -> bool:
        return self.loop.alive

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
        event_loop = asyncio.get_running_loop()
        jobs = [Job(request, event_loop) for request in requests]
        for job in jobs:
            self.loop.inbox.put(("submit", self, job))
        return jobs

    async def call(self, fn: Callable[[], object]) -> object:
        """fn() run in the engine thread between steps (model work that must not run on the event loop)."""
        return await self.loop.call(fn)

    def cancel(self, job: Job, reason: str = "cancelled") -> None:
        """Free the job's slot at the next step (thread-safe; a finished job is left as it is)."""
        self.loop.inbox.put(("cancel", self, job, reason))

    def stop(self) -> None:
        """Stop the engine loop this scheduler runs on."""
        self.loop.stop()

    # -- in the engine loop's thread ----------------------------------------------------
    def step(self) -> None:
        """One engine step; a failure fails the requests of that step, never the loop."""
        try:
            for request, token in self.engine.step():
                job = self._jobs[id(request)]
                logprob = request.token_logprobs[-1] if request.logprobs is not None else None
                job.loop.call_soon_threadsafe(job.events.put_nowait, (token, logprob))
            for job in [job for job in self._jobs.values() if job.request.done]:  # with a token, or at the window
                self._finish(job)
            if self.on_step is not None:
                self.on_step(self.engine)
        except Exception as e:
            log.exception("the engine failed while generating; its running requests get an error")
            self._fail_running(f"the model failed while generating ({type(e).__name__}: {e})")

    def handle(self, kind: str, *args) -> None:
        if kind == "submit":
            job = args[0]
            self._jobs[id(job.request)] = job
            try:
                self.engine.submit(job.request)
            except Exception as e:  # checked before submitting; a failure here still must not hang the client
                job.request.finish_reason, job.error = "cancelled", str(e)
                self._finish(job)
        elif kind == "cancel":
            job, reason = args
            if id(job.request) in self._jobs and not job.request.done:
                self.engine.cancel(job.request, reason)
                self._finish(job)

    def end_all(self) -> None:
        """The loop is ending: every job still held is finished as cancelled."""
        for job in list(self._jobs.values()):
            job.request.finish_reason = job.request.finish_reason or "cancelled"
            self._finish(job)

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

    def _finish(self, job: Job) -> None:
        if self._jobs.pop(id(job.request), None) is None:
            return
        with self._lock:
            self._pending -= 1
        job.loop.call_soon_threadsafe(job.events.put_nowait, None)


def _call(fn: Callable[[], object], future: asyncio.Future) -> None:
    try:
        result, error = fn(), None
    except Exception as e:  # the caller gets it (a GptkitError becomes a 400)
        result, error = None, e
    future.get_loop().call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future, result: object, error: Exception | None) -> None:
    if future.done():  # its caller went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
