"""The layers of a block, one class per choice on the architecture axis of `ModelConfig`.

Attention (with grouped-query heads, QK-norm and rotary positions), the two MLPs
(GPT-2's GELU, SwiGLU), the two norms (LayerNorm, RMSNorm), and `Block`, which
puts them together pre-norm. Each projection is addressed by its role (q, k, v,
o, gate, up, down) through `projections()`, so LoRA, growth and quantisation
never need to know which weights are fused into one Linear.

Shapes: B batch, T new tokens, S key positions, C = n_embd, H = n_head,
KV = n_kv_head, D = head size, I = the MLP's width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig
from .cache import KVCache, Layout


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on CPU: four 16-bit random numbers per 64-bit draw.

    PyTorch's CPU dropout draws a random number per element, which made residual
    dropout a fifth of a small model's training step; this mask is ~3x faster to
    make (benchmarks/dropout.py). The drop probability is exact to 1/65536.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x  # what nn.Dropout returns here, without its call: decoding passes two of these per block
        if x.device.type != "cpu":
            return super().forward(x)
        n = x.numel()
        bits = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64).view(torch.int16)[:n]
        keep = bits.view(x.shape) >= round(self.p * 65536) - 32768
        return x * torch.where(keep, 1 / (1 - self.p), 0.0).to(x.dtype)


class RMSNorm(nn.RMSNorm):
    """x / rms(x) * w, computed in float32 whatever x's dtype (as Llama's reference code and LayerNorm under
    autocast do): a mean of squares in bf16 loses the digits that tell similar vectors apart."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), self.normalized_shape, self.weight.float(), self.eps).to(x.dtype)


def make_norm(config: ModelConfig, size: int | None = None) -> nn.Module:
    """LayerNorm (x - mean) / std * w + b, or RMSNorm x / rms(x) * w: no centring, no bias, a little cheaper."""
    size = size or config.n_embd
    if config.norm == "rmsnorm":
        return RMSNorm(size, eps=config.layer_norm_eps)
    return nn.LayerNorm(size, eps=config.layer_norm_eps, bias=config.bias)


@dataclass(frozen=True)
class Projection:
    """One role's weights: the output rows `rows` of the Linear `parent.<name>` (all rows when None)."""

    role: str  # q, k, v, o (attention), gate, up, down (MLP)
    parent: nn.Module
    name: str
    rows: slice | None = None

    @property
    def linear(self) -> nn.Module:
        return getattr(self.parent, self.name)


