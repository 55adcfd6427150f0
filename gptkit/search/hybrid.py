"""Ranking: dense (vectors), BM25, or both fused; results with snippets that highlight the query's words.

    searcher = Searcher(Index.load("runs/index"), encoder)
    hits = searcher.search("how do vaccines work", k=5, mode="hybrid")

Reciprocal-rank fusion (Cormack et al. 2009) scores a chunk by sum over rankings
of weight / (rrf_k + rank), ranks counted from 1: it needs no score calibration,
and a chunk near the top of either list rises. Weighted fusion instead adds the
scores of each ranking after min-max scaling them to [0, 1] per query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import GptkitError
from .embed import Encoder
from .index import NO_VECTORS, Chunk, Index

Mode = Literal["dense", "bm25", "hybrid"]
MODES = ("dense", "bm25", "hybrid")


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60,
                           weights: Sequence[float] | None = None) -> list[tuple[int, float]]:
    """(item, fused score) pairs, best first; ties keep the order items were first seen in."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, 1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda pair: -pair[1])


def weighted_fusion(scored: Sequence[dict[int, float]], weights: Sequence[float]) -> list[tuple[int, float]]:
    """(item, sum of weight * min-max scaled score) pairs, best first; an item missing from a list adds 0."""
    fused: dict[int, float] = {}
    for scores, weight in zip(scored, weights):
        if not scores:
            continue
        low, high = min(scores.values()), max(scores.values())
        for item, score in scores.items():
            scaled = (score - low) / (high - low) if high > low else 1.0
            fused[item] = fused.get(item, 0.0) + weight * scaled
    return sorted(fused.items(), key=lambda pair: -pair[1])


@dataclass(frozen=True)
class Hit:
    row: int  # the chunk's row in the index
    chunk: Chunk
    score: float
    dense_rank: int | None = None  # 1-based; None: not in that ranking's candidates
    bm25_rank: int | None = None


class Searcher:
    """Searches an index; dense and hybrid modes embed queries with `encoder` (the one the index was built with)."""

    def __init__(self, index: Index, encoder: Encoder | None = None):
        if encoder is not None:
            index.check_encoder(encoder.info)
        self.index, self.encoder = index, encoder

    def default_mode(self) -> Mode:
        if self.encoder is None:
            return "bm25"
        return "hybrid" if self.index.lexical is not None else "dense"

    def search(self, query: str, k: int = 5, mode: Mode | None = None, **fusion) -> list[Hit]:
        return self.search_many([query], k, mode, **fusion)[0]

    def search_many(self, queries: Sequence[str], k: int = 5, mode: Mode | None = None, depth: int = 100,
                    fusion: Literal["rrf", "weighted"] = "rrf", rrf_k: int = 60,
                    dense_weight: float = 0.5) -> list[list[Hit]]:
        """The top k chunks per query; fusion looks at the top max(k, depth) of each ranking.

        dense_weight in [0, 1] weighs the dense ranking against BM25 (0.5: equal, plain RRF).
        """
        mode = mode or self.default_mode()
        if mode not in MODES:
            raise GptkitError(f"unknown search mode {mode!r}: use {', '.join(MODES)}")
        depth = max(k, depth)
        dense = self._dense(queries, depth) if mode in ("dense", "hybrid") else [{}] * len(queries)
        lexical = self._lexical(queries, depth) if mode in ("bm25", "hybrid") else [{}] * len(queries)
        results = []
        for d, b in zip(dense, lexical):
            if mode == "hybrid" and fusion == "rrf":
                ranked = reciprocal_rank_fusion([list(d), list(b)], rrf_k, [2 * dense_weight, 2 - 2 * dense_weight])
            elif mode == "hybrid":
                ranked = weighted_fusion([d, b], [dense_weight, 1 - dense_weight])
            else:
                ranked = list((d or b).items())
            dense_rank = {row: r for r, row in enumerate(d, 1)}
            bm25_rank = {row: r for r, row in enumerate(b, 1)}
            results.append([Hit(row, self.index.chunks[row], float(score), dense_rank.get(row), bm25_rank.get(row))
                            for row, score in ranked[:k]])
        return results

    def _dense(self, queries: Sequence[str], depth: int) -> list[dict[int, float]]:
        if self.index.vectors is None:
            raise GptkitError(NO_VECTORS)
        if self.encoder is None:
            raise GptkitError("dense and hybrid search embed the query: give the index's encoder, or use bm25")
        scores, rows = self.index.dense_search(self.encoder.embed(queries), depth)
        return [{int(r): float(s) for r, s in zip(rs, ss) if r >= 0} for rs, ss in zip(rows, scores)]

    def _lexical(self, queries: Sequence[str], depth: int) -> list[dict[int, float]]:
        if self.index.lexical is None:
            raise GptkitError("this index has no BM25 part (built with bm25 off): use --mode dense")
        return [dict(zip(*(a.tolist() for a in self.index.lexical.search(q, depth)))) for q in queries]


def documents(hits: Sequence[Hit]) -> list[str]:
    """The hits' document ids, each once, in the order of its best chunk."""
    return list(dict.fromkeys(hit.chunk.doc for hit in hits))


def snippet(text: str, query: str, analyze: Callable[[str], list[str]], width: int = 240,
            mark: tuple[str, str] = ("**", "**")) -> str:
    """Up to `width` characters of `text` where the query's terms are densest, each occurrence marked.

    A word matches when it analyses to a query term (so "Vaccines" matches "vaccine"); Chinese terms
    match where they occur.
    """
    terms = set(analyze(query))
    spans = [m.span() for m in _NON_CJK_WORD.finditer(text) if terms.intersection(analyze(m.group()))]
    for term in (t for t in terms if _CJK.search(t)):
        spans += [(m.start(), m.end()) for m in re.finditer(re.escape(term), text)]
    spans = _disjoint(sorted(spans))
    start = 0
    if spans and len(text) > width:  # the window holding most matches, a third of it before the first
        starts = [max(0, s - width // 3) for s, _ in spans]
        start = max(starts, key=lambda a: sum(a <= s and e <= a + width for s, e in spans))
        start = min(start, len(text) - width)
    end = min(len(text), start + width)
    out, last = [], start
    for s, e in spans:
        if start <= s and e <= end:
            out += [text[last:s], mark[0], text[s:e], mark[1]]
            last = e
    out.append(text[last:end])
    body = " ".join("".join(out).split())
    return ("…" if start else "") + body + ("…" if end < len(text) else "")


def _disjoint(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    kept: list[tuple[int, int]] = []
    for s, e in spans:
        if not kept or s >= kept[-1][1]:
            kept.append((s, e))
    return kept


_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NON_CJK_WORD = re.compile(r"[^\W\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
