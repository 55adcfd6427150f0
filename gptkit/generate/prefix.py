"""Prefix caching: the keys and values of prompt prefixes that requests share (a system prompt, few-shot
examples, one document asked several questions), so a later request computes only what is new.

The cache holds blocks of `block` tokens: the block ending at position e is found by the prompt's
first e tokens, so a hit is always a whole prefix. A hit is copied into the request's cache slot,
so evicting a block never touches a running request. Blocks are evicted least recently used
first once they take more than `max_bytes`; a prefix's first blocks are touched last, so a chain
is evicted from its end. The engine prefills prompts in chunks of the same `block` tokens, whether
their start came from here or not, so a reused prefix holds exactly the keys and values the
request would have computed itself.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from ..model import KVCache


class PrefixCache:
    def __init__(self, block: int = 64, max_bytes: int = 256 << 20):
        if block < 1 or max_bytes < 0:
            raise ValueError(f"block must be >= 1 and max_bytes >= 0, got {block}, {max_bytes}")
        self.block, self.max_bytes = block, max_bytes
        self.bytes = 0
        self.hit_tokens = 0  # prompt tokens served from the cache
        self.lookups = 0
        self._blocks: OrderedDict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def reuse(self, prompt: list[int], cache: KVCache, slot: int) -> int:
        """Copy the longest cached prefix of `prompt` (short of its last token) into an empty slot; its length."""
        self.lookups += 1
        keys: list[tuple[int, ...]] = []
        for end in range(self.block, len(prompt), self.block):  # the last token is always computed: its logits
            key = tuple(prompt[:end])
            if key not in self._blocks:
                break
            keys.append(key)
        if not keys:
            return 0
        self._touch(keys)
        k = torch.cat([self._blocks[key][0] for key in keys], dim=2)
        v = torch.cat([self._blocks[key][1] for key in keys], dim=2)
        cache.write(slot, k, v)
        self.hit_tokens += k.shape[2]
        return k.shape[2]

    def store(self, prompt: list[int], cache: KVCache, slot: int, computed: int) -> None:
        """Keep the blocks of prompt[:computed] (now in the slot) that are not cached yet."""
        keys = []
        for end in range(self.block, computed + 1, self.block):
            key = tuple(prompt[:end])
            keys.append(key)
            if key not in self._blocks:
                k, v = cache.read(slot, end - self.block, end)
                self._blocks[key] = (k, v)
                self.bytes += 2 * k.numel() * k.element_size()
        self._touch(keys)
        self._evict()

    def _touch(self, keys: list[tuple[int, ...]]) -> None:
        for key in reversed(keys):  # the first block ends up the most recent: chains are evicted from their end
            self._blocks.move_to_end(key)

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._blocks:
            _, (k, _) = self._blocks.popitem(last=False)
            self.bytes -= 2 * k.numel() * k.element_size()
