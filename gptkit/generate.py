"""Sampling on token ids, with a KV cache: prefill the prompt once, then one token per step.

Text lives in the callers; this module sees ids only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .errors import GptkitError
from .model import GPT, KVCache


@dataclass(frozen=True)
class Sampling:
    """How to pick the next token. temperature 0 means greedy (argmax)."""

    temperature: float = 1.0
    top_k: int | None = None  # keep the k most likely tokens
    top_p: float | None = None  # keep the smallest set whose probability reaches p

    def __post_init__(self):
        if self.temperature < 0:
            raise GptkitError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise GptkitError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise GptkitError(f"top_p must be in (0, 1], got {self.top_p}")


def filter_logits(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """Temperature, then top-k and top-p: removed tokens get -inf. logits (B, V)."""
    logits = logits.float() / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p is not None and sampling.top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token when the ones before it already reach top_p (the first always stays)
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= sampling.top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_token(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> torch.Tensor:
    """Pick one token per row of logits (B, V) -> (B,)."""
    if sampling.temperature == 0:
        return logits.argmax(-1)
    probs = filter_logits(logits, sampling).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def stream(model: GPT, prompt: list[int], max_new_tokens: int, sampling: Sampling = Sampling(),
           stop_ids: tuple[int, ...] = (), seed: int | None = None) -> Iterator[int]:
    """Yield new token ids one at a time; stops after a stop id (yielded) or max_new_tokens."""
    if not prompt:
        raise GptkitError("the prompt is empty: give at least one token")
    limit = model.config.block_size
    if len(prompt) + max_new_tokens > limit:
        raise GptkitError(
            f"prompt ({len(prompt)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the context "
            f"window of {limit}: shorten the prompt or lower max_new_tokens"
        )
    device = model.wte.weight.device
    generator = None
    if seed is not None and sampling.temperature > 0:
        generator = torch.Generator(device=device).manual_seed(seed)
    cache = KVCache(model.config, batch_size=1, max_len=len(prompt) + max_new_tokens)
    idx = torch.tensor([prompt], device=device)
    for _ in range(max_new_tokens):
        hidden = model.hidden_states(idx, cache)[:, -1]  # only the last position needs logits
        token = next_token(model.logits(hidden), sampling, generator)
        yield int(token)
        if int(token) in stop_ids:
            return
        idx = token[:, None]


def generate(model: GPT, prompt: list[int], max_new_tokens: int, sampling: Sampling = Sampling(),
             stop_ids: tuple[int, ...] = (), seed: int | None = None) -> list[int]:
    """The new tokens as a list (see `stream`)."""
    return list(stream(model, prompt, max_new_tokens, sampling, stop_ids, seed))
