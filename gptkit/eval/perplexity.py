"""Perplexity and bits per byte of a model on a text, with a sliding window.

    score = perplexity(model, tokenizer.encode(text), stride=256, n_bytes=len(text.encode()))
    score.ppl, score.bits_per_byte, score.tokens

A text longer than the context is scored in windows of block_size input tokens
that start every `stride` tokens (Hugging Face's perplexity guide). Each window scores
only the tokens the previous one did not, so every token but the first is
predicted exactly once, with at least block_size - stride tokens of context.
stride = block_size gives disjoint windows (fast, less context); a smaller
stride gives a lower, fairer figure at block_size / stride times the cost.

    ppl = exp(sum of -log p(token | context) / tokens)
    bits per byte = sum of -log p / ln 2 / UTF-8 bytes of the text   (comparable across tokenizers)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import GptkitError
from ..model import GPT


@dataclass(frozen=True)
class Perplexity:
    nll: float  # summed negative log-likelihood of the predicted tokens, in nats
    tokens: int  # tokens predicted: all but the first
    n_bytes: int  # UTF-8 bytes of the text (0: unknown)
    stride: int
    window: int

    @property
    def nats_per_token(self) -> float:
        return self.nll / self.tokens

    @property
    def ppl(self) -> float:
        return math.exp(min(self.nats_per_token, 700.0))  # exp overflows a float past ~709

    @property
    def bits_per_byte(self) -> float | None:
        return self.nll / math.log(2) / self.n_bytes if self.n_bytes else None


@torch.no_grad()
def perplexity(model: GPT, ids: list[int], stride: int | None = None, n_bytes: int = 0) -> Perplexity:
    """Score `ids` with `model` (put it in eval mode first) in windows of block_size every `stride` tokens."""
    window = model.config.block_size
    stride = window if stride is None else stride
    if not 1 <= stride <= window:
        raise GptkitError(f"stride must be between 1 and the model's context ({window}), got {stride}")
    if len(ids) < 2:
        raise GptkitError(f"the text is {len(ids)} token(s) long: perplexity needs at least 2")
    tokens = torch.tensor(ids, dtype=torch.long, device=model.device)
    nll, scored_until = 0.0, 1  # the first token has no prediction
    for begin in range(0, len(ids) - 1, stride):
        end = min(begin + window + 1, len(ids))  # `window` tokens in, each predicting the next
        x = tokens[begin:end]
        new = end - scored_until  # targets this window adds: its last `new` positions
        logits = model(x[None, :-1])[0].float()
        nll += F.cross_entropy(logits[-new:], x[1:][-new:], reduction="sum").item()
        scored_until = end
        if end == len(ids):
            break
    return Perplexity(nll, len(ids) - 1, n_bytes, stride, window)
