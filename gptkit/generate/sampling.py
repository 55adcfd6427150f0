"""Picking the next token from logits: repetition penalty, logit bias, temperature, top-k, top-p and min-p.

Applied in the order of transformers' logits processors, so the same settings
keep the same tokens as `model.generate` in transformers.

Every value the ranges accept samples a token, never an error (float32 turns 1e-300 into 0):
- a temperature below MIN_TEMPERATURE is greedy decoding (as in vLLM): dividing by it overflows;
- top-p and min-p always keep the most likely token, however small p is;
- the repetition penalty lies in [0.01, 100], so penalized logits stay finite;
- a logit bias lies in [-100, 100] (OpenAI's range) and is added before the temperature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import GptkitError
from ..validate import check_fields, require

# NaN fails every range
SAMPLING_RANGES = dict(temperature=">= 0", top_k=">= 1", top_p="(0, 1]", min_p="[0, 1]",
                       repetition_penalty="[0.01, 100]")
MIN_TEMPERATURE = 1e-5  # below it, sampling is greedy decoding
MAX_LOGIT_BIAS = 100.0


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
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias) added to its logit (OpenAI's logit_bias)

    def __post_init__(self):
        check_fields(self, "sampling")
        require(self, "sampling", **SAMPLING_RANGES)
        check_logit_bias(self.logit_bias, "sampling")

    @property
    def greedy(self) -> bool:
        return self.temperature < MIN_TEMPERATURE


def check_logit_bias(bias: tuple[tuple[int, float], ...], section: str) -> None:
    for token, value in bias:
        if token < 0 or not -MAX_LOGIT_BIAS <= value <= MAX_LOGIT_BIAS:
            raise GptkitError(f"{section}: logit_bias maps token ids (>= 0) to values in [-{MAX_LOGIT_BIAS:g}, "
                              f"{MAX_LOGIT_BIAS:g}], got {token}: {value!r}")


def bias_logits(logits: torch.Tensor, biases: list[tuple[tuple[int, float], ...]]) -> torch.Tensor:
    """logits (B, V) with row i's (token, bias) pairs added; a token id past the vocabulary is an error."""
    if not any(biases):
        return logits
    V = logits.shape[-1]
    if any(token >= V for bias in biases for token, _ in bias):
        raise GptkitError(f"logit_bias names a token id past the vocabulary of {V}")
    added = torch.zeros_like(logits)
    for i, bias in enumerate(biases):
        for token, value in bias:
            added[i, token] += value
    return logits + added


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
        drop_sorted = _keep_first((probs.cumsum(-1) - probs) >= sampling.top_p)
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
    logits = bias_logits(logits, [sampling.logit_bias] * logits.shape[0])
    if sampling.greedy:
        return logits.argmax(-1)
    probs = filter_logits(logits, sampling).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def sample_rows(logits: torch.Tensor, samplings: list[Sampling], generators: list[torch.Generator | None],
                seen: list[torch.Tensor | None]) -> list[int]:
    """One token per row of logits (B, V), each row with its own settings, filtered in batched ops.

    A row gets what `next_token` gives it alone: a setting that is off leaves the row's values exactly
    as they are, so rows never depend on their batch mates. Row i samples with generators[i] (its
    seed) and is penalized on seen[i] (1, V).
    """
    B, V = logits.shape
    column = lambda values: torch.tensor(values, device=logits.device, dtype=torch.float32)[:, None]  # noqa: E731
    logits = logits.float()
    penalties = [s.repetition_penalty if m is not None else 1.0 for s, m in zip(samplings, seen)]
    if any(p != 1 for p in penalties):
        marked = torch.cat([m if m is not None else torch.zeros_like(logits[:1], dtype=torch.bool) for m in seen])
        logits = penalize_repeats(logits, marked, column(penalties))
    logits = bias_logits(logits, [s.logit_bias for s in samplings])
    tokens = logits.argmax(-1).tolist()
    rows = [i for i, s in enumerate(samplings) if not s.greedy]
    if not rows:
        return tokens
    chosen = [samplings[i] for i in rows]
    probs = _filter_rows(logits[rows], chosen, column).softmax(-1)
    for j, i in enumerate(rows):
        tokens[i] = int(torch.multinomial(probs[j : j + 1], 1, generator=generators[i]))
    return tokens


def _filter_rows(logits: torch.Tensor, samplings: list[Sampling], column) -> torch.Tensor:
    """filter_logits with a temperature, top-k, top-p and min-p per row (off: a value that changes nothing)."""
    V = logits.shape[-1]
    logits = logits / column([s.temperature for s in samplings])
    top_k = [s.top_k if s.top_k is not None and s.top_k < V else V for s in samplings]
    if min(top_k) < V:
        index = torch.tensor(top_k, device=logits.device)[:, None] - 1
        kth = torch.sort(logits, dim=-1, descending=True).values.gather(-1, index)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    top_p = [s.top_p if s.top_p is not None and s.top_p < 1 else float("inf") for s in samplings]
    if min(top_p) < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop_sorted = _keep_first((probs.cumsum(-1) - probs) >= column(top_p))
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    min_p = [s.min_p or 0.0 for s in samplings]
    if max(min_p) > 0:
        probs = logits.softmax(-1)
        logits = logits.masked_fill(probs < column(min_p) * probs.amax(-1, keepdim=True), float("-inf"))
    return logits


def _keep_first(drop_sorted: torch.Tensor) -> torch.Tensor:
    """A drop mask over sorted tokens that never drops the most likely one (top_p may round to 0 in float32)."""
    drop_sorted[..., 0] = False
    return drop_sorted
