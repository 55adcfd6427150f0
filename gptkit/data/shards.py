"""Reading token shards: the manifest, the memory-mapped token files of a split, and batches from them.

    train = TokenShards("data/pydocs", "train")
    batches = Batches(train, batch_size=8, block_size=256, seed=0)
    x, y = batches.batch(step=0)   # (8, 256) int64 each, y is x shifted by one

A shard directory (written by `data.prepare`) holds `manifest.json`,
`tokenizer.json` and `{split}_{n:03d}.bin` files of uint16 (uint32 for
vocabularies over 65,535 tokens), documents separated by the end-of-text token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..atomic import read_version
from ..errors import GptkitError
from ..tokenizer import Tokenizer

MANIFEST_VERSION = 1
SPLITS = ("train", "val")

def read_manifest(directory: str | Path) -> dict:
    directory = Path(directory)
    manifest = read_manifest_or_none(directory)
    if manifest is None:
        raise GptkitError(f"{directory}: no shards here (missing manifest.json); create them with `gptkit prepare`")
    return manifest


def read_manifest_or_none(directory: Path) -> dict | None:
    path = directory / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise GptkitError(f"{path}: corrupt manifest ({e}); delete the directory and run `gptkit prepare` again") from e
    if manifest.get("schema_version") != MANIFEST_VERSION:
        raise GptkitError(f"{path}: unsupported manifest version {manifest.get('schema_version')!r}")
    return manifest


class TokenShards:
    """The token files of one split, memory-mapped (nothing is read until used).

    Manifest and files come from one version of the directory, even while
    `prepare` replaces it. Every window read is checked against the vocabulary
    (`checked`), so a corrupt shard is an error, not a crash in the embedding.
    """

    def __init__(self, directory: str | Path, split: str = "train", tokenizer: Tokenizer | None = None):
        self.directory = Path(directory)
        self.manifest, self.arrays = read_version(directory, lambda d: _open_split(d, split, tokenizer))
        self.tokens = sum(len(a) for a in self.arrays)

    def checked(self, ids: np.ndarray) -> torch.Tensor:
        """Token ids read from the shards, as int64, after checking they fit the vocabulary."""
        if ids.size and ids.max() >= self.manifest["vocab_size"]:
            raise GptkitError(f"{self.directory}: token id {int(ids.max())} is outside the vocabulary of "
                              f"{self.manifest['vocab_size']}; the shards are corrupt: run `gptkit prepare` again")
        return torch.from_numpy(ids.astype(np.int64))

    def __len__(self) -> int:
        return self.tokens

    def windows(self, block_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every non-overlapping (x, y) window in order, for evaluation over the whole split."""
        for array in self.arrays:
            for start in range(0, len(array) - block_size, block_size):
                chunk = self.checked(array[start : start + block_size + 1])
                yield chunk[:-1], chunk[1:]


def _open_split(directory: Path, split: str, tokenizer: Tokenizer | None) -> tuple[dict, list[np.memmap]]:
    manifest = read_manifest(directory)
    if split not in manifest["splits"]:
        raise GptkitError(f"{directory}: no split {split!r}; splits: {', '.join(manifest['splits'])}")
    if tokenizer is not None and tokenizer.sha256 != manifest["tokenizer_sha256"]:
        raise GptkitError(
            f"{directory} was written with another tokenizer than the one given: "
            f"run `gptkit prepare` again with this tokenizer, or use the shards' own tokenizer.json"
        )
    dtype = np.dtype(manifest["dtype"])
    arrays = []
    for shard in manifest["splits"][split]["shards"]:
        path = directory / shard["file"]
        if not path.is_file() or path.stat().st_size != shard["tokens"] * dtype.itemsize:
            raise GptkitError(f"{path}: missing or truncated shard; run `gptkit prepare` again")
        if shard["tokens"]:
            arrays.append(np.memmap(path, dtype=dtype, mode="r"))
    return manifest, arrays


class Batches:
    """Random (x, y) windows from shards: batch `step` of stream `stream` comes from RNG(seed, stream, step).

    The same arguments always give the same batch, so resuming a run needs
    only the step counter, and ranks (streams) never share a batch.
    """

    def __init__(self, shards: TokenShards, batch_size: int, block_size: int, seed: int = 0,
                 device: str | torch.device = "cpu"):
        if batch_size < 1:
            raise GptkitError(f"batch_size must be >= 1, got {batch_size}")
        usable = [len(a) > block_size for a in shards.arrays]
        if not any(usable):
            raise GptkitError(
                f"block_size {block_size} is larger than the data: the longest shard has "
                f"{max((len(a) for a in shards.arrays), default=0)} tokens; lower block_size or add data"
            )
        self.shards = shards
        self.arrays = [a for a, ok in zip(shards.arrays, usable) if ok]
        sizes = np.array([len(a) - block_size for a in self.arrays], dtype=np.float64)
        self._weights = sizes / sizes.sum()
        self.batch_size, self.block_size, self.seed = batch_size, block_size, seed
        self.device = torch.device(device)

    def batch(self, step: int, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `step` of stream `stream`, each (batch_size, block_size) int64; y is x shifted by one.

        Training with gradient accumulation uses stream rank * grad_accum + micro_step,
        so 2 processes x 1 micro-batch see exactly what 1 process x 2 micro-batches sees.
        """
        rng = np.random.default_rng([self.seed, stream, step])
        which = rng.choice(len(self.arrays), size=self.batch_size, p=self._weights)
        rows = []
        for i in which:
            start = int(rng.integers(0, len(self.arrays[i]) - self.block_size))
            rows.append(self.arrays[i][start : start + self.block_size + 1])
        chunk = self.shards.checked(np.stack(rows))
        if self.device.type == "cuda":
            chunk = chunk.pin_memory().to(self.device, non_blocking=True)
        return chunk[:, :-1], chunk[:, 1:]
