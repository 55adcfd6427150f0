"""The generation engine on token ids: batches whose sequences join and leave.

The engine (`Generator`) gives each running sequence one KV-cache slot. A
request joins by prefilling its prompt into a free slot (one forward pass for
all newcomers); every `step()` then feeds each running sequence its last token
(one forward pass for all of them, whatever their lengths) and samples with
that request's own settings; a sequence that stops leaves and frees its slot.
`stream`, `generate` and `generate_batch` wrap the engine.

Context window: a prompt longer than the cache is an error unless its decoding
asks to keep its last tokens (`Decoding.truncate_prompt`). When a sequence fills its
slot, the window slides: the slot is rebuilt from the last half of the window
(one prefill, positions from 0 again) and decoding goes on: learned positions
cannot extend past block_size, and RoPE's quality past the trained length is not
guaranteed (with RoPE only the distances between the kept tokens matter, and those do not change).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..errors import GptkitError
from ..model import GPT, KVCache
from .decoding import Decoding
from .prefix import PrefixCache
from .sampling import Sampling, sample_rows

_ORDER = itertools.count()


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log-probability under the model, and the most likely tokens at that step."""

    logprob: float
    top: tuple[tuple[int, float], ...]  # (token id, log-probability), most likely first


@dataclass(eq=False)
class Request:
    """One sequence to generate with its decoding settings, and (as it runs) what it has produced.

    finish_reason becomes "stop" (a stop id was produced, and is the last of
    `tokens`; or the caller stopped it at a stop string), "length" (max_new_tokens
    reached) or "cancelled" (the caller gave up on it, e.g. a client went away).
    With `logprobs` = k, each new token's log-probability under the model and the
    k most likely tokens with theirs are kept in `token_logprobs` (OpenAI's
    `logprobs` / `top_logprobs`).
    """

    prompt: list[int]
    decoding: Decoding = Decoding()
    logprobs: int | None = None
    tokens: list[int] = field(default_factory=list)
    token_logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    order: int = field(default_factory=lambda: next(_ORDER))  # submission order: older prompts are read first

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


@dataclass(eq=False)
class _Running:
    """The engine's bookkeeping for one admitted request."""

    request: Request
    slot: int
    sampling: Sampling
    generator: torch.Generator | None
    seen: torch.Tensor | None  # (1, V) bool: tokens subject to the repetition penalty
    fed: int = 0  # prompt tokens in the cache so far

    @property
    def prefilling(self) -> bool:
        return self.fed < len(self.request.prompt)


