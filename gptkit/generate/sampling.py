"""Picking the next token from logits: temperature, top-k, top-p, min-p and the repetition penalty.

Applied in the order of transformers' logits processors, so the same settings
keep the same tokens as `model.generate` in transformers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..validate import check_fields, require

# NaN fails every range
SAMPLING_RANGES = dict(temperature=">= 0", top_k=">= 1", top_p="(0, 1]", min_p="[0, 1]", repetition_penalty="> 0")


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
        check_fields(self, "sampling")
        require(self, "sampling", **SAMPLING_RANGES)

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
