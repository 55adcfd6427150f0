"""Token shards: corpus in, memory-mapped token files out, and batches back.

    manifest = prepare(["builtin:python-docs"], "data/pydocs", PrepareConfig(vocab_size=4096))
    train = TokenShards("data/pydocs", "train")
    batches = Batches(train, batch_size=8, block_size=256, seed=0)
    x, y = next(batches)          # (8, 256) int64 each, y is x shifted by one
    state = batches.state_dict()  # restore with load_state_dict: the same batches follow

A shard directory holds `manifest.json`, `tokenizer.json` and `{split}_{n:03d}.bin`
files of uint16 (uint32 for vocabularies over 65,535 tokens), documents
separated by the end-of-text token.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_directory
from .clean import CleanConfig, Cleaner
from .corpus import ReadOptions, ReadStats, expand_sources, read_documents, source_fingerprint
from .errors import GptkitError
from .tokenizer import Tokenizer

log = logging.getLogger(__name__)
MANIFEST_VERSION = 1
SPLITS = ("train", "val")


@dataclass(frozen=True)
class PrepareConfig:
    tokenizer: str = "bpe"  # what to train when no tokenizer is given: bpe or char
    vocab_size: int = 8192  # for a trained BPE tokenizer
    val_fraction: float = 0.1  # share of documents in the val split
    split: str = "random"  # random: documents drawn by seed; tail: the last val_fraction of the input bytes
    seed: int = 1337  # decides which documents go to val
    shard_tokens: int = 100_000_000  # start a new shard file after this many tokens
    batch_documents: int = 512  # documents per tokenizer call
    read: ReadOptions = field(default_factory=ReadOptions)
    clean: CleanConfig = field(default_factory=CleanConfig)

    def __post_init__(self):
        if self.tokenizer not in ("bpe", "char"):
            raise GptkitError(f"tokenizer must be bpe or char, got {self.tokenizer!r}")
        if self.split not in ("random", "tail"):
            raise GptkitError(f"split must be random or tail, got {self.split!r}")
        if not 0 <= self.val_fraction < 1:
            raise GptkitError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.shard_tokens < 1 or self.batch_documents < 1:
            raise GptkitError("shard_tokens and batch_documents must be positive")


def _clean_documents(sources, config: PrepareConfig, stats: ReadStats, cleaner: Cleaner) -> Iterator[str]:
    for doc in read_documents(sources, config.read, stats):
        cleaned = cleaner(doc)
        if cleaned is not None:
            yield cleaned


def train_tokenizer(sources: list[str], config: PrepareConfig) -> Tokenizer:
    """Train the configured tokenizer on the cleaned corpus (one streaming pass)."""
    docs = _clean_documents(sources, config, ReadStats(), Cleaner(config.clean))
    if config.tokenizer == "char":
        return Tokenizer.train_char(docs)
    return Tokenizer.train_bpe(docs, config.vocab_size)


def prepare(sources: list[str], out_dir: str | Path, config: PrepareConfig = PrepareConfig(),
            tokenizer: Tokenizer | None = None,
            on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Read, clean, tokenize and shard `sources` into `out_dir`; returns the manifest.

    Skips all work when `out_dir` already holds shards of the same inputs, tokenizer
    and config. `on_progress(bytes_read, tokens_written)` is called as work advances.
    """
    out_dir = Path(out_dir)
    if config.clean.remove_stopwords:
        log.warning("stop-word removal is on: fine for a retrieval index, harmful for language-model training")
    files = expand_sources(sources, config.read.include)
    inputs = source_fingerprint(files)
    existing = _read_manifest_or_none(out_dir)
    if tokenizer is None:
        if existing and existing["inputs"] == inputs and existing["config"] == _config_dict(config):
            tokenizer = Tokenizer.load(out_dir / "tokenizer.json")  # same inputs and settings: reuse it
        else:
            tokenizer = train_tokenizer(files, config)
    key = _fingerprint(inputs, tokenizer, config)
    if existing is not None and existing.get("key") == key:
        log.info("%s is up to date (same inputs, tokenizer and settings): nothing to do", out_dir)
        return existing

    dtype = np.uint16 if tokenizer.vocab_size <= 65535 else np.uint32
    stats, cleaner = ReadStats(), Cleaner(config.clean)
    with atomic_directory(out_dir) as tmp:
        writers = {split: _ShardWriter(tmp, split, dtype, config.shard_tokens) for split in SPLITS}
        in_val = _val_chooser(config, inputs)
        tokens_written = 0
        for docs in _batched_in_thread(_clean_documents(files, config, stats, cleaner), config.batch_documents):
            for ids, val in zip(tokenizer.encode_batch(docs), in_val(docs)):
                ids.append(tokenizer.eot_id)
                writers["val" if val else "train"].write(ids)
                tokens_written += len(ids)
            if on_progress:
                on_progress(stats.bytes, tokens_written)
        for w in writers.values():
            w.close()
        _check_outcome(writers, stats, cleaner, files, config)
        tokenizer.save(tmp / "tokenizer.json")
        manifest = {
            "schema_version": MANIFEST_VERSION, "key": key, "dtype": np.dtype(dtype).name,
            "vocab_size": tokenizer.vocab_size, "eot_id": tokenizer.eot_id, "tokenizer_sha256": tokenizer.sha256,
            "splits": {s: w.summary() for s, w in writers.items()}, "inputs": inputs,
            "read": {"files": stats.files, "documents": stats.documents, "bytes": stats.bytes,
                     "skipped_binary": stats.skipped_binary,
                     "invalid_utf8_documents": stats.invalid_utf8_documents},
            "cleaning": dict(cleaner.counts), "config": _config_dict(config),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for path in stats.skipped_binary:
        log.warning("skipped binary file %s", path)
    if stats.invalid_utf8_documents:
        log.warning("%d documents had invalid UTF-8; bad bytes were replaced by U+FFFD",
                    stats.invalid_utf8_documents)
    return manifest


def _val_chooser(config: PrepareConfig, inputs: list[dict]) -> Callable[[list[str]], list[bool]]:
    """Which documents of each batch go to val: seeded random draws, or those past the head's bytes."""
    if config.split == "random":
        rng = np.random.default_rng(config.seed)
        return lambda docs: (rng.random(len(docs)) < config.val_fraction).tolist()
    if any(i["bytes"] is None for i in inputs):
        raise GptkitError("split=tail needs files of known size (not builtin: sources)")
    head = (1 - config.val_fraction) * sum(i["bytes"] for i in inputs)
    seen = 0

    def choose(docs: list[str]) -> list[bool]:  # nanoGPT's split: the first bytes train, the rest val
        nonlocal seen
        flags = []
        for doc in docs:
            seen += len(doc.encode("utf-8"))
            flags.append(seen > head)
        return flags

    return choose


def _check_outcome(writers, stats: ReadStats, cleaner: Cleaner, files, config: PrepareConfig) -> None:
    if writers["train"].documents + writers["val"].documents == 0:
        raise GptkitError(
            f"the corpus is empty after cleaning ({stats.documents} documents read from {len(files)} "
            f"file(s), {len(stats.skipped_binary)} binary file(s) skipped, cleaning counts "
            f"{dict(cleaner.counts)}): check the sources and the cleaning settings"
        )
    if config.val_fraction > 0 and writers["val"].documents == 0:
        raise GptkitError(
            f"the val split got none of the {writers['train'].documents} documents: raise val_fraction, "
            f"or split text files into more documents (txt_documents=paragraph or line)"
        )


def _config_dict(config: PrepareConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))  # tuples -> lists, as stored


