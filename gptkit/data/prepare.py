"""Preparing a corpus: read, clean, tokenize and write token shards, in one streaming pass.

    manifest = prepare(["builtin:python-docs"], "data/pydocs", PrepareConfig(vocab_size=4096))

A tokenizer is trained on the cleaned corpus first unless one is given. The
shards, `tokenizer.json` and `manifest.json` appear all at once (an atomic
directory swap); a second call with the same inputs, tokenizer and settings
does nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.random  # noqa: F401 (imported now: a signal during a lazy import can be lost)

from ..atomic import atomic_directory
from ..errors import GptkitError
from ..files import writing
from ..tokenizer import PIECE_CHARS, Tokenizer, split_between_words
from ..validate import check_fields, require
from .clean import CleanConfig, Cleaner
from .corpus import ReadOptions, ReadStats, expand_sources, read_documents, skipped_binary_warning, source_fingerprint
from .shards import MANIFEST_VERSION, SPLITS, read_manifest_or_none

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareConfig:
    """How to turn a corpus into shards; [read] and [clean] are tables of their own in a config file."""

    tokenizer: Literal["bpe", "char"] = "bpe"  # what to train when no tokenizer is given
    vocab_size: int = 8192  # for a trained BPE tokenizer
    val_fraction: float = 0.1  # share of documents in the val split (training evaluates on it, so > 0)
    split: Literal["random", "tail"] = "random"  # random: documents drawn by seed; tail: the last bytes
    seed: int = 1337  # decides which documents go to val
    shard_tokens: int = 100_000_000  # start a new shard file after this many tokens
    batch_documents: int = 512  # documents per tokenizer call
    read: ReadOptions = field(default_factory=ReadOptions)
    clean: CleanConfig = field(default_factory=CleanConfig)

    def __post_init__(self):
        check_fields(self, "prepare config")
        require(self, "prepare config", vocab_size=">= 1", val_fraction="(0, 1)", shard_tokens=">= 1",
                batch_documents=">= 1")


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
    # long documents in pieces cut between words: the same word counts, in bounded memory
    pieces = (piece for doc in docs for piece in split_between_words(doc, PIECE_CHARS))
    return Tokenizer.train_bpe(pieces, config.vocab_size)


def _encode(tokenizer: Tokenizer, docs: list[str]) -> Iterator[Iterable[list[int]]]:
    """For each document, its ids as a sequence of pieces: short ones in one batch call, long ones a piece
    at a time (`Tokenizer.encode_long`), so one huge document never needs gigabytes."""
    short = [doc for doc in docs if len(doc) <= PIECE_CHARS]
    encoded = iter(tokenizer.encode_batch(short))
    for doc in docs:
        yield [next(encoded)] if len(doc) <= PIECE_CHARS else tokenizer.encode_long(doc)


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
    files = expand_sources(sources, config.read.include, config.read.exclude)
    inputs = source_fingerprint(files)
    existing = read_manifest_or_none(out_dir)
    if tokenizer is None:
        tokenizer = _tokenizer(out_dir, existing, files, inputs, config)
    key = _fingerprint(inputs, tokenizer, config)
    if existing is not None and existing.get("key") == key:
        log.info("%s is up to date (same inputs, tokenizer and settings): nothing to do", out_dir)
        return existing

    dtype = np.uint16 if tokenizer.vocab_size <= 65535 else np.uint32
    stats, cleaner = ReadStats(), Cleaner(config.clean)
    with atomic_directory(out_dir, ours=lambda p: (p / "manifest.json").is_file()) as tmp:
        writers = {split: _ShardWriter(tmp, out_dir, split, dtype, config.shard_tokens) for split in SPLITS}
        _write_documents(files, config, tokenizer, inputs, writers, stats, cleaner, on_progress)
        _check_outcome(writers, stats, cleaner, files, config)
        with writing(out_dir / "tokenizer.json"):
            tokenizer.save(tmp / "tokenizer.json")
        manifest = _manifest(key, dtype, tokenizer, writers, inputs, stats, cleaner, config)
        with writing(out_dir / "manifest.json"):
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _log_read_problems(stats)
    return manifest


def _manifest(key: str, dtype: type, tokenizer: Tokenizer, writers: dict, inputs: list, stats: ReadStats,
              cleaner: Cleaner, config: PrepareConfig) -> dict:
    """manifest.json: what the shards hold, what they were made from, and what reading and cleaning found."""
    return {
        "schema_version": MANIFEST_VERSION, "key": key, "dtype": np.dtype(dtype).name,
        "vocab_size": tokenizer.vocab_size, "eot_id": tokenizer.eot_id, "tokenizer_sha256": tokenizer.sha256,
        "splits": {s: w.summary() for s, w in writers.items()}, "inputs": inputs,
        "read": {"files": stats.files, "documents": stats.documents, "bytes": stats.bytes,
                 "skipped_binary": stats.skipped_binary, "invalid_utf8_documents": stats.invalid_utf8_documents},
        "cleaning": dict(cleaner.counts), "config": _config_dict(config),
    }


def _log_read_problems(stats: ReadStats) -> None:
    if stats.skipped_binary:
        log.warning(skipped_binary_warning(stats.skipped_binary))
    if stats.invalid_utf8_documents:
        log.warning("%d documents had invalid UTF-8; bad bytes were replaced by U+FFFD",
                    stats.invalid_utf8_documents)


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


def _tokenizer(out_dir: Path, existing: dict | None, files: list, inputs: list, config: PrepareConfig) -> Tokenizer:
    """A byte-level BPE trained on the files; the one out_dir has when its inputs and settings are the same
    (it would come out the same)."""
    if existing and existing["inputs"] == inputs and existing["config"] == _config_dict(config):
        return Tokenizer.load(out_dir / "tokenizer.json")
    return train_tokenizer(files, config)


def _write_documents(files: list, config: PrepareConfig, tokenizer: Tokenizer, inputs: list, writers: dict,
                     stats: ReadStats, cleaner: Cleaner, on_progress: Callable[[int, int], None] | None) -> None:
    """Every cleaned document, tokenized, into the train or val shards (reading runs in a thread)."""
    in_val = _val_chooser(config, inputs)
    for docs in _batched_in_thread(_clean_documents(files, config, stats, cleaner), config.batch_documents):
        for ids, val in zip(_encode(tokenizer, docs), in_val(docs)):
            writers["val" if val else "train"].write_document(ids, tokenizer.eot_id)
        if on_progress:
            on_progress(stats.bytes, sum(w.tokens for w in writers.values()))
    for w in writers.values():
        w.close()


def _check_outcome(writers, stats: ReadStats, cleaner: Cleaner, files, config: PrepareConfig) -> None:
    if writers["train"].documents + writers["val"].documents == 0:
        raise GptkitError(
            f"the corpus is empty after cleaning ({stats.documents} documents read from {len(files)} "
            f"file(s), {len(stats.skipped_binary)} binary file(s) skipped, cleaning counts "
            f"{dict(cleaner.counts)}): check the sources and the cleaning settings"
        )
    if writers["val"].documents == 0:
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

    def __init__(self, directory: Path, shown: Path, split: str, dtype, limit: int):
        self.directory, self.split, self.dtype, self.limit = directory, split, dtype, limit
        self.shown = shown  # the output directory as the user named it, for messages
        self.shards: list[dict] = []
        self.documents = 0
        self._file = None
        self._buffer: list[int] = []

    @property
    def tokens(self) -> int:
        return sum(s["tokens"] for s in self.shards)

    def write_document(self, pieces: Iterable[list[int]], eot: int) -> None:
        """One document (its ids, in pieces) and the end-of-text token after it; shards end between documents."""
        if self._file is None or self.shards[-1]["tokens"] >= self.limit:
            self._open_next()
        for ids in itertools.chain(pieces, [[eot]]):
            self._buffer.extend(ids)
            self.shards[-1]["tokens"] += len(ids)
            if len(self._buffer) >= self._FLUSH_TOKENS:
                self._flush()
        self.documents += 1

    def _flush(self) -> None:
        with writing(self.shown / self.shards[-1]["file"]):
            np.array(self._buffer, dtype=self.dtype).tofile(self._file)
        self._buffer = []

    def _open_next(self) -> None:
        self.close()
        name = f"{self.split}_{len(self.shards):03d}.bin"
        with writing(self.shown / name):
            self._file = open(self.directory / name, "wb")
        self.shards.append({"file": name, "tokens": 0})

    def close(self) -> None:
        if self._file is not None:
            self._flush()
            with writing(self.shown / self.shards[-1]["file"]):
                self._file.close()
            self._file = None

    def summary(self) -> dict:
        return {"documents": self.documents, "tokens": self.tokens, "shards": self.shards}
