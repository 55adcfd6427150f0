"""embed, index, search, eval --retrieval/--sts and ask --index, end to end; mistakes exit 2 with one line."""

import json

import numpy as np
import pytest

from tests.conftest import DOCUMENTS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The documents as a BEIR dataset: corpus.jsonl, queries.jsonl, qrels/test.tsv."""
    tmp = tmp_path_factory.mktemp("beir")
    (tmp / "corpus.jsonl").write_text("".join(json.dumps({"_id": doc, "title": "", "text": text}) + "\n"
                                              for doc, text in DOCUMENTS.items()))
    queries = {"q1": "yeast bread dough", "q2": "snow melts river", "q3": "stock market investors"}
    (tmp / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    (tmp / "qrels").mkdir()
    (tmp / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tbaking\t1\nq2\trivers\t1\n"
                                            "q3\tmarkets\t1\n")
    return tmp


def test_embed_prints_json_lines_or_writes_npy(cli, encoder_checkpoint, tmp_path):
    out = cli("embed", encoder_checkpoint, "first text", "second text", "--dtype", "fp32")
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert [r["text"] for r in rows] == ["first text", "second text"] and len(rows[0]["embedding"]) == 32
    (tmp_path / "texts.txt").write_text("one\ntwo\n\nthree\n")
    cli("embed", encoder_checkpoint, "--input", tmp_path / "texts.txt", "--out", tmp_path / "v.npy")
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (3, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    err = cli("embed", encoder_checkpoint, "x", "--out", tmp_path / "v.npy", code=2).err
    assert "already exists" in err


def test_index_search_and_add(cli, encoder_checkpoint, corpus, tmp_path):
    index = tmp_path / "index"
    out = cli("index", corpus / "corpus.jsonl", "--encoder", encoder_checkpoint, "--out", index,
              "--chunk-tokens", "16", "--overlap", "4")
    assert "chunks indexed" in out.out and "flat vectors" in out.out and "BM25" in out.out
    out = cli("search", index, "yeast dough", "-k", "2", "--mode", "bm25")
    assert out.out.startswith("1. baking [") and "**yeast**" in out.out
    hits = [json.loads(line) for line in cli("search", index, "yeast dough", "--json").out.splitlines()]
    assert len(hits) == 5 and hits[0]["doc"] == "baking"
    assert DOCUMENTS["baking"][hits[0]["start"] : hits[0]["end"]] == hits[0]["text"]
    (tmp_path / "more.txt").write_text("Glaciers carve valleys over thousands of years.\n")
    assert "added" not in cli("index", tmp_path / "more.txt", "--out", index, "--add").err
    assert cli("search", index, "glaciers valleys", "-k", "1", "--json").out.count('"more.txt#1"') == 1
    assert "already exists" in cli("index", corpus / "corpus.jsonl", "--out", index, code=2).err


def test_index_include_picks_the_files_of_a_folder(cli, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "rivers.md").write_text("The river floods every spring.\n")
    (tmp_path / "docs" / "rivers.zh.md").write_text("这条河每年春天都会泛滥。\n")
    (tmp_path / "docs" / "notes.txt").write_text("Rivers are not in the index.\n")
    assert cli("index", tmp_path / "docs", "--include", "*.md", "--out", tmp_path / "all").out.startswith("2 chunks")
    assert cli("index", tmp_path / "docs", "--include", "*[!h].md", "--out", tmp_path / "english").out.startswith(
        "1 chunks")
    hits = cli("search", tmp_path / "english", "river floods", "--json").out
    assert '"rivers.md#1"' in hits and "rivers.zh.md" not in hits and "notes.txt" not in hits


def test_search_mistakes_are_one_line_errors(cli, encoder_checkpoint, corpus, tmp_path):
    err = cli("search", tmp_path / "missing", "q", code=2).err
    assert err.count("\n") == 1 and "not a search index" in err
    index = tmp_path / "index"
    cli("index", corpus / "corpus.jsonl", "--encoder", encoder_checkpoint, "--out", index)
    assert "--dense-weight must be in [0, 1]" in cli("search", index, "q", "--dense-weight", "2", code=2).err
    err = cli("search", index, "q", "--pooling", "last", code=2).err
    assert "differs" in err and err.count("\n") == 1
    (index.resolve() / "vectors.faiss").write_bytes(b"garbage")
    err = cli("search", index, "q", code=2).err
    assert "rebuild" in err and err.count("\n") == 1


def test_eval_scores_retrieval_on_beir_files_and_sts_pairs(cli, encoder_checkpoint, corpus, tmp_path):
    out = cli("eval", "bm25", "--retrieval", corpus, "--out", tmp_path / "bm25.json")
    scores = json.loads((tmp_path / "bm25.json").read_text())
    assert scores["recall@1"] == 1.0 and scores["ndcg@10"] == 1.0 and "ndcg@10 1.0000" in out.out
    out = cli("eval", encoder_checkpoint, "--retrieval", corpus, "--mode", "dense")
    assert "3 queries, dense" in out.out
    out = cli("eval", encoder_checkpoint, "--retrieval", corpus, "--dense-weight", "0", "--fusion", "weighted")
    assert "3 queries, hybrid): ndcg@10 1.0000" in out.out  # all weight on BM25, which finds each one
    (tmp_path / "sts.jsonl").write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n"
                                                for a, b, s in [("a cat", "a cat", 5), ("a dog", "stocks", 0),
                                                                ("rivers", "a river", 4)]))
    assert "Spearman" in cli("eval", encoder_checkpoint, "--sts", tmp_path / "sts.jsonl").out
    assert "say what to evaluate on" in cli("eval", encoder_checkpoint, code=2).err


def test_ask_answers_from_an_index_and_cites_the_chunk(cli, qa_checkpoint, tmp_path):
    ckpt, _ = qa_checkpoint
    (tmp_path / "facts.txt").write_text("The river of Teluk is Jade.\n\nThe king of Pym is Amber.\n\n"
                                        "Bread rises because of yeast.\n")
    cli("index", tmp_path / "facts.txt", "--out", tmp_path / "index")
    answer = json.loads(cli("ask", ckpt, "--index", tmp_path / "index", "-k", "2", "What is the king of Pym?",
                            "--null-threshold", "1e9", "--json").out)
    assert answer["retrieved"][0] == "facts.txt#2" and len(answer["sources"]) == 1
    assert answer["answer"] in answer["sources"][0]["text"]
    out = cli("ask", ckpt, "--index", tmp_path / "index", "What is the king of Pym?", "--null-threshold", "1e9")
    assert "\n[" in out.out
    assert "--context" in cli("ask", ckpt, "What?", code=2).err
