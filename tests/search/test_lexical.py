"""BM25 over analysed words: stop words and stemming (English), jieba words and stop words (Chinese)."""

import pytest

from gptkit.errors import GptkitError
from gptkit.search.lexical import LexicalIndex, analyzer, detect_language


def test_english_analysis_drops_stop_words_and_stems():
    assert analyzer("en")("The vaccines were training the Immune systems") == ["vaccin", "train", "immun", "system"]


def test_chinese_analysis_cuts_words_and_drops_stop_words():
    terms = analyzer("zh")("疫苗是如何训练免疫系统的")
    assert "疫苗" in terms and "免疫" in terms and "是" not in terms and "的" not in terms


def test_stop_words_and_stems_rank_the_relevant_text_first_where_raw_terms_do_not():
    # raw words: the query shares "the", "of", "in" with the distractor three times over, and "vaccines"
    # appears in the relevant text only as "vaccine"; analysed, only the content words count
    texts = ["the history of the city in the north of the country in the winter",
             "a vaccine protects children against measles"]
    query = "the effect of vaccines in the children"
    raw = [sum(text.split().count(word) for word in query.split()) for text in texts]
    assert raw[0] > raw[1]
    rows, _ = LexicalIndex.build(texts, "en").search(query, 2)
    assert rows.tolist()[0] == 1


def test_chinese_stop_words_rank_the_relevant_text_first_where_raw_characters_do_not():
    texts = ["我们的的的了了了是是是这个那个我们他们", "疫苗可以保护儿童免受麻疹"]
    query = "我们的疫苗是怎么保护儿童的"
    raw = [sum(text.count(ch) for ch in query) for text in texts]
    assert raw[0] > raw[1]
    index = LexicalIndex.build(texts, "auto")
    assert index.language == "zh"
    rows, _ = index.search(query, 2)
    assert rows.tolist()[0] == 1


def test_a_query_of_stop_words_only_finds_nothing():
    rows, scores = LexicalIndex.build(["some words here", "other words"], "en").search("the of and", 5)
    assert len(rows) == 0 and len(scores) == 0


def test_language_detection():
    assert detect_language(["Plain English text."]) == "en"
    assert detect_language(["这是中文文本，有一些 English words。"]) == "zh"


def test_save_and_load_give_the_same_results(tmp_path):
    index = LexicalIndex.build(["rivers flood in spring", "markets fell today", "the river is wide"], "en")
    index.save(tmp_path / "bm25")
    loaded = LexicalIndex.load(tmp_path / "bm25", "en")
    for query in ("river flooding", "market"):
        assert [a.tolist() for a in loaded.search(query, 3)] == [a.tolist() for a in index.search(query, 3)]


def test_unknown_language_and_damaged_files_are_clear_errors(tmp_path):
    with pytest.raises(GptkitError, match="unknown language"):
        analyzer("fr")
    (tmp_path / "bm25").mkdir()
    with pytest.raises(GptkitError, match="damaged"):
        LexicalIndex.load(tmp_path / "bm25", "en")
