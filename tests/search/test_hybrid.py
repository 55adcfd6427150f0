"""Fusion of rankings, and the searcher's modes and snippets."""

import pytest

from gptkit.errors import GptkitError
from gptkit.search.embed import load_encoder
from gptkit.search.hybrid import Searcher, documents, reciprocal_rank_fusion, snippet, weighted_fusion
from gptkit.search.index import Index
from gptkit.search.lexical import analyzer
from tests.conftest import DOCUMENTS


def test_reciprocal_rank_fusion_matches_a_hand_computation():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    expected = {1: 1 / 61 + 1 / 62, 2: 1 / 62, 3: 1 / 63 + 1 / 61, 4: 1 / 63}
    assert [item for item, _ in fused] == [1, 3, 2, 4]
    assert dict(fused) == pytest.approx(expected)


def test_rrf_k_and_weights_change_the_order_as_they_should():
    # item 5 tops one list; item 6 is second in both: a small k favours the top, a large k agreement
    rankings = [[5, 6, 7], [8, 6, 9]]
    assert reciprocal_rank_fusion(rankings, k=0)[0][0] == 5
    assert reciprocal_rank_fusion(rankings, k=60)[0][0] == 6
    assert reciprocal_rank_fusion(rankings, k=60, weights=[0.0, 1.0])[0][0] == 8


def test_weighted_fusion_scales_each_ranking_to_unit_range():
    fused = dict(weighted_fusion([{1: 10.0, 2: 0.0}, {2: 0.9, 3: 0.5}], [0.5, 0.5]))
    assert fused == pytest.approx({1: 0.5, 2: 0.5, 3: 0.0})


def test_hybrid_search_finds_what_either_part_finds(encoder_checkpoint):
    encoder = load_encoder(encoder_checkpoint, dtype="fp32")
    searcher = Searcher(Index.build(DOCUMENTS.items(), encoder), encoder)
    hybrid = searcher.search("yeast dough bread", k=len(DOCUMENTS), mode="hybrid")
    assert hybrid[0].chunk.doc == "baking" and hybrid[0].bm25_rank == 1  # the words decide (an untrained encoder)
    assert {h.chunk.doc for h in hybrid} == set(DOCUMENTS)
    dense = searcher.search("yeast dough bread", k=3, mode="dense")
    assert all(h.dense_rank == n for n, h in enumerate(dense, 1)) and all(h.bm25_rank is None for h in dense)
    assert searcher.default_mode() == "hybrid"
    words = [h.row for h in searcher.search("yeast dough bread", k=2, mode="bm25")]
    vectors = [h.row for h in searcher.search("yeast dough bread", k=2, mode="dense")]
    for fusion in ("rrf", "weighted"):  # a weight of 0 or 1 leaves one ranking in charge
        ranked = [h.row for h in searcher.search("yeast dough bread", k=2, fusion=fusion, dense_weight=0.0)]
        assert ranked[: len(words)] == words
        assert [h.row for h in searcher.search("yeast dough bread", k=2, fusion=fusion, dense_weight=1.0)] == vectors
    with pytest.raises(GptkitError, match="unknown search mode"):
        searcher.search("x", mode="fuzzy")


def test_documents_are_listed_once_at_their_best_chunk():
    from gptkit.search.hybrid import Hit
    from gptkit.search.index import Chunk

    hits = [Hit(i, Chunk(doc, 0, 1, "x"), 1.0) for i, doc in enumerate(["a", "b", "a", "c", "b"])]
    assert documents(hits) == ["a", "b", "c"]


def test_snippets_mark_the_query_words_in_any_inflection():
    text = "Vaccines train the immune system. " + "Filler words go here. " * 20 + "An infection is avoided."
    shown = snippet(text, "vaccine immunity", analyzer("en"), width=60)
    assert shown.startswith("**Vaccines** train the **immune** system.") and shown.endswith("…")
    assert snippet("疫苗通过训练免疫系统来识别病毒", "疫苗如何识别病毒", analyzer("zh")).count("**疫苗**") == 1
