"""Batches of fine-tuning examples: packed several to a row (attention kept within each) or one per row.

    batches = ExampleBatches(examples, batch_size=32, block_size=128, seed=0)
    x, y, segments = batches.batch(step=0)   # y is -1 where there is no target (prompt, padding)

Each epoch visits every example once, in an order drawn from (seed, epoch); with
packing, the epoch's examples are placed into rows of block_size positions by
best fit, and the rows shuffled. Batch `step` of stream `stream` is a pure
function of those numbers, so a resumed run sees the same batches, and ranks
and micro-batches (streams) never share a row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..errors import GptkitError
from .tasks import Example

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class ExampleBatches:
    """(x, y, segments) batches of `examples`; segments is None when rows hold one example each."""

    def __init__(self, examples: Sequence[Example], batch_size: int, block_size: int, seed: int = 0,
                 streams: int = 1, pack: bool = True, shuffle: bool = True, device: str | torch.device = "cpu"):
        if batch_size < 1:
            raise GptkitError(f"batch_size must be >= 1, got {batch_size}")
        if not examples:
            raise GptkitError("no examples to make batches of")
        too_long = [len(e.ids) for e in examples if len(e.ids) > block_size + 1]
        if too_long:
            raise GptkitError(f"an example of {too_long[0]} tokens does not fit block_size {block_size}; "
                              f"make examples with this block_size")
        self.batch_size, self.block_size, self.seed, self.streams = batch_size, block_size, seed, streams
        self.pack, self.shuffle, self.device = pack, shuffle, torch.device(device)
        self.lengths = np.array([len(e.ids) - 1 for e in examples])  # positions each example fills
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.inputs = np.concatenate([e.ids[:-1] for e in examples]).astype(np.int64)
        self.labels = np.concatenate([np.where(e.targets[1:], e.ids[1:], -1) if e.labels is None else e.labels
                                      for e in examples]).astype(np.int64)
        self.target_count = int((self.labels != -1).sum())
        self._epoch_sizes: list[int] = []  # rows in each epoch packed so far
        self._rows: dict[int, list[list[int]]] = {}  # a few recent epochs' rows

    def rows(self, epoch: int) -> list[list[int]]:
        """The epoch's rows, each a list of example indices."""
        if epoch not in self._rows:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
            rows = _best_fit(order, self.lengths, self.block_size) if self.pack else [[int(i)] for i in order]
            if self.shuffle:
                rows = [rows[i] for i in rng.permutation(len(rows))]
            self._rows = {e: r for e, r in self._rows.items() if e >= epoch - 1}
            self._rows[epoch] = rows
        return self._rows[epoch]

    def epoch_size(self, epoch: int) -> int:
        while len(self._epoch_sizes) <= epoch:
            self._epoch_sizes.append(len(self.rows(len(self._epoch_sizes))))
        return self._epoch_sizes[epoch]

    def batch(self, step: int, stream: int = 0) -> Batch:
        """Batch `step` of stream `stream` (rows (step * streams + stream) * batch_size onwards, across epochs)."""
        index = (step * self.streams + stream) * self.batch_size
        epoch = 0
        while index >= self.epoch_size(epoch):
            index -= self.epoch_size(epoch)
            epoch += 1
        rows = []
        for _ in range(self.batch_size):
            if index == self.epoch_size(epoch):
                epoch, index = epoch + 1, 0
            rows.append(self.rows(epoch)[index])
            index += 1
        return self.collate(rows)

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        """Every row of one epoch, batch_size rows at a time (evaluation)."""
        rows = self.rows(epoch)
        for start in range(0, len(rows), self.batch_size):
            yield self.collate(rows[start : start + self.batch_size])

    def collate(self, rows: list[list[int]]) -> Batch:
        """Rows of examples as (x, y, segments) tensors, right-padded to the longest row."""
        width = max(int(self.lengths[row].sum()) for row in rows)
        x = np.zeros((len(rows), width), dtype=np.int64)
        y = np.full((len(rows), width), -1, dtype=np.int64)
        segments = np.full((len(rows), width), -1, dtype=np.int64)
        for r, row in enumerate(rows):
            at = 0
            for s, i in enumerate(row):
                start, end = self.offsets[i], self.offsets[i + 1]
                x[r, at : at + end - start] = self.inputs[start:end]
                y[r, at : at + end - start] = self.labels[start:end]
                segments[r, at : at + end - start] = s
                at += end - start
        tensors = [torch.from_numpy(a) for a in (x, y, segments)]
        if self.device.type == "cuda":
            tensors = [t.pin_memory().to(self.device, non_blocking=True) for t in tensors]
        x, y, segments = tensors
        return x, y, segments if self.pack else None


def _best_fit(order: np.ndarray, lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Examples into rows of `capacity` positions: each goes to the fullest row it fits in (best fit)."""
    rows: list[list[int]] = []
    by_space: list[list[int]] = [[] for _ in range(capacity + 1)]  # free space -> rows with that much left
    for i in order.tolist():
        n = int(lengths[i])
        for space in range(n, capacity + 1):
            if by_space[space]:
                row = by_space[space].pop()
                break
        else:
            row, space = len(rows), capacity
            rows.append([])
        rows[row].append(i)
        by_space[space - n].append(row)
    return rows
