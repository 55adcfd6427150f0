"""GPT: the decoder-only Transformer, with GPT-2's block by default and Llama/Qwen's by configuration.

Shapes: B batch, T new tokens, C = n_embd, V = vocab_size.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig
from ..errors import GptkitError
from .cache import KVCache, Layout, packed_layout
from .layers import Block, Dropout, make_norm, rope_angles, rope_frequencies


class GPT(nn.Module):
    """A stack of `Block`s between the token embedding and the LM head.

    `model(idx)` gives logits (B, T, V); `model(idx, targets)` gives the mean
    cross-entropy over targets that are not -1; `model(idx, cache=cache)`
    appends idx to the cache and gives the logits of the new positions.
    The span head and the pooled sentence embeddings have entry points of their
    own in `gptkit.model.heads`.

    Positions are learned (`wpe`, GPT-2) or rotary (RoPE: the angles come from
    each token's position, which `Layout` gives, so a cache, packed rows and
    rows at different lengths all rotate by the right amount).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd) if config.positions == "learned" else None
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, layer) for layer in range(config.n_layer))
        self.ln_f = make_norm(config)
        # None: tied to wte (quantize_int8 and bf16 packing set one that reads wte's weights)
        self.lm_head: nn.Module | None = None
        if not config.tie_embeddings:
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.span_head = nn.Linear(config.n_embd, 2) if config.span_head else None  # start and end logits
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer), norms at 1."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
                module.reset_parameters()  # weight 1, bias 0
        for block in self.blocks:  # the two writes into the residual stream per block
            for proj in block.residual_writers():
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the embeddings (int8 quantisation keeps them in fp32)."""
        return self.wte.weight.dtype

    def embeddings(self) -> list[nn.Embedding]:
        """The input embeddings: tokens, and positions when they are learned."""
        return [self.wte] if self.wpe is None else [self.wte, self.wpe]

    def final_norm(self) -> nn.Module:
        """The norm between the last block and the LM head."""
        return self.ln_f

    def head_weight(self) -> torch.Tensor:
        """The LM head's (V, C) weight: the token embedding when tied."""
        return self.wte.weight if self.config.tie_embeddings else self.lm_head.weight

    def hidden_states(self, idx: torch.Tensor, cache: KVCache | None = None, slots: list[int] | None = None,
                      lengths: list[int] | None = None, segments: torch.Tensor | None = None) -> torch.Tensor:
        """Final-norm outputs (B, T, C): the features behind the logits (and embeddings).

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
            pos = torch.arange(layout.start, layout.start + T, device=idx.device)  # (T,)
        else:
            pos = layout.positions  # (B, T)
        x = self.wte(idx)  # (B, T, C)
        rope = None
        if self.wpe is not None:
            x = x + self.wpe(pos)
        else:
            rope = rope_angles(rope_frequencies(self.config, idx.device), pos)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, cache, layout, rope)
        if cache is not None:
            cache.advance(slots, T if lengths is None else lengths)
        return self.ln_f(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """LM head: (..., C) -> (..., V)."""
        if self.lm_head is not None:
            return self.lm_head(hidden)
        return F.linear(hidden, self.wte.weight)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None,
                slots: list[int] | None = None, segments: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.hidden_states(idx, cache, slots, segments=segments)
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
        """Parameter count; a tied LM head shares the token embedding, so it is counted once.

        non_embedding excludes the position embedding (the token embedding is
        also the LM head, which does real compute), as in the scaling-law papers.
        """
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding and self.wpe is not None else n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs (forward + backward) per token: 6N + 12 * L * (H * D) * T (PaLM, appendix B)."""
        c = self.config
        T = seq_len or c.block_size
        return 6 * self.num_params(non_embedding=True) + 12 * c.n_layer * c.n_head * c.head_size * T


def param_count(config: ModelConfig) -> int:
    """GPT(config).num_params() without allocating it: one and two blocks built on the meta device, every block
    the same size (building all of a 100,000-layer mistake takes minutes even on meta)."""
    with torch.device("meta"):
        one, two = (GPT(dataclasses.replace(config, n_layer=n)).num_params() for n in (1, 2))
    return one + (config.n_layer - 1) * (two - one)
