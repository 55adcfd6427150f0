"""The KV cache and `Layout`: where new tokens go, which keys they see, and at which positions.

Shapes: B batch, T new tokens, S positions in the cache, KV = key/value heads (n_kv_head), D = head size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..errors import GptkitError


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
        self._k: torch.Tensor | None = None  # (L, B, KV, max_len, D): n_kv_head heads
        self._v: torch.Tensor | None = None

    def length(self, slot: int) -> int:
        return self._lengths[slot]

    @property
    def dtype(self) -> torch.dtype | None:
        """The dtype of the stored keys and values (None until the first pass)."""
        return None if self._k is None else self._k.dtype

    @property
    def nbytes(self) -> int:
        """The memory the keys and values hold (0 until the first pass): n_kv_head heads, not n_head."""
        return 0 if self._k is None else self._k.nbytes + self._v.nbytes

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
        """Copies of positions [start, end) of a slot's keys and values, each (n_layer, KV, end - start, D)."""
        return self._k[:, slot, :, start:end].clone(), self._v[:, slot, :, start:end].clone()

    def write(self, slot: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Fill an empty slot with keys and values (n_layer, KV, T, D) of its first T positions (a reused prefix)."""
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
        """Store k, v (B, KV, T, D) where `layout` says; return the keys and values to attend to, (B, KV, S, D)."""
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
        shape = (c.n_layer, self.batch_size, c.kv_heads, self.max_len, c.head_size)
        self._k = torch.zeros(shape, dtype=like.dtype, device=like.device)
        self._v = torch.zeros(shape, dtype=like.dtype, device=like.device)


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