def _fingerprint(inputs: list[dict], tokenizer: Tokenizer, config: PrepareConfig) -> str:
    blob = json.dumps([inputs, tokenizer.sha256, _config_dict(config), MANIFEST_VERSION], sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _batched_in_thread(docs: Iterator[str], size: int) -> Iterator[list[str]]:
    """Batches of documents, read and cleaned in a background thread while the caller tokenizes."""
    q: queue.Queue = queue.Queue(maxsize=4)  # bounded: memory stays a few batches deep
    done = object()

    def produce():
        batch: list[str] = []
        try:
            for doc in docs:
                batch.append(doc)
                if len(batch) == size:
                    q.put(batch)
                    batch = []
            if batch:
                q.put(batch)
            q.put(done)
        except BaseException as e:  # hand errors to the consumer
            q.put(e)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()


class _ShardWriter:
    """Appends token ids to {split}_{n:03d}.bin files, starting a new one every `limit` tokens.

    Documents are buffered and written in blocks of about a million tokens: one
    write per document would cost a system call each.
    """

    _FLUSH_TOKENS = 1 << 20

    def __init__(self, directory: Path, split: str, dtype, limit: int):
        self.directory, self.split, self.dtype, self.limit = directory, split, dtype, limit
        self.shards: list[dict] = []
        self.documents = 0
        self._file = None
        self._buffer: list[int] = []

    def write(self, ids: list[int]) -> None:
        if self._file is None or self.shards[-1]["tokens"] >= self.limit:
            self._open_next()
        self._buffer.extend(ids)
        self.shards[-1]["tokens"] += len(ids)
        self.documents += 1
        if len(self._buffer) >= self._FLUSH_TOKENS:
            self._flush()

    def _flush(self) -> None:
        np.array(self._buffer, dtype=self.dtype).tofile(self._file)
        self._buffer = []

    def _open_next(self) -> None:
        self.close()
        name = f"{self.split}_{len(self.shards):03d}.bin"
        self._file = open(self.directory / name, "wb")
        self.shards.append({"file": name, "tokens": 0})

    def close(self) -> None:
        if self._file is not None:
            self._flush()
            self._file.close()
            self._file = None

    def summary(self) -> dict:
        return {"documents": self.documents, "tokens": sum(s["tokens"] for s in self.shards),
                "shards": self.shards}


def read_manifest(directory: str | Path) -> dict:
    directory = Path(directory)
    manifest = _read_manifest_or_none(directory)
    if manifest is None:
        raise GptkitError(f"{directory}: no shards here (missing manifest.json); create them with `gptkit prepare`")
    return manifest


def _read_manifest_or_none(directory: Path) -> dict | None:
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
    """The token files of one split, memory-mapped (nothing is read until used)."""

    def __init__(self, directory: str | Path, split: str = "train", tokenizer: Tokenizer | None = None):
        directory = Path(directory)
        self.manifest = read_manifest(directory)
        if split not in self.manifest["splits"]:
            raise GptkitError(f"{directory}: no split {split!r}; splits: {', '.join(self.manifest['splits'])}")
        if tokenizer is not None and tokenizer.sha256 != self.manifest["tokenizer_sha256"]:
            raise GptkitError(
                f"{directory} was written with another tokenizer than the one given: "
                f"run `gptkit prepare` again with this tokenizer, or use the shards' own tokenizer.json"
            )
        dtype = np.dtype(self.manifest["dtype"])
        self.arrays = []
        for shard in self.manifest["splits"][split]["shards"]:
            path = directory / shard["file"]
            if not path.is_file() or path.stat().st_size != shard["tokens"] * dtype.itemsize:
                raise GptkitError(f"{path}: missing or truncated shard; run `gptkit prepare` again")
            if shard["tokens"]:
                self.arrays.append(np.memmap(path, dtype=dtype, mode="r"))
        self.tokens = sum(len(a) for a in self.arrays)

    def __len__(self) -> int:
        return self.tokens

    def windows(self, block_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every non-overlapping (x, y) window in order, for evaluation over the whole split."""
        for array in self.arrays:
            for start in range(0, len(array) - block_size, block_size):
                chunk = torch.from_numpy(array[start : start + block_size + 1].astype(np.int64))
                yield chunk[:-1], chunk[1:]


class Batches:
    """Random (x, y) windows from shards, each batch drawn from its own seeded RNG.

    Batch number n of stream r comes from RNG(seed, r, n), so ranks see distinct
    streams and resuming needs only the batch counter.
    """

    def __init__(self, shards: TokenShards, batch_size: int, block_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, device: str | torch.device = "cpu"):
        if batch_size < 1:
            raise GptkitError(f"batch_size must be >= 1, got {batch_size}")
        usable = [len(a) > block_size for a in shards.arrays]
        if not any(usable):
            raise GptkitError(
                f"block_size {block_size} is larger than the data: the longest shard has "
                f"{max((len(a) for a in shards.arrays), default=0)} tokens; lower block_size or add data"
            )
        self.arrays = [a for a, ok in zip(shards.arrays, usable) if ok]
        sizes = np.array([len(a) - block_size for a in self.arrays], dtype=np.float64)
        self._weights = sizes / sizes.sum()
        self.batch_size, self.block_size, self.seed = batch_size, block_size, seed
        self.rank, self.world_size, self.device = rank, world_size, torch.device(device)
        self.step = 0

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.batch(self.step, self.rank)
        self.step += 1
        return batch

    def batch(self, step: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `step` of stream `stream`: the same arguments always give the same batch.

        Training with gradient accumulation uses stream rank * grad_accum + micro_step,
        so 2 processes x 1 micro-batch see exactly what 1 process x 2 micro-batches sees.
        """
        rng = np.random.default_rng([self.seed, stream, step])
        which = rng.choice(len(self.arrays), size=self.batch_size, p=self._weights)
        rows = []
        for i in which:
            start = int(rng.integers(0, len(self.arrays[i]) - self.block_size))
            rows.append(self.arrays[i][start : start + self.block_size + 1])
        chunk = torch.from_numpy(np.stack(rows).astype(np.int64))
        if self.device.type == "cuda":
            chunk = chunk.pin_memory().to(self.device, non_blocking=True)
        return chunk[:, :-1], chunk[:, 1:]

    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed, "rank": self.rank, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed:
            raise GptkitError(f"resuming batches with seed {self.seed}, but they were drawn with seed {state['seed']}")
        self.step = state["step"]
