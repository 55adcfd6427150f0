"""Generation on token ids: sampling, batches whose sequences join and leave, beam search.

The engine (`Generator`) gives each running sequence one KV-cache slot. A
request joins by prefilling its prompt into a free slot (one forward pass for
all newcomers); every `step()` then feeds each running sequence its last token
(one forward pass for all of them, whatever their lengths) and samples with
that request's own settings; a sequence that stops leaves and frees its slot.
`stream`, `generate` and `generate_batch` wrap the engine; `beam_search` is
separate. Text (stop strings, streaming decode) lives in the callers, helped
by `StopStrings`.

Context window: a prompt longer than the cache is an error unless the caller
asks to keep its last tokens (`truncate_prompt`). When a sequence fills its
slot, the window slides: the slot is rebuilt from the last half of the window
(one prefill) and decoding goes on, since GPT-2's learned positions cannot
extend past block_size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from .errors import GptkitError
from .model import GPT, KVCache


@dataclass(frozen=True)
class Sampling:
    """How to pick the next token; temperature 0 means greedy (argmax).

    Applied in the order of transformers' logits processors: repetition
    penalty, temperature, then top-k, top-p and min-p.
    """

    temperature: float = 1.0
    top_k: int | None = None  # keep the k most likely tokens
    top_p: float | None = None  # keep the smallest set whose probability reaches p
    min_p: float | None = None  # keep tokens at least min_p times as likely as the top one
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the prompt or output (CTRL)

    def __post_init__(self):
        if self.temperature < 0:
            raise GptkitError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise GptkitError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise GptkitError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.min_p is not None and not 0 <= self.min_p <= 1:
            raise GptkitError(f"min_p must be in [0, 1], got {self.min_p}")
        if self.repetition_penalty <= 0:
            raise GptkitError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


GREEDY = Sampling(temperature=0)


def penalize_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty on tokens marked in `seen` (bool, like logits): divide positive, multiply negative."""
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def filter_logits(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """Temperature, then top-k, top-p and min-p: removed tokens get -inf. logits (B, V)."""
    logits = logits.float() / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p is not None and sampling.top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the ones before it already reach top_p (the first always stays)
        drop_sorted = (probs.cumsum(-1) - probs) >= sampling.top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    if sampling.min_p:
        probs = logits.softmax(-1)
        logits = logits.masked_fill(probs < sampling.min_p * probs.amax(-1, keepdim=True), float("-inf"))
    return logits


def next_token(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None = None,
               seen: torch.Tensor | None = None) -> torch.Tensor:
    """Pick one token per row of logits (B, V) -> (B,). `seen` marks tokens for the repetition penalty."""
    if seen is not None and sampling.repetition_penalty != 1:
        logits = penalize_repeats(logits.float(), seen, sampling.repetition_penalty)
    if sampling.greedy:
        return logits.argmax(-1)
    probs = filter_logits(logits, sampling).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@dataclass(eq=False)
class Request:
    """One sequence to generate, and (as it runs) what it has produced.

    finish_reason becomes "stop" (a stop id was produced, and is the last of
    `tokens`; or the caller cancelled) or "length" (max_new_tokens reached).
    """

    prompt: list[int]
    max_new_tokens: int = 256
    sampling: Sampling = GREEDY
    stop_ids: tuple[int, ...] = ()
    seed: int | None = None
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


@dataclass(eq=False)
class _Running:
    """The engine's bookkeeping for one admitted request."""

    request: Request
    slot: int
    generator: torch.Generator | None
    seen: torch.Tensor | None  # (1, V) bool: tokens subject to the repetition penalty


class Generator:
    """A batch of cache slots that requests join (`submit`) and leave; `step` advances them all by one token.

    max_len is the window each slot holds (default: the model's block_size);
    a smaller one saves memory: the cache takes n_layer * max_batch * max_len
    * n_embd * 2 values.
    """

    def __init__(self, model: GPT, max_batch: int = 8, max_len: int | None = None, truncate_prompt: bool = False):
        if max_batch < 1:
            raise GptkitError(f"max_batch must be >= 1, got {max_batch}")
        self.model = model
        self.cache = KVCache(model.config, max_batch, max_len)
        self.truncate_prompt = truncate_prompt
        self.waiting: deque[Request] = deque()
        self.running: list[_Running | None] = [None] * max_batch
        self.device = model.wte.weight.device

    @property
    def window(self) -> int:
        return self.cache.max_len

    @property
    def busy(self) -> bool:
        return bool(self.waiting) or any(r is not None for r in self.running)

    def submit(self, request: Request) -> Request:
        """Queue a request; it joins the batch at the next step with a free slot."""
        if not request.prompt:
            raise GptkitError("the prompt is empty: give at least one token")
        if request.max_new_tokens < 1:
            raise GptkitError(f"max_new_tokens must be >= 1, got {request.max_new_tokens}")
        if len(request.prompt) > self.window:
            if not self.truncate_prompt:
                raise GptkitError(
                    f"prompt of {len(request.prompt)} tokens exceeds the context window of {self.window}: "
                    f"shorten it, or ask to keep its last {self.window} tokens (truncate_prompt / --truncate)"
                )
            request.prompt = request.prompt[-self.window :]
        self.waiting.append(request)
        return request

    def cancel(self, request: Request) -> None:
        """Stop a request now (e.g. its text hit a stop string); its slot is freed."""
        if request in self.waiting:
            self.waiting.remove(request)
        for slot, run in enumerate(self.running):
            if run is not None and run.request is request:
                self.running[slot] = None
        if not request.done:
            request.finish_reason = "stop"

    @torch.inference_mode()
    def step(self) -> list[tuple[Request, int]]:
        """Admit waiting requests, then produce one token for each running one: [(request, token)]."""
        decoding = [run for run in self.running if run is not None]
        events = self._admit() + self._decode(decoding)
        for request, _ in events:
            if request.done:
                self.cancel(request)
        return events

    def _admit(self) -> list[tuple[Request, int]]:
        free = [slot for slot, run in enumerate(self.running) if run is None]
        joining = []
        while free and self.waiting:
            request = self.waiting.popleft()
            slot = free.pop(0)
            generator = None
            if request.seed is not None and not request.sampling.greedy:
                generator = torch.Generator(device=self.device).manual_seed(request.seed)
            seen = None
            if request.sampling.repetition_penalty != 1:
                seen = torch.zeros(1, self.model.config.vocab_size, dtype=torch.bool, device=self.device)
                seen[0, request.prompt] = True
            self.running[slot] = _Running(request, slot, generator, seen)
            joining.append(self.running[slot])
        if not joining:
            return []
        logits = self._prefill([run.slot for run in joining], [run.request.prompt for run in joining])
        return self._sample(joining, logits)

    def _prefill(self, slots: list[int], prompts: list[list[int]]) -> torch.Tensor:
        """Write right-padded prompts into fresh slots in one pass; the logits after each prompt's last token."""
        for slot in slots:
            self.cache.truncate(slot, 0)
        longest = max(len(p) for p in prompts)
        idx = torch.tensor([p + [0] * (longest - len(p)) for p in prompts], device=self.device)
        hidden = self.model.hidden_states(idx, self.cache, slots)  # (B, T, C)
        last = torch.tensor([len(p) - 1 for p in prompts], device=self.device)
        for slot, prompt in zip(slots, prompts):
            self.cache.truncate(slot, len(prompt))  # the padding's keys get overwritten later
        return self.model.logits(hidden[torch.arange(len(prompts), device=self.device), last])

    def _decode(self, runs: list[_Running]) -> list[tuple[Request, int]]:
        if not runs:
            return []
        for run in runs:
            if self.cache.lengths[run.slot] == self.window:
                self._slide(run)
        slots = [run.slot for run in runs]
        idx = torch.tensor([[run.request.tokens[-1]] for run in runs], device=self.device)
        every_slot = slots == list(range(self.cache.batch_size))  # the cheapest layout: no gather
        hidden = self.model.hidden_states(idx, self.cache, None if every_slot else slots)
        return self._sample(runs, self.model.logits(hidden[:, -1]))

    def _slide(self, run: _Running) -> None:
        """The slot is full: rebuild it from the last half of the window (the newest token is fed next)."""
        keep = max(1, self.window // 2)
        context = (run.request.prompt + run.request.tokens)[:-1][-keep:]
        self._prefill([run.slot], [context])

    def _sample(self, runs: list[_Running], logits: torch.Tensor) -> list[tuple[Request, int]]:
        if all(run.request.sampling.greedy and run.seen is None for run in runs):
            tokens = logits.argmax(-1).tolist()  # one op for the whole batch
        else:
            tokens = [
                int(next_token(logits[i : i + 1], run.request.sampling, run.generator, run.seen))
                for i, run in enumerate(runs)
            ]
        events = []
        for run, token in zip(runs, tokens):
            request = run.request
            request.tokens.append(token)
            if run.seen is not None:
                run.seen[0, token] = True
            if token in request.stop_ids:
                request.finish_reason = "stop"
            elif len(request.tokens) >= request.max_new_tokens:
                request.finish_reason = "length"
            events.append((request, token))
        return events


def _window_for(model: GPT, requests: Sequence[Request]) -> int:
    """Cache length for these requests: all they can reach, capped at the context window."""
    return min(model.config.block_size, max(len(r.prompt) + r.max_new_tokens for r in requests))


def stream(model: GPT, prompt: list[int], max_new_tokens: int, sampling: Sampling = Sampling(),
           stop_ids: tuple[int, ...] = (), seed: int | None = None, truncate_prompt: bool = False) -> Iterator[int]:
    """Yield new token ids one at a time; stops after a stop id (yielded) or max_new_tokens."""
    request = Request(list(prompt), max_new_tokens, sampling, tuple(stop_ids), seed)
    engine = Generator(model, 1, _window_for(model, [request]), truncate_prompt)
    engine.submit(request)
    while engine.busy:
        for _, token in engine.step():
            yield token


def generate(model: GPT, prompt: list[int], max_new_tokens: int, sampling: Sampling = Sampling(),
             stop_ids: tuple[int, ...] = (), seed: int | None = None, truncate_prompt: bool = False) -> list[int]:
    """The new tokens as a list (see `stream`)."""
    return list(stream(model, prompt, max_new_tokens, sampling, stop_ids, seed, truncate_prompt))


def generate_batch(model: GPT, prompts: Sequence[list[int]], max_new_tokens: int, sampling: Sampling = Sampling(),
                   stop_ids: tuple[int, ...] = (), seed: int | None = None, max_batch: int | None = None,
                   truncate_prompt: bool = False) -> list[list[int]]:
    """New tokens for each prompt, generated together (prompts may differ in length; each stops on its own).

    With a seed, prompt i samples from seed + i, so its output does not depend on its batch mates.
    """
    requests = [
        Request(list(p), max_new_tokens, sampling, tuple(stop_ids), None if seed is None else seed + i)
        for i, p in enumerate(prompts)
    ]
    if not requests:
        return []
    engine = Generator(model, max_batch or len(requests), _window_for(model, requests), truncate_prompt)
    for request in requests:
        engine.submit(request)
    while engine.busy:
        engine.step()
    return [r.tokens for r in requests]


def stream_text(model: GPT, tokenizer, prompt: str, max_new_tokens: int, sampling: Sampling = Sampling(),
                stop: Sequence[str] = (), seed: int | None = None, truncate_prompt: bool = False) -> Iterator[str]:
    """The continuation of `prompt` as text pieces, ended by end-of-text, a stop string (not shown) or the limit.

    Pieces never split a UTF-8 character; an empty prompt starts from end-of-text.
    """
    eot = () if tokenizer.eot_id is None else (tokenizer.eot_id,)
    if prompt:
        ids = tokenizer.encode(prompt)
    elif eot:
        ids = list(eot)
    else:
        raise GptkitError("the prompt is empty and the tokenizer has no end-of-text token to start from")
    cutter = StopStrings(stop)
    tokens = stream(model, ids, max_new_tokens, sampling, eot, seed, truncate_prompt)
    for piece in tokenizer.decode_stream(t for t in tokens if t not in eot):
        text, stopped = cutter.feed(piece)
        if text:
            yield text
        if stopped:
            return
    if rest := cutter.flush():
        yield rest


@dataclass(frozen=True)
class Beam:
    tokens: list[int]
    score: float  # sum of log-probabilities / len(tokens) ** length_penalty


@torch.inference_mode()
def beam_search(model: GPT, prompt: list[int], max_new_tokens: int, num_beams: int = 4,
                length_penalty: float = 1.0, early_stopping: bool = False,
                stop_ids: tuple[int, ...] = ()) -> list[Beam]:
    """The num_beams best continuations, best first (transformers' beam search, the same scores).

    Each step extends every live beam by every token and keeps the 2 * num_beams
    best candidates; a candidate ending in a stop id among the first num_beams
    becomes a finished hypothesis scored sum(log p) / length ** length_penalty
    (> 0 favours longer outputs). The search ends at max_new_tokens, when
    num_beams hypotheses are finished (early_stopping=True), or when no live
    beam can still beat the worst finished one at its current length.
    """
    if not prompt:
        raise GptkitError("the prompt is empty: give at least one token")
    if num_beams < 1:
        raise GptkitError(f"num_beams must be >= 1, got {num_beams}")
    if len(prompt) + max_new_tokens > model.config.block_size:
        raise GptkitError(
            f"prompt ({len(prompt)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the context window of "
            f"{model.config.block_size}: beam search does not slide the window; shorten the prompt"
        )
    device = model.wte.weight.device
    cache = KVCache(model.config, num_beams, len(prompt) + max_new_tokens)
    hidden = model.hidden_states(torch.tensor([prompt], device=device), cache, slots=[0])[:, -1]
    cache.reorder(torch.zeros(num_beams, dtype=torch.long, device=device))  # every beam starts from the prompt
    log_probs = model.logits(hidden).float().log_softmax(-1).expand(num_beams, -1)
    # only the first beam is live at the start, so the first step does not pick one token num_beams times
    scores = torch.full((num_beams,), float("-inf"), device=device)
    scores[0] = 0.0
    beams: list[list[int]] = [[] for _ in range(num_beams)]
    finished: list[Beam] = []
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=device)
    width = max(2, 1 + len(stops)) * num_beams  # enough candidates for num_beams live ones even if many stop
    for length in range(1, max_new_tokens + 1):
        vocab = log_probs.shape[-1]
        candidates = (scores[:, None] + log_probs).flatten()
        top_scores, top_index = candidates.topk(min(width, candidates.numel()))
        origins, tokens = (top_index // vocab).tolist(), (top_index % vocab).tolist()
        is_stop = torch.isin(top_index % vocab, stops).tolist()
        next_beams, next_scores, next_origins = [], [], []
        for rank, (score, origin, token, stop) in enumerate(zip(top_scores.tolist(), origins, tokens, is_stop)):
            if score == float("-inf"):
                break
            if stop:
                if rank < num_beams:  # only the top num_beams candidates may finish
                    _keep_best(finished, Beam(beams[origin] + [token], score / length**length_penalty), num_beams)
            elif len(next_beams) < num_beams:
                next_beams.append(beams[origin] + [token])
                next_scores.append(score)
                next_origins.append(origin)
        beams, best_live = next_beams, max(next_scores, default=float("-inf"))
        if length == max_new_tokens or not beams:  # the live beams end here too
            for tokens, score in zip(beams, next_scores):
                _keep_best(finished, Beam(tokens, score / length**length_penalty), num_beams)
            break
        if len(finished) == num_beams and (
            early_stopping or best_live / length**length_penalty <= finished[-1].score
        ):
            break  # no live beam can still enter the finished ones (at its current length)
        scores = torch.tensor(next_scores + [float("-inf")] * (num_beams - len(beams)), device=device)
        cache.reorder(torch.tensor(next_origins + [0] * (num_beams - len(beams)), device=device))
        last = torch.tensor([[b[-1]] for b in beams] + [[0]] * (num_beams - len(beams)), device=device)
        beams += [[]] * (num_beams - len(beams))
        log_probs = model.logits(model.hidden_states(last, cache)[:, -1]).float().log_softmax(-1)
    return finished


def _keep_best(finished: list[Beam], beam: Beam, limit: int) -> None:
    finished.append(beam)
    finished.sort(key=lambda b: b.score, reverse=True)
    del finished[limit:]


class StopStrings:
    """Cuts streamed text at the first stop string, holding back text that may be the start of one.

    `feed(piece)` returns (text safe to show now, whether a stop string was hit);
    the stop string and anything after it are dropped. `flush()` returns what
    was held back once the stream ends without a stop.
    """

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        text = self.pending + piece
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.pending = ""
            return text[: min(hits)], True
        hold = max((_overlap(text, s) for s in self.stops), default=0)
        self.pending = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold], False

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return text


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of `text` that is a proper start of `stop`."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0
