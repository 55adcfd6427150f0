import csv
import gzip
import json

import pytest

from gptkit import GptkitError
from gptkit.data.corpus import ReadOptions, ReadStats, expand_sources, read_documents


def _write(path, data: bytes, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_txt_splits_into_paragraphs_lines_or_files(tmp_path, gz):
    f = _write(tmp_path / ("a.txt.gz" if gz else "a.txt"), b"one\ntwo\n\nthree\n\n\nfour", gz)
    assert list(read_documents([str(f)])) == ["one\ntwo\n", "three\n", "four"]
    assert list(read_documents([str(f)], ReadOptions(txt_documents="line"))) == ["one", "two", "three", "four"]
    assert list(read_documents([str(f)], ReadOptions(txt_documents="file"))) == ["one\ntwo\n\nthree\n\n\nfour"]


@pytest.mark.parametrize("gz", [False, True])
def test_jsonl_reads_the_chosen_field(tmp_path, gz):
    lines = [json.dumps({"body": f"doc {i}", "id": i}) for i in range(3)]
    f = _write(tmp_path / ("d.jsonl.gz" if gz else "d.jsonl"), "\n".join(lines).encode(), gz)
    assert list(read_documents([str(f)], ReadOptions(text_field="body"))) == ["doc 0", "doc 1", "doc 2"]
    with pytest.raises(GptkitError, match="no field 'text'"):
        list(read_documents([str(f)]))


@pytest.mark.parametrize("gz", [False, True])
def test_csv_reads_the_chosen_column(tmp_path, gz):
    plain = tmp_path / "plain.csv"
    with open(plain, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "content"])
        w.writerows([[1, "first, with comma"], [2, "second\nline"]])
    f = _write(tmp_path / "d.csv.gz", plain.read_bytes(), True) if gz else plain
    assert list(read_documents([str(f)], ReadOptions(column="content"))) == ["first, with comma", "second\nline"]
    with pytest.raises(GptkitError, match="no column 'text'.*id, content"):
        list(read_documents([str(f)]))


def test_parquet_reads_the_chosen_column(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["alpha", "beta", None], "n": [1, 2, 3]}), tmp_path / "d.parquet")
    assert list(read_documents([str(tmp_path / "d.parquet")])) == ["alpha", "beta"]


def test_directories_recurse_with_include_globs_and_skip_binaries(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "sub" / "b.txt").write_text("B")
    (tmp_path / "sub" / "c.md").write_text("C")
    (tmp_path / "sub" / "img.txt").write_bytes(b"\x89PNG\x00\x00binary")
    stats = ReadStats()
    assert list(read_documents([str(tmp_path)], ReadOptions(include=("*.txt",)), stats)) == ["A", "B"]
    assert stats.skipped_binary == [str(tmp_path / "sub" / "img.txt")]
    assert sorted(read_documents([str(tmp_path)])) == ["A", "B", "C"]


def test_several_sources_and_the_builtin_corpus(tmp_path):
    (tmp_path / "x.txt").write_text("extra")
    docs = list(read_documents(["builtin:python-docs", str(tmp_path / "x.txt")]))
    assert len(docs) > 50 and docs[-1] == "extra"
    assert any("assert" in d for d in docs)


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    f = _write(tmp_path / "bad.txt", b"caf\xe9 ok\n\nfine\n")
    stats = ReadStats()
    assert list(read_documents([str(f)], stats=stats)) == ["caf\ufffd ok\n", "fine\n"]
    assert stats.invalid_utf8_documents == 1


def test_missing_and_empty_sources_are_clear_errors(tmp_path):
    with pytest.raises(GptkitError, match="corpus source not found"):
        expand_sources([str(tmp_path / "nope.txt")])
    with pytest.raises(GptkitError, match="no input files"):
        expand_sources([str(tmp_path)])
    with pytest.raises(GptkitError, match="unknown built-in corpus"):
        expand_sources(["builtin:nothing"])


def test_reading_streams_in_bounded_memory(tmp_path):
    import tracemalloc

    f = tmp_path / "big.txt"
    with open(f, "w") as fh:
        for i in range(20000):
            fh.write(f"paragraph {i} " + "word " * 100 + "\n\n")  # ~10 MB
    tracemalloc.start()
    n = sum(1 for _ in read_documents([str(f)]))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 20000 and peak < 2_000_000  # far below the file size
