"""Corpus readers: text files, directories, JSONL, CSV, Parquet (each optionally gzipped)
and the built-in `builtin:python-docs`, all streamed one document at a time.

    stats = ReadStats()
    for doc in read_documents(["data/", "extra.jsonl.gz"], ReadOptions(text_field="body"), stats):
        ...

Memory stays bounded whatever the corpus size, provided single documents are:
a `.txt` file is split into documents at blank lines by default.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import hashlib
import io
import json
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import GptkitError, require_extra
from ..validate import check_fields

BUILTIN_SOURCES = ("builtin:python-docs",)
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class ReadOptions:
    """Where the text is in each file format; the [read] table of a prepare config."""

    text_field: str = "text"  # JSONL key holding the text
    column: str = "text"  # CSV / Parquet column holding the text
    include: tuple[str, ...] = ()  # glob patterns for files inside directories, e.g. ("*.txt",)
    exclude: tuple[str, ...] = ()  # glob patterns left out: a file's name or path inside the directory, e.g. "*.zh.md"
    txt_documents: Literal["file", "paragraph", "line"] = "paragraph"  # how a .txt splits into documents

    def __post_init__(self):
        check_fields(self, "read options")


@dataclass
class ReadStats:
    files: int = 0
    documents: int = 0
    bytes: int = 0
    skipped_binary: list[str] = field(default_factory=list)
    invalid_utf8_documents: int = 0  # documents in which undecodable bytes were replaced by U+FFFD


def skipped_binary_warning(paths: list[str]) -> str:
    """One line, however many pictures and fonts a folder holds."""
    return f"skipped {len(paths)} binary file(s): {', '.join(paths[:3])}{', ...' if len(paths) > 3 else ''}"


def expand_sources(sources: Iterable[str], include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> list[str]:
    """Resolve sources to a sorted list of files (directories recursively) and builtin names."""
    files: list[str] = []
    for source in sources:
        if source.startswith("builtin:"):
            if source not in BUILTIN_SOURCES:
                raise GptkitError(f"unknown built-in corpus {source!r}; available: {', '.join(BUILTIN_SOURCES)}")
            files.append(source)
            continue
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _wanted(p, path, include, exclude))
            files.extend(str(p) for p in found)
        elif path.is_file():
            files.append(str(path))
        else:
            raise GptkitError(f"corpus source not found: {source}")
    if not files:
        raise GptkitError(f"no input files in {', '.join(sources) or 'the sources given'}"
                          + (f" matching {', '.join(include)}" if include else "")
                          + (f" outside {', '.join(exclude)}" if exclude else ""))
    return files


def _wanted(path: Path, root: Path, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    if path.name.startswith("."):
        return False
    inside = path.relative_to(root).as_posix()
    if any(fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(inside, p) for p in exclude):
        return False
    if include:
        return any(fnmatch.fnmatch(path.name, pattern) for pattern in include)
    return True


def _format(path: str) -> str:
    """The file's format from its name: '.jsonl.gz' -> 'jsonl'; unknown suffixes read as text."""
    suffixes = Path(path).suffixes
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    return {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}.get(suffix, "txt")


def source_fingerprint(files: list[str]) -> list[dict]:
    """Size and SHA-256 of every input file: what a manifest records to detect changes."""
    out = []
    for f in files:
        if f.startswith("builtin:"):  # changes only with the Python version
            out.append({"path": f, "bytes": None, "sha256": f"python-{sys.version_info[0]}.{sys.version_info[1]}"})
            continue
        digest = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        out.append({"path": f, "bytes": Path(f).stat().st_size, "sha256": digest.hexdigest()})
    return out


def read_documents(sources: Iterable[str], options: ReadOptions = ReadOptions(),
                   stats: ReadStats | None = None) -> Iterator[str]:
    """Yield every document of every source, in a deterministic order."""
    stats = stats if stats is not None else ReadStats()
    for path in expand_sources(list(sources), options.include, options.exclude):
        stats.files += 1
        if path == "builtin:python-docs":
            docs = _read_python_docs()
        else:
            fmt, raw = _format(path), _open_binary(path)
            if fmt != "parquet" and _looks_binary(raw, path):  # parquet is binary by design
                raw.close()
                stats.skipped_binary.append(path)
                continue
            docs = _READERS[fmt](raw, path, options, stats)
        for doc in _reporting_corruption(docs, path):
            stats.documents += 1
            stats.bytes += len(doc.encode("utf-8"))
            yield doc


