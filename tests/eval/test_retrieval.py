"""Retrieval metrics against hand computations, Spearman against scipy's definition, BEIR and STS readers."""

import json
import math

import pytest

from gptkit.errors import GptkitError
from gptkit.eval.retrieval import (
    mrr_at_k,
    ndcg_at_k,
    read_beir,
    read_sts,
    recall_at_k,
    retrieval_scores,
    spearman,
)


def test_ndcg_matches_a_hand_computation():
    ranked = ["d3", "d1", "d9", "d2"]
    relevant = {"d1": 2, "d2": 1, "d7": 1}
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(ranked, relevant, 1) == 0.0
    assert ndcg_at_k(["d1", "d2", "d7"], relevant, 10) == pytest.approx(1.0)


def test_recall_and_mrr():
    relevant = {"a": 1, "b": 1, "c": 0}
    assert recall_at_k(["x", "a", "c", "b"], relevant, 2) == 0.5
    assert recall_at_k(["x", "a", "c", "b"], relevant, 4) == 1.0
    assert mrr_at_k(["x", "c", "b"], relevant, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "c", "b"], relevant, 2) == 0.0


def test_scores_average_over_judged_queries_and_count_missing_runs_as_empty():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}  # q3 has nothing relevant: not scored
    scores = retrieval_scores({"q1": ["a"]}, qrels)
    assert scores["recall@1"] == 0.5 and scores["ndcg@10"] == 0.5 and scores["mrr@10"] == 0.5
    with pytest.raises(GptkitError, match="no query"):
        retrieval_scores({}, {"q": {"a": 0}})


def test_spearman_matches_scipy_with_ties():
    scipy_stats = pytest.importorskip("scipy.stats")
    x = [1, 2, 2, 3, 5, 5, 5, 0.5]
    y = [0.1, 0.4, 0.3, 0.3, 0.9, 0.2, 0.8, 0.0]
    assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic, abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(GptkitError):
        spearman([1], [1])


def test_beir_directories_are_read(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "T", "text": "body"}) + "\n"
                                           + json.dumps({"_id": 2, "title": "", "text": "untitled"}) + "\n")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "question"}) + "\n"
                                            + json.dumps({"_id": "q2", "text": "unjudged"}) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    corpus, queries, qrels = read_beir(tmp_path)
    assert corpus == {"d1": "T\nbody", "2": "untitled"} and queries == {"q1": "question"}
    assert qrels == {"q1": {"d1": 1}}
    with pytest.raises(GptkitError, match="splits here: test"):
        read_beir(tmp_path, "dev")


def test_sts_files_are_read_in_both_shapes(tmp_path):
    (tmp_path / "sts.csv").write_text("main\tfile\t2012\t0001\t4.5\tA man runs.\tA man is running.\n"
                                      "main\tfile\t2012\t0002\t0.0\tA cat.\tThe stock fell.\n")
    (tmp_path / "sts.jsonl").write_text(json.dumps({"sentence1": "a", "sentence2": "b", "score": 3}) + "\n"
                                        + json.dumps({"sentence1": "c", "sentence2": "d", "score": 1}) + "\n")
    assert read_sts(tmp_path / "sts.csv")[0] == ("A man runs.", "A man is running.", 4.5)
    assert read_sts(tmp_path / "sts.jsonl")[1] == ("c", "d", 1.0)
    (tmp_path / "bad.csv").write_text("just one column\nand another\n")
    with pytest.raises(GptkitError, match="line 1"):
        read_sts(tmp_path / "bad.csv")
