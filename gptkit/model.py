"""GPT-2: a decoder-only Transformer, and the KV cache for incremental decoding.

Shapes: B batch, T new tokens, S positions in the cache, C = n_embd, H = n_head,
D = head_dim, V = vocab_size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .errors import GptkitError


class KVCache:
    """Preallocated keys and values for every layer, one slot per sequence: the only code that touches them.

    `length(b)` is the number of positions slot b holds. A forward pass with a
    cache asks `plan` where its T new tokens go (positions lengths[b] ..
    lengths[b]+T-1 of each slot, or of the `slots` it covers, so sequences can
    join and leave a running batch), each layer stores its keys and values with
    `append`, and `advance` then moves the lengths on. A batch of right-padded
    prompts is prefilled in one pass: `advance` keeps each row's real length,
    so later tokens overwrite the padding. The buffers are allocated on first
    use, with the dtype and device of the keys the model computes.
    """

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int | None = None):
        self.config = config
        self.batch_size = batch_size
        self.max_len = min(max_len or config.block_size, config.block_size)
        self._lengths = [0] * batch_size
        self._k: torch.Tensor | None = None  # (L, B, H, max_len, D)
        self._v: torch.Tensor | None = None

    def length(self, slot: int) -> int:
        return self._lengths[slot]

    @property
    def dtype(self) -> torch.dtype | None:
        """The dtype of the stored keys and values (None until the first pass)."""
        return None if self._k is None else self._k.dtype

    @property
    def device(self) -> torch.device | None:
        return None if self._k is None else self._k.device

    def reset(self, slots: list[int]) -> None:
        """Empty these slots (their next pass starts at position 0)."""
        for slot in slots:
            self._lengths[slot] = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Slot b takes the contents of slot index[b] (beam search); all slots must have one length."""
        if self._k is not None:
            end = max(self._lengths)
            self._k[:, :, :, :end] = self._k[:, index, :, :end]
            self._v[:, :, :, :end] = self._v[:, index, :, :end]
        self._lengths = [self._lengths[i] for i in index.tolist()]

    def read(self, slot: int, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of positions [start, end) of a slot's keys and values, each (n_layer, H, end - start, D)."""
        return self._k[:, slot, :, start:end].clone(), self._v[:, slot, :, start:end].clone()

    def write(self, slot: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Fill an empty slot with keys and values (n_layer, H, T, D) of its first T positions (a reused prefix)."""
        if self._k is None:
            self._allocate(k)
        T = k.shape[2]
        self._k[:, slot, :, :T] = k
        self._v[:, slot, :, :T] = v
        self._lengths[slot] = T

    def plan(self, B: int, T: int, slots: list[int] | None, device: torch.device) -> Layout:
        """Positions and attention mask for T new tokens of B sequences, given what the slots hold."""
        if slots is None and self.batch_size != B:
            raise ValueError(f"batch of {B} sequences for a cache with {self.batch_size} slots")
        if slots is not None and len(slots) != B:
            raise ValueError(f"batch of {B} sequences for {len(slots)} cache slots")
        lengths = self._lengths if slots is None else [self._lengths[s] for s in slots]
        end = max(lengths) + T
        if end > self.max_len:
            raise GptkitError(f"{max(lengths)} cached + {T} new tokens exceed the cache length of {self.max_len}")
        slot_index = None if slots is None else torch.tensor(slots, device=device)
        layout = dict(end=end, slots=slot_index)
        if min(lengths) == max(lengths):
            start = lengths[0]
            if start == 0:  # fresh slots: plain causal attention
                return Layout(**layout)
            if T == 1:  # one new token sees every cached one
                return Layout(start=start, causal=False, **layout)
            keys = torch.arange(end, device=device)
            queries = torch.arange(start, end, device=device)
            return Layout(start=start, mask=keys <= queries[:, None], causal=False, **layout)  # (T, S)
        positions = torch.tensor(lengths, device=device)[:, None] + torch.arange(T, device=device)
        mask = torch.arange(end, device=device) <= positions[:, :, None]  # (B, T, S)
        return Layout(positions=positions, mask=mask[:, None], causal=False, **layout)  # broadcast over heads

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor, layout: Layout):
        """Store k, v (B, H, T, D) where `layout` says; return the keys and values to attend to, (B, H, S, D)."""
        if self._k is None:
            self._allocate(k)
        T = k.shape[2]
        if layout.slots is None and layout.positions is None:  # aligned slots: a plain slice
            self._k[layer, :, :, layout.start : layout.start + T] = k
            self._v[layer, :, :, layout.start : layout.start + T] = v
            return self._k[layer, :, :, : layout.end], self._v[layer, :, :, : layout.end]
        slots = layout.slots if layout.slots is not None else torch.arange(k.shape[0], device=k.device)
        positions = layout.positions
        if positions is None:
            positions = torch.arange(layout.start, layout.start + T, device=k.device).expand(k.shape[0], T)
        heads = torch.arange(k.shape[1], device=k.device)[None, :, None]
        index = (slots[:, None, None], heads, positions[:, None, :])  # broadcasts to (B, H, T)
        self._k[layer].index_put_(index, k)
        self._v[layer].index_put_(index, v)
        if layout.slots is None:
            return self._k[layer, :, :, : layout.end], self._v[layer, :, :, : layout.end]
        return self._k[layer, slots, :, : layout.end], self._v[layer, slots, :, : layout.end]

    def advance(self, slots: list[int] | None, grown: int | list[int]) -> None:
        """After every layer has appended: the slots of the pass (None: all) grow by `grown` positions each,
        or by grown[i] for the i-th (the real lengths of right-padded rows)."""
        for i, slot in enumerate(range(self.batch_size) if slots is None else slots):
            self._lengths[slot] += grown if isinstance(grown, int) else grown[i]

    def _allocate(self, like: torch.Tensor) -> None:
        c = self.config
        shape = (c.n_layer, self.batch_size, c.n_head, self.max_len, c.head_dim)
        self._k = torch.zeros(shape, dtype=like.dtype, device=like.device)
        self._v = torch.zeros(shape, dtype=like.dtype, device=like.device)


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on CPU: four 16-bit random numbers per 64-bit draw.

    PyTorch's CPU dropout draws a random number per element, which made residual
    dropout a fifth of a small model's training step; this mask is ~3x faster to
    make (benchmarks/dropout.py). The drop probability is exact to 1/65536.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        n = x.numel()
        bits = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64).view(torch.int16)[:n]
        keep = bits.view(x.shape) >= round(self.p * 65536) - 32768
        return x * torch.where(keep, 1 / (1 - self.p), 0.0).to(x.dtype)


@dataclass(frozen=True)
class Layout:
    """Where T new tokens go: `start` when every sequence is at the same position, else `positions` (B, T).

    `slots` (B,) picks cache slots (None: all of them, in order); `end` is the
    number of key positions attended to; `mask` (broadcastable to B, H, T, S)
    or `causal` say which keys each query sees.
    """

    end: int
    start: int = 0
    positions: torch.Tensor | None = None
    slots: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    causal: bool = True


def packed_layout(segments: torch.Tensor) -> Layout:
    """Positions that restart at each new segment of a row, and attention within a segment only: (B, 1, T, T)."""
    B, T = segments.shape
    index = torch.arange(T, device=segments.device).expand(B, T)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    first = torch.where(starts, index, 0).cummax(dim=1).values  # where each position's segment begins
    same = segments[:, :, None] == segments[:, None, :]
    mask = same & torch.ones(T, T, dtype=torch.bool, device=segments.device).tril()
    return Layout(end=T, positions=index - first, mask=mask[:, None], causal=False)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.layer = layer  # which of the cache's layers this attention reads and writes
        self.n_head = config.n_head
        self.dropout = config.attention_dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = Dropout(config.dropout)

    # --8<-- [start:attention]
    def forward(self, x: torch.Tensor, cache: KVCache | None, layout: Layout) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            k, v = cache.append(self.layer, k, v, layout)  # (B, H, S, D)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=layout.mask, is_causal=layout.causal,
            dropout_p=self.dropout if self.training else 0.0,
        )  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.proj(y))
    # --8<-- [end:attention]


# --8<-- [start:block]
class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x):
        # GPT-2's "gelu_new" is the tanh approximation; exact parity needs the same one.
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layout: Layout) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layout)
        return x + self.mlp(self.ln_2(x))
# --8<-- [end:block]


class GPT(nn.Module):
    """GPT-2 with a tied LM head.

    `model(idx)` gives logits (B, T, V); `model(idx, targets)` gives the mean
    cross-entropy over targets that are not -1; `model(idx, cache=cache)`
    appends idx to the cache and gives the logits of the new positions.

    With config.span_head (extractive QA) the model's output is the span head's
    instead: `model(idx)` gives start/end logits (B, T, 2), and `model(idx, labels)`
    the span loss, where labels (B, T) say per position what it is (`span_loss`).
    The LM head stays usable through `logits`.

    With config.pooling the model is an encoder: `model(idx, lengths)` gives
    L2-normalised sentence embeddings (B, C), each pooled (`pool`) over its row's
    first lengths[b] positions (rows are right-padded; a causal model's real
    positions never see the padding). Without lengths every position is real.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, layer) for layer in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.lm_head: nn.Module | None = None  # None: tied to wte; set by quantize_int8
        self.span_head = nn.Linear(config.n_embd, 2) if config.span_head else None  # start and end logits
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()  # weight 1, bias 0
        for block in self.blocks:  # the two writes into the residual stream per block
            for proj in (block.attn.proj, block.mlp.proj):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the embeddings (int8 quantisation keeps them in fp32)."""
        return self.wte.weight.dtype

    def hidden_states(self, idx: torch.Tensor, cache: KVCache | None = None, slots: list[int] | None = None,
                      lengths: list[int] | None = None, segments: torch.Tensor | None = None) -> torch.Tensor:
        """Final-LayerNorm outputs (B, T, C): the features behind the logits (and embeddings).

        With a cache, idx is appended to cache slots `slots` (default: all, B == cache.batch_size).
        Right-padded rows pass their real token counts as `lengths`: the cache keeps only those.
        Rows packed with several sequences pass `segments` (B, T), a sequence number per position:
        each sequence starts at position 0 and attends to itself only, as if it were alone.
        """
        B, T = idx.shape
        if cache is not None:
            layout = cache.plan(B, T, slots, idx.device)
        elif self.config.block_size < T:
            raise GptkitError(f"sequence of {T} tokens exceeds the context window of {self.config.block_size}")
        elif segments is not None:
            layout = packed_layout(segments)
        else:
            layout = Layout(end=T)
        if layout.positions is None:
            pos = torch.arange(layout.start, layout.start + T, device=idx.device)
        else:
            pos = layout.positions
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x, cache, layout)
        if cache is not None:
            cache.advance(slots, T if lengths is None else lengths)
        return self.ln_f(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """LM head (tied to the token embedding): (..., C) -> (..., V)."""
        if self.lm_head is not None:
            return self.lm_head(hidden)
        return F.linear(hidden, self.wte.weight)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None,
                slots: list[int] | None = None, segments: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.hidden_states(idx, cache, slots, segments=segments)
        if self.config.pooling and cache is None:
            lengths = targets if targets is not None else torch.full((idx.shape[0],), idx.shape[1], device=idx.device)
            return sentence_vectors(hidden, lengths, self.config.pooling)
        if self.span_head is not None:
            spans = self.span_head(hidden)
            return spans if targets is None else span_loss(spans, targets)
        if targets is None:
            return self.logits(hidden)
        targets = targets.flatten()
        hidden = hidden.flatten(0, 1)
        if not torch.compiler.is_compiling() and bool((targets == -1).any()):
            # positions without a target (a prompt, padding) skip the LM head: the largest matmul
            keep = targets != -1
            hidden, targets = hidden[keep], targets[keep]
        return F.cross_entropy(self.logits(hidden).float(), targets, ignore_index=-1)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count; the LM head shares the token embedding, so it is counted once.

        non_embedding excludes the position embedding (the token embedding is
        also the LM head, which does real compute), as in the scaling-law papers.
        """
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs (forward + backward) per token: 6N + 12 * L * C * T (PaLM, appendix B)."""
        c = self.config
        T = seq_len or c.block_size
        return 6 * self.num_params(non_embedding=True) + 12 * c.n_layer * c.n_embd * T


def param_count(config: ModelConfig) -> int:
    """GPT(config).num_params() without building the model: what a shape costs before it is allocated."""
    C, bias = config.n_embd, config.bias
    block = 12 * C * C + (9 * C if bias else 0) + 2 * C * (2 if bias else 1)  # qkv, proj, fc, proj, 2 LayerNorms
    head = 2 * C + 2 if config.span_head else 0
    return config.n_layer * block + (config.vocab_size + config.block_size) * C + C * (2 if bias else 1) + head


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


# Span labels, one per position: -1 where no answer may start or end (the question, padding), else the
# sum of these flags (0: a possible start/end that is not the answer's).
SPAN_START, SPAN_END = 1, 2


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