def _reporting_corruption(docs: Iterator[str], path: str) -> Iterator[str]:
    """The documents of one file; a damaged compressed file is an error that names it."""
    try:
        yield from docs
    except _DAMAGED as e:
        raise _damaged(path, e) from e


_DAMAGED = (EOFError, zlib.error, gzip.BadGzipFile)  # what gzip raises on a damaged file


def _damaged(path: str, e: Exception) -> GptkitError:
    return GptkitError(f"{path}: corrupt or truncated compressed file ({e or type(e).__name__}); "
                       f"restore it or leave it out")


def _open_binary(path: str) -> io.BufferedReader:
    if path.endswith(".gz"):
        return io.BufferedReader(gzip.open(path, "rb"))
    return open(path, "rb")


def _looks_binary(raw: io.BufferedReader, path: str) -> bool:
    """NUL bytes in the first 8 KiB mark a binary file (images, archives, model weights)."""
    try:
        head = raw.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]
    except _DAMAGED as e:
        raw.close()
        raise _damaged(path, e) from e
    return b"\x00" in head


def _decode(data: bytes, stats: ReadStats) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        stats.invalid_utf8_documents += 1
        return data.decode("utf-8", errors="replace")


def _read_python_docs() -> Iterator[str]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield topics[name]


def _read_txt(raw, path, options: ReadOptions, stats: ReadStats) -> Iterator[str]:
    with raw:
        if options.txt_documents == "file":
            yield _decode(raw.read(), stats)
            return
        paragraph: list[bytes] = []
        for line in raw:
            if options.txt_documents == "line":
                text = line.rstrip(b"\r\n")
                if text:
                    yield _decode(text, stats)
            elif line.strip():
                paragraph.append(line)
            elif paragraph:
                yield _decode(b"".join(paragraph), stats)
                paragraph = []
        if paragraph:
            yield _decode(b"".join(paragraph), stats)


def _read_jsonl(raw, path, options: ReadOptions, stats: ReadStats) -> Iterator[str]:
    with raw:
        for n, line in enumerate(raw, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(_decode(line, stats))
            except ValueError as e:
                raise GptkitError(f"{path}:{n}: invalid JSON ({e})") from e
            if not isinstance(record, dict) or options.text_field not in record:
                raise GptkitError(f"{path}:{n}: no field {options.text_field!r}; choose one with --text-field")
            text = record[options.text_field]
            if isinstance(text, str):
                yield text


def _read_csv(raw, path, options: ReadOptions, stats: ReadStats) -> Iterator[str]:
    csv.field_size_limit(1 << 30)
    with io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as text:
        reader = csv.DictReader(text)
        if reader.fieldnames is None or options.column not in reader.fieldnames:
            raise GptkitError(f"{path}: no column {options.column!r} (columns: "
                              f"{', '.join(reader.fieldnames or [])}); choose one with --column")
        for row in reader:
            value = row[options.column]
            if value:
                yield value


def _read_parquet(raw, path, options: ReadOptions, stats: ReadStats) -> Iterator[str]:
    pq = require_extra("pyarrow.parquet", "data")
    with raw:
        try:
            parquet = pq.ParquetFile(raw)
        except Exception as e:  # pyarrow raises its own error types
            raise GptkitError(f"{path}: not a readable Parquet file ({e})") from e
        if options.column not in parquet.schema_arrow.names:
            raise GptkitError(f"{path}: no column {options.column!r} (columns: "
                              f"{', '.join(parquet.schema_arrow.names)}); choose one with --column")
        for batch in parquet.iter_batches(columns=[options.column], batch_size=1024):
            for value in batch.column(0).to_pylist():
                if isinstance(value, str) and value:
                    yield value


_READERS = {"txt": _read_txt, "jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}