# --8<-- [start:rope]
def rope_frequencies(config: ModelConfig, device: torch.device | None = None) -> torch.Tensor:
    """The D/2 rotation frequencies theta^(-2i/D), stretched as config.rope_scaling says: (D/2,) float32."""
    D, scaling = config.head_size, config.rope_scaling
    inv_freq = 1.0 / config.rope_theta ** (torch.arange(0, D, 2, dtype=torch.int64, device=device).float() / D)
    if scaling.type == "linear":
        return inv_freq / scaling.factor
    if scaling.type == "llama3":  # long wavelengths slowed down by `factor`, short ones kept, a blend between
        wavelength = 2 * math.pi / inv_freq
        old = scaling.original_max_position_embeddings
        smooth = (old / wavelength - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
        blended = (1 - smooth) * inv_freq / scaling.factor + smooth * inv_freq
        scaled = torch.where(wavelength > old / scaling.low_freq_factor, inv_freq / scaling.factor, inv_freq)
        medium = (wavelength >= old / scaling.high_freq_factor) & (wavelength <= old / scaling.low_freq_factor)
        return torch.where(medium, blended, scaled)
    return inv_freq


def rope_angles(inv_freq: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * frequency, each (T, D) for positions (T,), or (B, 1, T, D) for (B, T)."""
    angles = positions.float()[..., None] * inv_freq  # (..., T, D/2)
    angles = torch.cat((angles, angles), dim=-1)  # the pairs are (i, i + D/2), as in Llama's weights
    if positions.dim() == 2:
        angles = angles[:, None]  # broadcast over heads
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn each pair (x_i, x_{i+D/2}) of x (B, H, T, D) by its position's angle: q.k then sees only m - n."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)
# --8<-- [end:rope]


class CausalSelfAttention(nn.Module):
    """Multi-head attention whose n_head query heads share n_kv_head key/value heads (GQA; MHA when equal)."""

    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.layer = layer  # which of the cache's layers this attention reads and writes
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.kv_heads, config.head_size
        self.dropout = config.attention_dropout
        q, kv = self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        self.sizes = (q, kv, kv)
        self.qkv = nn.Linear(config.n_embd, q + 2 * kv, bias=config.has_bias("qkv"))  # one matmul for all three
        self.proj = nn.Linear(q, config.n_embd, bias=config.has_bias("o"))
        self.q_norm = make_norm(config, self.head_dim) if config.qk_norm else None
        self.k_norm = make_norm(config, self.head_dim) if config.qk_norm else None
        self.resid_dropout = Dropout(config.dropout)

    def head_norms(self) -> list[nn.Module]:
        """The norms over each head's dimensions (QK-norm), shared by all heads: none without qk_norm."""
        return [] if self.q_norm is None else [self.q_norm, self.k_norm]

    def projections(self) -> list[Projection]:
        q, kv, _ = self.sizes
        return [Projection("q", self, "qkv", slice(0, q)), Projection("k", self, "qkv", slice(q, q + kv)),
                Projection("v", self, "qkv", slice(q + kv, q + 2 * kv)), Projection("o", self, "proj")]

    # --8<-- [start:attention]
    def forward(self, x: torch.Tensor, cache: KVCache | None, layout: Layout,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split(self.sizes, dim=2)  # (B, T, H * D), (B, T, KV * D) twice
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k, v = (t.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2) for t in (k, v))  # (B, KV, T, D)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = rotate(q, *rope), rotate(k, *rope)
        if cache is not None:
            k, v = cache.append(self.layer, k, v, layout)  # (B, KV, S, D)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=layout.mask, is_causal=layout.causal,
            dropout_p=self.dropout if self.training else 0.0, enable_gqa=self.n_kv_head != self.n_head,
        )  # (B, H, T, D): each group of H / KV query heads reads one key/value head
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)
        return self.resid_dropout(self.proj(y))
    # --8<-- [end:attention]


# --8<-- [start:mlp]
class MLP(nn.Module):
    """GPT-2's MLP: down(gelu(up(x)))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, config.ffn_size, bias=config.has_bias("mlp"))
        self.proj = nn.Linear(config.ffn_size, config.n_embd, bias=config.has_bias("mlp"))
        self.dropout = Dropout(config.dropout)

    def projections(self) -> list[Projection]:
        return [Projection("up", self, "fc"), Projection("down", self, "proj")]

    def forward(self, x):
        # GPT-2's "gelu_new" is the tanh approximation; exact parity needs the same one.
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class SwiGLU(nn.Module):
    """Llama's MLP: down(silu(gate(x)) * up(x)); gate and up are one Linear, [gate; up]."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.hidden = config.ffn_size
        self.fc = nn.Linear(config.n_embd, 2 * self.hidden, bias=config.has_bias("mlp"))
        self.proj = nn.Linear(self.hidden, config.n_embd, bias=config.has_bias("mlp"))
        self.dropout = Dropout(config.dropout)

    def projections(self) -> list[Projection]:
        I = self.hidden  # noqa: E741
        return [Projection("gate", self, "fc", slice(0, I)), Projection("up", self, "fc", slice(I, 2 * I)),
                Projection("down", self, "proj")]

    def forward(self, x):
        gate, up = self.fc(x).chunk(2, dim=-1)  # each (B, T, I)
        return self.dropout(self.proj(F.silu(gate) * up))
# --8<-- [end:mlp]


# --8<-- [start:block]
class Block(nn.Module):
    """x + attn(norm(x)), then + mlp(norm(x)): pre-norm, as GPT-2 and Llama."""

    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = make_norm(config)
        self.mlp = SwiGLU(config) if config.mlp == "swiglu" else MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layout: Layout,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layout, rope)
        return x + self.mlp(self.ln_2(x))
# --8<-- [end:block]

    def projections(self) -> list[Projection]:
        """Every projection of the block by role: q, k, v, o, then the MLP's (gate,) up, down."""
        return self.attn.projections() + self.mlp.projections()

    def residual_writers(self) -> list[nn.Linear]:
        """The two Linears that write into the residual stream (attention's o, the MLP's down)."""
        return [p.linear for p in self.projections() if p.role in ("o", "down")]
