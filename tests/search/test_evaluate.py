"""Retrieval and STS evaluation of an encoder and index."""

import numpy as np
import pytest

from gptkit.eval.retrieval import ndcg_at_k
from gptkit.search.embed import load_encoder
from gptkit.search.evaluate import evaluate_retrieval, evaluate_sts
from gptkit.search.hybrid import Searcher
from gptkit.search.index import Index, IndexSettings
from tests.conftest import DOCUMENTS


def test_retrieval_scores_rank_documents_at_their_best_chunk():
    index = Index.build(DOCUMENTS.items(), None, IndexSettings(chunk_tokens=6, overlap=1))
    queries = {"q1": "yeast ferments sugars", "q2": "snow in the mountains", "q3": "interest rates investors"}
    qrels = {"q1": {"baking": 1}, "q2": {"rivers": 1}, "q3": {"markets": 1, "pets": 1}}
    scores = evaluate_retrieval(Searcher(index), queries, qrels, depth=3)
    assert scores["recall@1"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert scores["ndcg@10"] == pytest.approx((1 + 1 + ndcg_at_k(["markets"], qrels["q3"])) / 3)


def test_sts_spearman_of_an_encoder(encoder_checkpoint):
    encoder = load_encoder(encoder_checkpoint, dtype="fp32")
    texts = list(DOCUMENTS.values())
    pairs = [(texts[0], texts[i], 0.0) for i in range(1, 5)]
    vectors = encoder.embed(texts)
    cosines = vectors[1:5] @ vectors[0]
    pairs = [(a, b, float(np.argsort(np.argsort(cosines))[i])) for i, (a, b, _) in enumerate(pairs)]
    assert evaluate_sts(encoder, pairs) == pytest.approx(100.0)  # gold scores ranked as the cosines are
