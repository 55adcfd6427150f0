"""A search index: documents cut into chunks, their vectors in FAISS, their words in BM25, on disk as one directory.

    index = Index.build(read_corpus(["docs/"]), encoder, IndexSettings(chunk_tokens=256))
    index.add(more_documents, encoder)          # incremental; BM25 is rebuilt
    index.save("runs/index"); index = Index.load("runs/index")

Chunks are `chunk_tokens` tokens of the encoder's tokenizer (words without an
encoder), consecutive chunks sharing `overlap` tokens; each keeps its document id
and character offsets. Vectors are unit length, so inner product is cosine.
FAISS index types: `flat` (exact), `hnsw` (graph), `ivf` (inverted lists) and
`ivfpq` (inverted lists of product-quantised codes: ~dim/4 bytes a vector instead of
4 * dim). `auto` is exact up to `exact_limit` vectors and HNSW above; an
approximate index measures its recall@10 against exact search when built.

Directory: index.json (settings, the encoder's identity, counts, measured recall),
chunks.jsonl, vectors.faiss, bm25/. It is written atomically (gptkit.atomic).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..atomic import atomic_directory, read_version
from ..data.corpus import ReadOptions, ReadStats, expand_sources, read_documents, skipped_binary_warning
from ..errors import GptkitError, require_extra
from ..eval.retrieval import beir_text, json_lines
from ..files import writing
from ..validate import check_fields, require
from .embed import Encoder, EncoderInfo
from .lexical import LexicalIndex
from .markdown import is_markdown, markdown_sections

log = logging.getLogger(__name__)
SCHEMA = 1
NO_VECTORS = "this index holds no vectors (built without an encoder): search it with --mode bm25"
_PQ_TRAINING = 10_000  # vectors to train product quantisation's 256 codes per sub-vector on
INFO_FILE, CHUNKS_FILE, VECTORS_FILE, BM25_DIR = "index.json", "chunks.jsonl", "vectors.faiss", "bm25"
_WORDS = re.compile(r"\S+")


@dataclass(frozen=True)
class IndexSettings:
    chunk_tokens: int = 256  # tokens per chunk; 0 = one chunk per document
    overlap: int = 32  # tokens shared by consecutive chunks of a document
    index_type: Literal["auto", "flat", "hnsw", "ivf", "ivfpq"] = "auto"
    exact_limit: int = 100_000  # auto: exact search up to this many vectors, HNSW above
    hnsw_m: int = 32  # graph neighbours per vector
    ef_search: int = 128  # HNSW candidates per query: recall up, speed down
    nlist: int = 0  # IVF lists; 0 = 4 * sqrt(vectors), at most vectors / 39
    nprobe: int = 16  # IVF lists searched per query
    pq_bytes: int = 0  # IVF-PQ bytes per vector; 0 = dim / 4 (must divide dim)
    language: Literal["auto", "en", "zh"] = "auto"  # lexical analysis (gptkit.search.lexical)
    bm25: bool = True  # also build the BM25 index

    def __post_init__(self):
        check_fields(self, "index settings")
        require(self, "index settings", chunk_tokens=">= 0", overlap=">= 0", exact_limit=">= 0", hnsw_m=">= 2",
                ef_search=">= 1", nlist=">= 0", nprobe=">= 1", pq_bytes=">= 0")
        if self.chunk_tokens and self.overlap >= self.chunk_tokens:
            raise GptkitError(f"index settings: overlap ({self.overlap}) must be below chunk_tokens "
                              f"({self.chunk_tokens})")


@dataclass(frozen=True)
class Chunk:
    doc: str  # the document's id
    start: int  # character offsets of the chunk in the document
    end: int
    text: str


def chunk_spans(spans: Sequence[tuple[int, int]], chunk_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """Character ranges of the chunks of a text whose tokens cover `spans`: chunk_tokens tokens each,
    consecutive ones sharing `overlap` tokens, the last one ending with the text."""
    if not spans:
        return []
    if not chunk_tokens or len(spans) <= chunk_tokens:
        return [(spans[0][0], spans[-1][1])]
    ranges, first = [], 0
    while True:
        last = min(first + chunk_tokens, len(spans)) - 1
        ranges.append((spans[first][0], spans[last][1]))
        if last == len(spans) - 1:
            return ranges
        first += chunk_tokens - overlap


def chunk_document(doc: str, text: str, spans: Sequence[tuple[int, int]], settings: IndexSettings) -> list[Chunk]:
    chunks = []
    for start, end in chunk_spans(spans, settings.chunk_tokens, settings.overlap):
        piece = text[start:end]
        start += len(piece) - len(piece.lstrip())  # a token's span may begin with the space before its word
        piece = piece.strip()
        if piece:
            chunks.append(Chunk(doc, start, start + len(piece), piece))
    return chunks


def read_corpus(sources: Iterable[str], text_field: str = "text", id_field: str = "_id",
                title_field: str = "title", options: ReadOptions | None = None) -> Iterator[tuple[str, str]]:
    """(id, text) per document. JSONL rows give their `id_field` (else FILE#LINE) and put their `title_field`
    on a line before the text (as BEIR); other formats come from the corpus readers, ids FILE#N."""
    options = dataclasses.replace(options or ReadOptions(), text_field=text_field)
    sources, skipped = [str(s) for s in sources], []
    for path in expand_sources(sources, options.include, options.exclude):
        name = Path(path).name
        if name.removesuffix(".gz").endswith(".jsonl"):
            yield from _jsonl_documents(path, text_field, id_field, title_field)
            continue
        stats = ReadStats()
        if is_markdown(name):  # sections, not paragraphs: a heading stays with its text
            texts = (section for text in read_documents([path], _whole_files(options), stats)
                     for section in markdown_sections(text))
        else:
            texts = read_documents([path], options, stats)
        for n, text in enumerate(texts, 1):
            if stats.invalid_utf8_documents:  # an index shows its texts: never with bytes replaced
                raise GptkitError(f"{path}: document {n} is not UTF-8 text; convert the file or leave it out")
            yield f"{name}#{n}", text
        if stats.skipped_binary and path in sources:
            raise GptkitError(f"{path} is a binary file, not text; leave it out of the index")
        if stats.skipped_binary:
            skipped.append(path)
    if skipped:
        log.warning(skipped_binary_warning(skipped))


def _whole_files(options: ReadOptions) -> ReadOptions:
    return dataclasses.replace(options, txt_documents="file")


def _jsonl_documents(path: str, text_field: str, id_field: str, title_field: str) -> Iterator[tuple[str, str]]:
    for n, row in json_lines(path):
        if not isinstance(row.get(text_field), str):
            raise GptkitError(f"{path} line {n}: no text field {text_field!r}; choose one with --text-field")
        yield str(row.get(id_field, f"{Path(path).name}#{n}")), beir_text(row, text_field, title_field)


class Index:
    """Chunks, their vectors (FAISS; None without an encoder) and their BM25 index (None when bm25 is off)."""

    def __init__(self, settings: IndexSettings, encoder: EncoderInfo | None, chunks: list[Chunk], vectors=None,
                 lexical: LexicalIndex | None = None, stats: dict | None = None):
        self.settings, self.encoder, self.chunks = settings, encoder, chunks
        self.vectors, self.lexical, self.stats = vectors, lexical, stats or {}

    @classmethod
    def build(cls, documents: Iterable[tuple[str, str]], encoder: Encoder | None = None,
              settings: IndexSettings = IndexSettings()) -> Index:
        index = cls(settings, encoder.info if encoder is not None else None, [])
        index.add(documents, encoder)
        return index

    def add(self, documents: Iterable[tuple[str, str]], encoder: Encoder | None = None) -> int:
        """Chunk, embed and add documents; returns the number of chunks added."""
        if encoder is not None and self.encoder is not None:
            self.check_encoder(encoder.info)
        elif (encoder is None) != (self.encoder is None):
            raise GptkitError("this index " + ("has vectors: give the encoder it was built with" if encoder is None
                                               else "holds no vectors: it was built without an encoder"))
        if not self.settings.chunk_tokens:  # whole documents: no need to tokenize
            spans = _whole
        else:
            spans = encoder.token_spans if encoder is not None else _word_spans
        new = [c for doc, text in documents for c in chunk_document(doc, text, spans(text), self.settings)]
        if not new and not self.chunks:
            raise GptkitError("no documents to index: the sources hold no text")
        if new and encoder is not None:
            self._add_vectors(encoder.embed([c.text for c in new]))
        self.chunks.extend(new)
        if self.settings.bm25 and new:
            self.lexical = LexicalIndex.build([c.text for c in self.chunks], self.settings.language if
                                              self.lexical is None else self.lexical.language)
        return len(new)

    def _add_vectors(self, vectors: np.ndarray) -> None:
        if self.vectors is not None:
            self.vectors.add(vectors)
            return
        self.vectors, self.stats["index_type"] = make_faiss_index(vectors, self.settings)
        self.vectors.add(vectors)
        if self.stats["index_type"] != "flat":  # measured once, on the vectors it was built from
            self.stats["recall@10"] = measured_recall(self.vectors, vectors)
            self.stats["recall_measured_on"] = len(vectors)

    def check_encoder(self, info: EncoderInfo) -> None:
        if self.encoder is None:
            raise GptkitError(NO_VECTORS)
        if not self.encoder.same_encoder(info):
            raise GptkitError(f"the index was built with encoder {self.encoder.name} ({self.encoder.kind} "
                              f"{self.encoder.fingerprint}, pooling {self.encoder.pooling}); the query encoder "
                              f"{info.name} ({info.kind} {info.fingerprint}, pooling {info.pooling}) differs: "
                              f"use the index's encoder")

    def dense_search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, chunk rows), each (queries, k), best first; rows of -1 past the end."""
        if self.vectors is None:
            raise GptkitError(NO_VECTORS)
        return self.vectors.search(np.ascontiguousarray(vectors, dtype=np.float32), min(k, len(self.chunks)))

    # -- files ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        faiss = require_extra("faiss", "search")

        path = Path(path)
        info = {"schema": SCHEMA, "settings": dataclasses.asdict(self.settings), "chunks": len(self.chunks),
                "encoder": self.encoder.to_dict() if self.encoder else None, "stats": self.stats,
                "language": self.lexical.language if self.lexical else None}
        with atomic_directory(path, ours=lambda p: (p / INFO_FILE).is_file()) as tmp, writing(path):
            (tmp / CHUNKS_FILE).write_text("".join(json.dumps(dataclasses.asdict(c), ensure_ascii=False) + "\n"
                                                   for c in self.chunks), encoding="utf-8")
            if self.vectors is not None:
                faiss.write_index(self.vectors, str(tmp / VECTORS_FILE))
            if self.lexical is not None:
                self.lexical.save(tmp / BM25_DIR)
            (tmp / INFO_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Index:
        path = Path(path)
        if not (path / INFO_FILE).is_file():
            raise GptkitError(f"{path}: not a search index (no {INFO_FILE}); build one with gptkit index")
        return read_version(path, _load)


def _load(path: Path) -> Index:
    try:
        info = json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
        settings = IndexSettings(**info["settings"])
        encoder = EncoderInfo(**info["encoder"]) if info["encoder"] else None
        chunks = [Chunk(**json.loads(line)) for line in
                  (path / CHUNKS_FILE).read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError as e:
        raise GptkitError(f"{path}: {Path(e.filename).name} is missing; rebuild the index with gptkit index") from e
    except (ValueError, KeyError, TypeError) as e:
        raise GptkitError(f"{path}: the index files are damaged ({e}); rebuild it with gptkit index") from e
    if len(chunks) != info["chunks"]:
        raise GptkitError(f"{path}: {CHUNKS_FILE} has {len(chunks)} chunks, {INFO_FILE} says {info['chunks']}; "
                          f"rebuild the index with gptkit index")
    vectors = _read_vectors(path, len(chunks)) if encoder else None
    lexical = None
    if settings.bm25:
        if not (path / BM25_DIR).is_dir():
            raise GptkitError(f"{path}: {BM25_DIR}/ is missing; rebuild the index with gptkit index")
        lexical = LexicalIndex.load(path / BM25_DIR, info["language"])
    return Index(settings, encoder, chunks, vectors, lexical, info.get("stats"))


def _read_vectors(path: Path, count: int):
    faiss = require_extra("faiss", "search")

    file = path / VECTORS_FILE
    if not file.is_file():
        raise GptkitError(f"{path}: {VECTORS_FILE} is missing; rebuild the index with gptkit index")
    try:
        vectors = faiss.read_index(str(file))
    except RuntimeError as e:
        raise GptkitError(f"{file}: not a readable FAISS index (damaged?); rebuild the index with gptkit index") from e
    if vectors.ntotal != count:
        raise GptkitError(f"{file} holds {vectors.ntotal} vectors for {count} chunks; rebuild the index")
    return vectors


def make_faiss_index(vectors: np.ndarray, settings: IndexSettings):
    """An empty FAISS index for unit vectors like `vectors` (trained on them when it needs training), and its type."""
    faiss = require_extra("faiss", "search")

    n, dim = vectors.shape
    kind = settings.index_type
    if kind == "auto":
        kind = "flat" if n <= settings.exact_limit else "hnsw"
    if kind == "flat":
        return faiss.IndexFlatIP(dim), kind
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = max(40, 2 * settings.hnsw_m)
        index.hnsw.efSearch = settings.ef_search
        return index, kind
    nlist = settings.nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))  # k-means: 39+ points per list
    if n < nlist:
        raise GptkitError(f"an {kind} index needs at least nlist={nlist} vectors to train on, got {n}; "
                          f"use index_type=flat (or a smaller nlist)")
    quantizer = faiss.IndexFlatIP(dim)
    if kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        if n < _PQ_TRAINING:
            raise GptkitError(f"an ivfpq index learns 256 codes per sub-vector: it needs {_PQ_TRAINING:,} vectors to "
                              f"train on, got {n:,}; use index_type=flat, hnsw or ivf")
        pq = settings.pq_bytes or max(1, dim // 4)
        if dim % pq:
            raise GptkitError(f"ivfpq: pq_bytes={pq} must divide the vector dimension {dim}")
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq, 8, faiss.METRIC_INNER_PRODUCT)
    size = max(64 * nlist, _PQ_TRAINING if kind == "ivfpq" else 0)  # k-means wants ~40 points per centroid
    sample = vectors if n <= size else vectors[np.random.default_rng(0).choice(n, size, replace=False)]
    index.train(sample)
    index.nprobe = settings.nprobe
    return index, kind


def measured_recall(index, vectors: np.ndarray, queries: int = 500, k: int = 10, seed: int = 0) -> float:
    """Recall@k of `index` (holding just `vectors`) against exact search; noisy copies of some of them are the
    queries."""
    faiss = require_extra("faiss", "search")

    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(len(vectors), min(queries, len(vectors)), replace=False)]
    sample = sample + rng.normal(0, 0.05, sample.shape).astype(np.float32)
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(sample, k)
    _, found = index.search(sample, k)
    return float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found)]))


def _whole(text: str) -> list[tuple[int, int]]:
    return [(0, len(text))]


def _word_spans(text: str) -> list[tuple[int, int]]:
    """Without an encoder a chunk counts words."""
    return [m.span() for m in _WORDS.finditer(text)]
