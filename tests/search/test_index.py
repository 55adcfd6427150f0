"""The index: chunks with offsets, FAISS vectors, BM25; save/load and incremental add change no result."""

import json

import numpy as np
import pytest

from gptkit.errors import GptkitError
from gptkit.search.embed import load_encoder
from gptkit.search.hybrid import Searcher
from gptkit.search.index import Index, IndexSettings, chunk_spans, make_faiss_index, measured_recall, read_corpus
from tests.conftest import DOCUMENTS

QUERIES = ["how does a vaccine work", "pets at the vet", "interest rates", "snow melts", "yeast", "疫苗"]


@pytest.fixture(scope="module")
def encoder(encoder_checkpoint):
    return load_encoder(encoder_checkpoint, dtype="fp32")


def _results(searcher, mode):
    return [[(h.row, round(h.score, 5)) for h in hits] for hits in searcher.search_many(QUERIES, k=4, mode=mode)]


def test_chunks_cover_the_text_with_the_overlap_asked_for():
    spans = [(i * 2, i * 2 + 1) for i in range(10)]  # ten one-character tokens with a space after each
    assert chunk_spans(spans, 4, 1) == [(0, 7), (6, 13), (12, 19)]
    assert chunk_spans(spans, 0, 0) == [(0, 19)] and chunk_spans([], 4, 1) == []


def test_chunks_keep_document_ids_and_character_offsets(encoder):
    settings = IndexSettings(chunk_tokens=8, overlap=2)
    index = Index.build(DOCUMENTS.items(), encoder, settings)
    assert {c.doc for c in index.chunks} == set(DOCUMENTS) and len(index.chunks) > len(DOCUMENTS)
    for chunk in index.chunks:
        assert DOCUMENTS[chunk.doc][chunk.start : chunk.end] == chunk.text


def test_save_load_round_trip_gives_the_same_results(encoder, tmp_path):
    index = Index.build(DOCUMENTS.items(), encoder, IndexSettings(chunk_tokens=12, overlap=3))
    index.save(tmp_path / "index")
    loaded = Index.load(tmp_path / "index")
    assert loaded.chunks == index.chunks and loaded.encoder == index.encoder
    for mode in ("dense", "bm25", "hybrid"):
        assert _results(Searcher(loaded, encoder), mode) == _results(Searcher(index, encoder), mode)


def test_incremental_add_gives_the_same_results_as_one_build(encoder, tmp_path):
    items = list(DOCUMENTS.items())
    whole = Index.build(items, encoder, IndexSettings(chunk_tokens=12, overlap=3))
    Index.build(items[:3], encoder, IndexSettings(chunk_tokens=12, overlap=3)).save(tmp_path / "index")
    grown = Index.load(tmp_path / "index")
    grown.add(items[3:], encoder)
    grown.save(tmp_path / "index")
    grown = Index.load(tmp_path / "index")
    for mode in ("dense", "bm25", "hybrid"):
        assert _results(Searcher(grown, encoder), mode) == _results(Searcher(whole, encoder), mode)


def test_a_query_with_another_encoder_is_a_clear_error(encoder, encoder_checkpoint):
    index = Index.build(DOCUMENTS.items(), encoder)
    other = load_encoder(encoder_checkpoint, pooling="last")
    with pytest.raises(GptkitError, match="built with encoder .* differs"):
        Searcher(index, other)
    with pytest.raises(GptkitError, match="differs"):
        index.add([("new", "a new document")], other)


def test_an_index_without_an_encoder_is_bm25_only(tmp_path):
    index = Index.build(DOCUMENTS.items(), None, IndexSettings(chunk_tokens=5, overlap=1))
    index.save(tmp_path / "index")
    searcher = Searcher(Index.load(tmp_path / "index"))
    assert searcher.default_mode() == "bm25"
    assert searcher.search("yeast dough", k=1)[0].chunk.doc == "baking"
    with pytest.raises(GptkitError, match="no vectors"):
        searcher.search("yeast", mode="dense")


@pytest.mark.parametrize("damage", ["missing chunks", "missing vectors", "garbled vectors", "garbled info",
                                    "short chunks", "missing bm25", "not an index"])
def test_damaged_or_missing_index_files_are_one_line_errors(encoder, tmp_path, damage):
    path = tmp_path / "index"
    Index.build(DOCUMENTS.items(), encoder).save(path)
    version = path.resolve()
    if damage == "missing chunks":
        (version / "chunks.jsonl").unlink()
    elif damage == "missing vectors":
        (version / "vectors.faiss").unlink()
    elif damage == "garbled vectors":
        (version / "vectors.faiss").write_bytes(b"not faiss at all")
    elif damage == "garbled info":
        (version / "index.json").write_text("{not json")
    elif damage == "short chunks":
        lines = (version / "chunks.jsonl").read_text().splitlines()
        (version / "chunks.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    elif damage == "missing bm25":
        import shutil
        shutil.rmtree(version / "bm25")
    else:
        path = tmp_path / "elsewhere"
        path.mkdir()
    with pytest.raises(GptkitError) as error:
        Index.load(path)
    assert "\n" not in str(error.value) and ("rebuild" in str(error.value) or "gptkit index" in str(error.value))


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "ivfpq"])
def test_approximate_indexes_report_recall_against_exact(kind):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((10_000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, chosen = make_faiss_index(vectors, IndexSettings(index_type=kind, nlist=16, nprobe=16))
    index.add(vectors)
    assert chosen == kind
    recall = measured_recall(index, vectors)
    assert (recall > 0.9) if kind != "ivfpq" else (0.1 < recall < 1.0)  # PQ codes are lossy


def test_auto_picks_exact_search_for_small_collections_and_hnsw_above():
    vectors = np.eye(8, dtype=np.float32)
    assert make_faiss_index(vectors, IndexSettings())[1] == "flat"
    assert make_faiss_index(vectors, IndexSettings(exact_limit=4))[1] == "hnsw"
    with pytest.raises(GptkitError, match="needs at least"):
        make_faiss_index(vectors, IndexSettings(index_type="ivf", nlist=16))
    with pytest.raises(GptkitError, match="10,000 vectors"):
        make_faiss_index(vectors, IndexSettings(index_type="ivfpq", nlist=2))


def test_corpus_reading_gives_ids_and_titles(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "Rivers", "text": "They flood."}) + "\n"
                                           + json.dumps({"text": "No id here."}) + "\n")
    (tmp_path / "notes.txt").write_text("First paragraph.\n\nSecond paragraph.\n")
    docs = [(doc, text.strip()) for doc, text in read_corpus([str(tmp_path)])]
    assert docs == [("d1", "Rivers\nThey flood."), ("corpus.jsonl#2", "No id here."),
                    ("notes.txt#1", "First paragraph."), ("notes.txt#2", "Second paragraph.")]


def test_settings_and_empty_sources_are_checked(tmp_path):
    with pytest.raises(GptkitError, match="overlap"):
        IndexSettings(chunk_tokens=4, overlap=4)
    with pytest.raises(GptkitError, match="no documents"):
        Index.build([], None)


def test_binary_files_in_a_folder_are_left_out_with_one_warning(tmp_path, caplog):
    (tmp_path / "page.md").write_text("A page of text.")
    for i in range(5):
        (tmp_path / f"picture{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" * 50)
    assert [doc for doc, _ in read_corpus([str(tmp_path)])] == ["page.md#1"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("skipped 5 binary file(s): ") and warnings[0].endswith(", ...")