class Generator:
    """A batch of cache slots that requests join (`submit`) and leave; `step` advances them all by one token.

    max_len is the window each slot holds (default: the model's block_size);
    a smaller one saves memory: the cache takes n_layer * max_batch * max_len
    * n_embd * 2 values. With `prefill_chunk`, prompts are read in chunks of
    that many tokens, at most `prefill_budget` prompt tokens a step, so a long
    prompt does not stall the running sequences (default: each prompt in one
    pass). A `PrefixCache` (its block is the chunk) lets requests reuse the
    prefixes of earlier prompts. `at_window="stop"` ends a sequence that fills
    its slot with finish_reason "length" instead of sliding the window.
    """

    def __init__(self, model: GPT, max_batch: int = 8, max_len: int | None = None, prefill_chunk: int | None = None,
                 prefill_budget: int | None = None, prefix_cache: PrefixCache | None = None,
                 at_window: Literal["slide", "stop"] = "slide"):
        if max_batch < 1:
            raise GptkitError(f"max_batch must be >= 1, got {max_batch}")
        self.model = model
        self.cache = KVCache(model.config, max_batch, max_len)
        self.waiting: deque[Request] = deque()
        self.running: list[_Running | None] = [None] * max_batch
        self.device = model.device
        self.prefix_cache = prefix_cache
        self.at_window = at_window  # a sequence that fills its slot: slide the window, or end with "length"
        self.prefill_chunk = prefix_cache.block if prefix_cache is not None else (prefill_chunk or self.window)
        self.prefill_budget = max(self.prefill_chunk, prefill_budget or self.prefill_chunk * max_batch)

    @property
    def window(self) -> int:
        return self.cache.max_len

    @property
    def busy(self) -> bool:
        return bool(self.waiting) or any(r is not None for r in self.running)

    def check(self, request: Request) -> None:
        """Raise a GptkitError if the engine cannot run this request (checked by `submit`; callers that must
        answer before queueing, like the server, call it first)."""
        if not request.prompt:
            raise GptkitError("the prompt is empty: give at least one token")
        if len(request.prompt) > self.window and not request.decoding.truncate_prompt:
            raise GptkitError(
                f"prompt of {len(request.prompt)} tokens exceeds the context window of {self.window}: "
                f"shorten it, or ask to keep its last {self.window} tokens (truncate_prompt / --truncate)"
            )
        V = self.model.config.vocab_size
        if not all(0 <= t < V for t in request.prompt):
            raise GptkitError(f"the prompt holds a token id outside the vocabulary [0, {V})")
        if any(t >= V for t in request.decoding.stop_ids) or any(t >= V for t, _ in request.decoding.logit_bias):
            raise GptkitError(f"stop_ids and logit_bias must name token ids below the vocabulary size {V}")

    def submit(self, request: Request) -> Request:
        """Queue a request; it joins the batch at the next step with a free slot."""
        self.check(request)
        request.prompt = request.prompt[-self.window :]
        self.waiting.append(request)
        return request

    def cancel(self, request: Request, reason: str = "stop") -> None:
        """Stop a request now (its text hit a stop string: "stop"; its caller left: "cancelled"); its slot is freed."""
        if request in self.waiting:
            self.waiting.remove(request)
        for slot, run in enumerate(self.running):
            if run is not None and run.request is request:
                self.running[slot] = None
        if not request.done:
            request.finish_reason = reason

    @torch.inference_mode()
    def step(self) -> list[tuple[Request, int]]:
        """Admit waiting requests, read a chunk of each new prompt (a prompt read to its end gives its first
        token), and produce one token for each running sequence: [(request, token)]."""
        decoding = [run for run in self.running if run is not None and not run.prefilling]
        self._admit()
        events = self._prefill_step() + self._decode(decoding)
        for request, _ in events:
            if request.done:
                self.cancel(request)
        return events

    def _admit(self) -> None:
        free = [slot for slot, run in enumerate(self.running) if run is None]
        while free and self.waiting:
            request = self.waiting.popleft()
            slot = free.pop(0)
            sampling, seed = request.decoding.sampling, request.decoding.seed
            generator = None
            if seed is not None and not sampling.greedy:
                generator = torch.Generator(device=self.device).manual_seed(seed)
            seen = None
            if sampling.repetition_penalty != 1:
                seen = torch.zeros(1, self.model.config.vocab_size, dtype=torch.bool, device=self.device)
                seen[0, request.prompt] = True
            self.cache.reset([slot])
            fed = self.prefix_cache.reuse(request.prompt, self.cache, slot) if self.prefix_cache else 0
            self.running[slot] = _Running(request, slot, sampling, generator, seen, fed)

    def _prefill_step(self) -> list[tuple[Request, int]]:
        """One pass over the next chunk of each prompt being read (oldest first, within the budget)."""
        runs, chunks = [], []
        for run in sorted((r for r in self.running if r is not None and r.prefilling), key=_age):
            end = min(len(run.request.prompt), (run.fed // self.prefill_chunk + 1) * self.prefill_chunk)
            chunk = run.request.prompt[run.fed : end]
            width = max([len(chunk), *map(len, chunks)])
            if chunks and (sum(map(len, chunks)) + len(chunk) > self.prefill_budget
                           or max(r.fed for r in [*runs, run]) + width > self.window):
                continue  # its turn comes next step (padded rows must fit the window)
            runs.append(run)
            chunks.append(chunk)
        if not runs:
            return []
        logits = self._prefill([run.slot for run in runs], chunks, fresh=False)
        for run, chunk in zip(runs, chunks):
            run.fed += len(chunk)
            if self.prefix_cache is not None:
                self.prefix_cache.store(run.request.prompt, self.cache, run.slot, run.fed)
        done = [i for i, run in enumerate(runs) if not run.prefilling]
        return self._sample([runs[i] for i in done], logits[done]) if done else []

    def _prefill(self, slots: list[int], prompts: list[list[int]], fresh: bool = True) -> torch.Tensor:
        """Append right-padded token rows to slots (emptied first if fresh) in one pass; the logits after each
        row's last token."""
        if fresh:
            self.cache.reset(slots)
        lengths = [len(p) for p in prompts]
        idx = torch.tensor([p + [0] * (max(lengths) - len(p)) for p in prompts], device=self.device)
        hidden = self.model.hidden_states(idx, self.cache, slots, lengths)  # (B, T, C); padding is not kept
        last = torch.tensor(lengths, device=self.device) - 1
        return self.model.logits(hidden[torch.arange(len(prompts), device=self.device), last])

    def _decode(self, runs: list[_Running]) -> list[tuple[Request, int]]:
        runs = [run for run in runs if self.running[run.slot] is run]  # not cancelled meanwhile
        for run in [run for run in runs if self.cache.length(run.slot) == self.window]:
            if self.at_window == "stop":
                self.cancel(run.request, "length")
                runs.remove(run)
            else:
                self._slide(run)
        if not runs:
            return []
        # at least half full: every slot takes part (the others with a token the cache does not keep), so
        # attention reads the cache in place instead of gathering the running slots' keys and values in every
        # layer; below that the gather is the cheaper of the two (fewer rows through every matmul)
        fed = {run.slot: run.request.tokens[-1] for run in runs}
        self.cache.reset([slot for slot, run in enumerate(self.running) if run is None])
        if 2 * len(fed) < self.cache.batch_size or any(
                self.cache.length(s) == self.window for s in range(self.cache.batch_size) if s not in fed):
            slots = list(fed)  # (a slot not decoding may be full: a prompt that fills it has no room for a passenger)
            hidden = self.model.hidden_states(torch.tensor([[t] for t in fed.values()], device=self.device),
                                              self.cache, slots)
            return self._sample(runs, self.model.logits(hidden[:, -1]))
        idx = torch.tensor([[fed.get(slot, 0)] for slot in range(self.cache.batch_size)], device=self.device)
        kept = [int(slot in fed) for slot in range(self.cache.batch_size)]
        hidden = self.model.hidden_states(idx, self.cache, None, kept)
        return self._sample(runs, self.model.logits(hidden[[run.slot for run in runs], -1]))

    def _slide(self, run: _Running) -> None:
        """The slot is full: rebuild it from the last half of the window (the newest token is fed next)."""
        keep = max(1, self.window // 2)
        context = (run.request.prompt + run.request.tokens)[:-1][-keep:]
        self._prefill([run.slot], [context])

    def _sample(self, runs: list[_Running], logits: torch.Tensor) -> list[tuple[Request, int]]:
        if all(run.sampling.greedy and run.seen is None and not run.sampling.logit_bias for run in runs):
            tokens = logits.argmax(-1).tolist()  # one op for the whole batch
        else:
            tokens = sample_rows(logits, [r.sampling for r in runs], [r.generator for r in runs],
                                 [r.seen for r in runs])
        events = []
        for i, (run, token) in enumerate(zip(runs, tokens)):
            request = run.request
            if request.logprobs is not None:
                request.token_logprobs.append(_logprob(logits[i], token, request.logprobs))
            request.tokens.append(token)
            if run.seen is not None:
                run.seen[0, token] = True
            if token in request.decoding.stop_ids:
                request.finish_reason = "stop"
            elif len(request.tokens) >= request.decoding.max_new_tokens:
                request.finish_reason = "length"
            events.append((request, token))
        return events


def _age(run: _Running) -> int:
    return run.request.order


def _logprob(logits: torch.Tensor, token: int, k: int) -> TokenLogprob:
    """The chosen token's log-probability under the model's distribution (V,), and the k most likely."""
    logprobs = torch.log_softmax(logits.float(), -1)
    values, ids = logprobs.topk(k) if k else (logprobs[:0], logprobs[:0].long())
    return TokenLogprob(float(logprobs[token]), tuple(zip(ids.tolist(), values.tolist())))


@torch.inference_mode()
def prompt_logprobs(model: GPT, prompt: list[int], k: int) -> list[TokenLogprob | None]:
    """Each prompt token's log-probability given the tokens before it, with the k likeliest there (OpenAI's
    echo + logprobs); None for the first token, which nothing predicts. The prompt must fit the window."""
    logits = model.logits(model.hidden_states(torch.tensor([prompt], device=model.device)))[0, :-1]  # (T-1, V)
    return [None] + [_logprob(row, token, k) for row, token in zip(logits, prompt[1:])]


def _window_for(model: GPT, requests: Sequence[Request]) -> int:
    """Cache length for these requests: all they can reach, capped at the context window."""
    return min(model.config.block_size, max(len(r.prompt) + r.decoding.max_new_tokens for r in requests))


def stream(model: GPT, prompt: list[int], decoding: Decoding = Decoding()) -> Iterator[int]:
    """Yield new token ids one at a time; stops after a stop id (yielded) or max_new_tokens."""
    request = Request(list(prompt), decoding)
    engine = Generator(model, 1, _window_for(model, [request]))
    engine.submit(request)
    while engine.busy:
        for _, token in engine.step():
            yield token


def generate(model: GPT, prompt: list[int], decoding: Decoding = Decoding()) -> list[int]:
    """The new tokens as a list (see `stream`)."""
    return list(stream(model, prompt, decoding))


def generate_batch(model: GPT, prompts: Sequence[list[int]], decoding: Decoding = Decoding(),
                   max_batch: int | None = None) -> list[list[int]]:
    """New tokens for each prompt, generated together (prompts may differ in length; each stops on its own).

    With a seed, prompt i samples from seed + i, so its output does not depend on its batch mates.
    """
    requests = [Request(list(p), decoding.seed_offset(i)) for i, p in enumerate(prompts)]
    if not requests:
        return []
    engine = Generator(model, max_batch or len(requests), _window_for(model, requests))
    for request in requests:
        engine.submit(request)
    while engine.busy:
        engine.step()
    return [r.tokens for r in requests]
