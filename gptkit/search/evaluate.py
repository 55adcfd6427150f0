"""Retrieval and similarity evaluation of an encoder, an index, or both (the metrics: gptkit.eval.retrieval).

    scores = evaluate_retrieval(searcher, queries, qrels, mode="hybrid")   # nDCG@10, MRR@10, recall@k
    rho = evaluate_sts(encoder, read_sts("sts-dev.csv"))                     # Spearman x 100
"""

from __future__ import annotations

from collections.abc import Sequence

from ..eval.retrieval import CUTOFFS, retrieval_scores, spearman
from .embed import Encoder
from .hybrid import Mode, Searcher, documents


def evaluate_retrieval(searcher: Searcher, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                       mode: Mode | None = None, depth: int = max(CUTOFFS), **fusion) -> dict[str, float]:
    """Scores of the document rankings (each document at its best chunk) for the judged queries; `fusion`:
    Searcher.search_many's hybrid settings."""
    ids = [q for q in qrels if q in queries]
    # chunks, not documents, come back: ask for more so that `depth` documents remain after merging
    chunks_per_doc = max(1, round(len(searcher.index.chunks) / max(1, len({c.doc for c in searcher.index.chunks}))))
    hits = searcher.search_many([queries[q] for q in ids], k=depth * chunks_per_doc, mode=mode, **fusion)
    return retrieval_scores({q: documents(h)[:depth] for q, h in zip(ids, hits)}, qrels)


def evaluate_sts(encoder: Encoder, pairs: Sequence[tuple[str, str, float]]) -> float:
    """Spearman correlation (x 100) of the cosine of each pair's embeddings with its gold score."""
    first = encoder.embed([p[0] for p in pairs])
    second = encoder.embed([p[1] for p in pairs])
    return 100 * spearman((first * second).sum(axis=1).tolist(), [p[2] for p in pairs])
