"""Retrieval and similarity metrics, and the BEIR files they are computed on: no model and no torch here.

    corpus, queries, qrels = read_beir("scifact", split="test")
    scores = retrieval_scores(ranked, qrels)   # {"ndcg@10", "mrr@10", "recall@1", ..., "recall@100"}
    spearman(predicted_similarities, gold_scores)

`ranked` maps each query id to its document ids, best first; `qrels` maps each
query id to {document id: relevance grade}. The definitions are BEIR's (via
pytrec_eval): nDCG with the gain equal to the grade and log2(rank + 1) discounts,
the ideal ranking made from the judged documents; recall@k is the share of the
query's relevant documents found in its top k; MRR@k the reciprocal rank of the
first relevant one. Each is averaged over the queries that have judgments.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import GptkitError

CUTOFFS = (1, 10, 100)


def ndcg_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain of one ranking at cutoff k (0 when nothing is relevant)."""
    gains = [relevant.get(doc, 0) for doc in ranked[:k]]
    dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(gains))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int) -> float:
    wanted = {doc for doc, grade in relevant.items() if grade > 0}
    return len(wanted.intersection(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    for rank, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (rank + 1)
    return 0.0


def retrieval_scores(ranked: dict[str, Sequence[str]], qrels: dict[str, dict[str, int]],
                     cutoffs: Sequence[int] = CUTOFFS) -> dict[str, float]:
    """nDCG@10, MRR@10 and recall@k (for each cutoff), averaged over the judged queries; a query without a
    ranking counts as one that found nothing."""
    judged = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    if not judged:
        raise GptkitError("no query has a relevant document in the qrels: nothing to score")
    runs = [(ranked.get(q, []), qrels[q]) for q in judged]
    scores = {"ndcg@10": float(np.mean([ndcg_at_k(r, rel, 10) for r, rel in runs])),
              "mrr@10": float(np.mean([mrr_at_k(r, rel, 10) for r, rel in runs]))}
    scores.update({f"recall@{k}": float(np.mean([recall_at_k(r, rel, k) for r, rel in runs])) for k in cutoffs})
    return scores


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's on the ranks, ties given their mean rank (as scipy.stats)."""
    if len(x) != len(y) or len(x) < 2:
        raise GptkitError(f"Spearman correlation needs two equally long lists of 2+ values, got {len(x)} and {len(y)}")
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denominator) if denominator else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    ordered = np.sort(values)
    for value in np.unique(ordered[1:][np.diff(ordered) == 0]):  # ties share their mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def read_beir(directory: str | Path, split: str = "test") -> tuple[dict[str, str], dict[str, str], dict]:
    """A BEIR dataset: {doc id: "title text"}, {query id: text} (judged in `split` only), {query id: {doc id: grade}}.

    Files: corpus.jsonl[.gz] ({"_id", "title", "text"}), queries.jsonl[.gz] ({"_id", "text"}),
    qrels/SPLIT.tsv (query-id, corpus-id, score, with a header line).
    """
    directory = Path(directory)
    qrels = read_qrels(directory / "qrels" / f"{split}.tsv")
    corpus = {row["_id"]: beir_text(row) for row in _jsonl(directory, "corpus")}
    queries = {row["_id"]: row["text"] for row in _jsonl(directory, "queries") if row["_id"] in qrels}
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise GptkitError(f"{directory}: {len(missing)} judged queries are not in queries.jsonl (first: {missing[0]})")
    return corpus, queries, qrels


def beir_text(row: dict, text_field: str = "text", title_field: str = "title") -> str:
    """A BEIR document as one text: its title, a newline, its body (as BEIR's encoders read it)."""
    title, text = row.get(title_field), row.get(text_field)
    title, text = (title.strip() if isinstance(title, str) else ""), (text if isinstance(text, str) else "")
    return f"{title}\n{text}" if title else text


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        splits = sorted(p.stem for p in path.parent.glob("*.tsv"))
        raise GptkitError(f"{path}: no such qrels file" + (f" (splits here: {', '.join(splits)})" if splits else ""))
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if number == 1 and row and not row[-1].lstrip("-").isdigit():
                continue  # the header
            if len(row) < 3 or not row[-1].lstrip("-").isdigit():
                raise GptkitError(f"{path} line {number}: expected query-id, corpus-id, score (tab-separated)")
            qrels.setdefault(row[0], {})[row[-2]] = int(row[-1])
    return qrels


def _jsonl(directory: Path, name: str) -> list[dict]:
    path = next((p for p in (directory / f"{name}.jsonl", directory / f"{name}.jsonl.gz") if p.is_file()), None)
    if path is None:
        raise GptkitError(f"{directory}: no {name}.jsonl (or .jsonl.gz); a BEIR dataset has corpus, queries, qrels/")
    rows = []
    for number, row in json_lines(path):
        if "_id" not in row:
            raise GptkitError(f"{path} line {number}: a BEIR row has an _id")
        rows.append({**row, "_id": str(row["_id"])})
    return rows


def json_lines(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSONL file (gzipped too); anything else is an error."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise GptkitError(f"{path} line {number}: not JSON ({e})") from e
            if not isinstance(row, dict):
                raise GptkitError(f"{path} line {number}: not a JSON object")
            yield number, row


def read_sts(path: str | Path) -> list[tuple[str, str, float]]:
    """Scored sentence pairs: STS Benchmark's tab-separated files (genre, file, year, id, score, sentence 1,
    sentence 2) or JSONL {"sentence1", "sentence2", "score"}."""
    path = Path(path)
    if not path.is_file():
        raise GptkitError(f"{path}: no such file")
    pairs = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                if line.lstrip().startswith("{"):
                    row = json.loads(line)
                    pairs.append((str(row["sentence1"]), str(row["sentence2"]), float(row["score"])))
                else:
                    parts = line.rstrip("\n").split("\t")
                    pairs.append((parts[5], parts[6], float(parts[4])))
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise GptkitError(f"{path} line {number}: not a scored sentence pair (STS-B TSV, or JSONL with "
                                  f"sentence1, sentence2, score): {e}") from e
    if len(pairs) < 2:
        raise GptkitError(f"{path}: needs at least 2 scored sentence pairs, found {len(pairs)}")
    return pairs
