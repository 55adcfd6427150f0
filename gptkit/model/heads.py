"""What a model gives besides next-token logits: start/end spans (extractive QA) and sentence embeddings.

Each has its function, and a module (`SpanReader`, `Encoder`) whose forward is
that entry point, so a training loop can wrap it (DDP, FSDP, torch.compile) like
the language model itself: `SpanReader(model)(idx, labels)` is the span loss,
`Encoder(model)(idx, lengths)` the embeddings.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import GptkitError
from .gpt import GPT

# Span labels, one per position: -1 where no answer may start or end (the question, padding), else the
# sum of these flags (0: a possible start/end that is not the answer's).
SPAN_START, SPAN_END = 1, 2


def span_logits(model: GPT, idx: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
    """Start and end logits (B, T, 2) of the span head (config.span_head); `segments` as in hidden_states."""
    if model.span_head is None:
        raise GptkitError("this model has no span head: extractive QA needs one (model.span_head = true)")
    return model.span_head(model.hidden_states(idx, segments=segments))


def span_loss(spans: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of the start and end cross-entropies, each a softmax over the row's allowed positions.

    spans (B, T, 2) are start/end logits; labels (B, T) the flags above (every row has one start and one end).
    """
    allowed = (labels >= 0).unsqueeze(-1)
    spans = spans.float().masked_fill(~allowed, float("-inf"))
    flags = labels.clamp(min=0)
    start = (flags & SPAN_START).argmax(dim=1)
    end = (flags & SPAN_END).argmax(dim=1)
    return (F.cross_entropy(spans[..., 0], start) + F.cross_entropy(spans[..., 1], end)) / 2


def pool(hidden: torch.Tensor, lengths: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per row (B, T, C) -> (B, C): the mean of its first lengths[b] positions, or the last of them."""
    if pooling == "last":
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), lengths - 1]
    real = torch.arange(hidden.shape[1], device=hidden.device) < lengths.unsqueeze(1)  # (B, T)
    summed = (hidden.float() * real.unsqueeze(-1)).sum(dim=1)
    return summed / lengths.unsqueeze(1).to(summed.dtype)


def sentence_vectors(hidden: torch.Tensor, lengths: torch.Tensor, pooling: str) -> torch.Tensor:
    """Unit-length float32 sentence embeddings (B, C): `pool`, then L2 normalisation."""
    return F.normalize(pool(hidden, lengths, pooling).float(), dim=-1)


def embed(model: GPT, idx: torch.Tensor, lengths: torch.Tensor | None = None, pooling: str = "") -> torch.Tensor:
    """Sentence embeddings (B, C) of right-padded rows, each pooled over its first lengths[b] positions
    (a causal model's real positions never see the padding); without lengths every position is real."""
    if lengths is None:
        lengths = torch.full((idx.shape[0],), idx.shape[1], device=idx.device)
    return sentence_vectors(model.hidden_states(idx), lengths, pooling or model.config.pooling or "mean")


class SpanReader(nn.Module):
    """`SpanReader(model)(idx)`: span logits; with labels, the span loss. Holds the model, adds no weights."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor, labels: torch.Tensor | None = None,
                segments: torch.Tensor | None = None) -> torch.Tensor:
        spans = span_logits(self.model, idx, segments)
        return spans if labels is None else span_loss(spans, labels)


class Encoder(nn.Module):
    """`Encoder(model)(idx, lengths)`: unit-length sentence embeddings. Holds the model, adds no weights."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return embed(self.model, idx, lengths)
