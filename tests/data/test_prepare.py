import json

import numpy as np
import pytest

from gptkit import GptkitError, Tokenizer
from gptkit.data import PrepareConfig, TokenShards, prepare
from gptkit.data.clean import CleanConfig
from gptkit.data.corpus import ReadOptions
from tests.conftest import SAMPLE_TEXT
from tests.data.conftest import CONFIG


def test_prepare_writes_shards_that_decode_to_the_documents(tmp_path, corpus):
    manifest = prepare([str(corpus)], tmp_path / "out", CONFIG)
    assert manifest["dtype"] == "uint16"
    train, val = manifest["splits"]["train"], manifest["splits"]["val"]
    assert train["documents"] + val["documents"] == 200 and 20 < val["documents"] < 60
    tok = Tokenizer.load(tmp_path / "out")
    ids = np.fromfile(tmp_path / "out" / "train_000.bin", dtype=np.uint16).tolist()
    assert ids.count(tok.eot_id) == train["documents"] and ids[-1] == tok.eot_id
    docs = tok.decode(ids).split("<|endoftext|>")[:-1]
    val_ids = np.fromfile(tmp_path / "out" / "val_000.bin", dtype=np.uint16).tolist()
    val_docs = tok.decode(val_ids).split("<|endoftext|>")[:-1]
    paragraphs = [f"Paragraph {i}: " + SAMPLE_TEXT[i % 4] for i in range(200)]
    expected = [p if p.endswith("\n") else p + "\n" for p in paragraphs]  # a paragraph keeps its last newline
    assert sorted(docs + val_docs) == sorted(expected)  # every document, byte for byte, in one split or the other
    assert docs == [d for d in expected if d in set(docs)]  # in input order
    assert manifest["inputs"][0]["bytes"] == corpus.stat().st_size and len(manifest["inputs"][0]["sha256"]) == 64


def test_split_is_deterministic_by_seed(tmp_path, corpus):
    a = prepare([str(corpus)], tmp_path / "a", CONFIG)
    b = prepare([str(corpus)], tmp_path / "b", CONFIG)
    c = prepare([str(corpus)], tmp_path / "c", PrepareConfig(vocab_size=300, val_fraction=0.2, seed=7))
    assert a["splits"] == b["splits"]
    assert (tmp_path / "a" / "val_000.bin").read_bytes() == (tmp_path / "b" / "val_000.bin").read_bytes()
    assert a["splits"]["val"]["tokens"] != c["splits"]["val"]["tokens"]


def test_rerun_on_unchanged_inputs_is_skipped_and_changes_are_detected(tmp_path, corpus):
    out = tmp_path / "out"
    first = prepare([str(corpus)], out, CONFIG)
    stamp = (out / "train_000.bin").stat().st_mtime_ns
    assert prepare([str(corpus)], out, CONFIG) == first
    assert (out / "train_000.bin").stat().st_mtime_ns == stamp  # nothing rewritten
    corpus.write_text(corpus.read_text() + "\n\nA brand new paragraph.\n")
    changed = prepare([str(corpus)], out, CONFIG)
    assert changed["key"] != first["key"]
    assert changed["read"]["documents"] == 201
    other_tok = Tokenizer.train_bpe(SAMPLE_TEXT, vocab_size=280)
    assert prepare([str(corpus)], out, CONFIG, tokenizer=other_tok)["tokenizer_sha256"] == other_tok.sha256
    stricter = PrepareConfig(vocab_size=300, val_fraction=0.2, clean=CleanConfig(min_chars=60))
    rebuilt = prepare([str(corpus)], out, stricter, tokenizer=other_tok)  # a setting changed: rebuilt
    assert rebuilt["config"]["clean"]["min_chars"] == 60 and rebuilt["cleaning"]["dropped_short"] > 0


def test_reader_and_cleaning_options_take_effect_through_prepare(tmp_path):
    pytest.importorskip("datasketch")
    corpus = tmp_path / "corpus"
    (corpus / "skip").mkdir(parents=True)
    lines = [{"body": f"Write to jane{i}@example.com about " + " ".join(f"w{i}x{j}" for j in range(80)),
              "text": "not this field"} for i in range(30)]
    lines.append({"body": lines[0]["body"].replace("w0x40", "W0X40")})  # a near duplicate of the first
    (corpus / "mail.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    (corpus / "skip" / "other.txt").write_text("a file the include glob leaves out")
    config = PrepareConfig(vocab_size=300, val_fraction=0.2, read=ReadOptions(text_field="body", include=("*.jsonl",)),
                           clean=CleanConfig(redact_pii=True, dedup_near=True))
    manifest = prepare([str(corpus)], tmp_path / "out", config)
    assert manifest["read"]["files"] == 1 and manifest["read"]["documents"] == 31
    assert manifest["cleaning"]["dropped_near_duplicate"] == 1 and manifest["cleaning"]["pii_email"] == 30
    tok = Tokenizer.load(tmp_path / "out")
    arrays = TokenShards(tmp_path / "out", "train").arrays + TokenShards(tmp_path / "out", "val").arrays
    text = "".join(tok.decode(a.tolist()) for a in arrays)
    assert text.count("Write to <EMAIL> about") == 30 and "@example.com" not in text and "not this field" not in text


def test_large_vocabularies_use_uint32(tmp_path, corpus):
    big = Tokenizer.train_char(["abc"], special_tokens=tuple(f"<s{i}>" for i in range(65540)))
    manifest = prepare([str(corpus)], tmp_path / "out", CONFIG, tokenizer=big)
    assert manifest["dtype"] == "uint32"
    train = TokenShards(tmp_path / "out", "train")
    assert len(train) == manifest["splits"]["train"]["tokens"]
    unk = big.backend.token_to_id("<unk>")  # the corpus is mostly not "abc": unknown characters
    assert unk > 65535 and int(np.concatenate(train.arrays).max()) == unk  # read back whole, not wrapped at 16 bits


def test_shards_roll_over_and_read_back_in_order(tmp_path, corpus):
    one = prepare([str(corpus)], tmp_path / "one", CONFIG)
    many = prepare([str(corpus)], tmp_path / "many", PrepareConfig(vocab_size=300, val_fraction=0.2,
                                                                    shard_tokens=500))
    shards = many["splits"]["train"]["shards"]
    assert len(shards) > 3 and all(s["tokens"] >= 500 for s in shards[:-1])  # a new file once one passes 500
    assert many["splits"]["train"]["tokens"] == one["splits"]["train"]["tokens"]
    joined = np.concatenate(TokenShards(tmp_path / "many", "train").arrays)
    assert np.array_equal(joined, np.concatenate(TokenShards(tmp_path / "one", "train").arrays))


def test_failed_prepare_leaves_nothing_behind_and_char_tokenizer_works(tmp_path, corpus):
    with pytest.raises(GptkitError, match="empty after cleaning"):
        prepare([str(corpus)], tmp_path / "out", PrepareConfig(tokenizer="bpe", vocab_size=300,
                                                               clean=CleanConfig(min_chars=10**6)),
                tokenizer=Tokenizer.train_char(["x"]))
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.txt"]
    manifest = prepare([str(corpus)], tmp_path / "char", PrepareConfig(tokenizer="char", val_fraction=0.2))
    assert manifest["vocab_size"] < 100 and manifest["cleaning"]["documents_in"] == 200


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n   \n")
    with pytest.raises(GptkitError, match="empty"):
        prepare([str(tmp_path / "empty.txt")], tmp_path / "out", CONFIG)


def test_single_document_cannot_fill_a_val_split(tmp_path, corpus):
    config = PrepareConfig(vocab_size=300, read=ReadOptions(txt_documents="file"))
    with pytest.raises(GptkitError, match="val split got none"):
        prepare([str(corpus)], tmp_path / "out", config)


def test_tail_split_puts_the_last_bytes_in_val(tmp_path, corpus):
    import re

    manifest = prepare([str(corpus)], tmp_path / "out", PrepareConfig(vocab_size=300, val_fraction=0.1, split="tail"))
    tok = Tokenizer.load(tmp_path / "out")
    numbers = {}
    for split in ("train", "val"):
        text = tok.decode(np.fromfile(tmp_path / "out" / f"{split}_000.bin", dtype=np.uint16).tolist())
        numbers[split] = [int(n) for n in re.findall(r"Paragraph (\d+):", text)]
    assert numbers["train"] == list(range(len(numbers["train"])))  # the head, in order
    assert numbers["val"] == list(range(len(numbers["train"]), 200))  # the tail, in order
    val_bytes = manifest["splits"]["val"]["tokens"]
    assert 0.05 < val_bytes / (val_bytes + manifest["splits"]["train"]["tokens"]) < 0.15


def test_a_huge_document_is_written_as_one_document_with_the_same_ids(tmp_path, corpus, bpe_tokenizer):
    from gptkit.tokenizer import PIECE_CHARS

    huge = " ".join(f"word{i % 997} and, more: {i}" for i in range(PIECE_CHARS // 4))  # several pieces long
    assert len(huge) > 3 * PIECE_CHARS
    corpus.write_text(corpus.read_text() + "\n\n" + huge + "\n")
    prepare([str(corpus)], tmp_path / "out", CONFIG, tokenizer=bpe_tokenizer)
    ids = np.concatenate([a for split in ("train", "val") for a in TokenShards(tmp_path / "out", split).arrays])
    expected = bpe_tokenizer.encode(huge + "\n") + [bpe_tokenizer.eot_id]
    starts = np.flatnonzero(ids == bpe_tokenizer.eot_id) + 1
    documents = np.split(ids, starts[:-1])
    assert sum(len(d) == len(expected) and d.tolist() == expected for d in documents) == 1


def test_binary_files_in_a_folder_are_skipped_with_one_warning(tmp_path, caplog):
    (tmp_path / "in").mkdir()
    for i in range(20):
        (tmp_path / "in" / f"doc{i}.txt").write_text(f"Document {i}: " + SAMPLE_TEXT[i % 4])
    for i in range(4):
        (tmp_path / "in" / f"font{i}.woff2").write_bytes(b"wOF2\x00\x01" * 40)
    manifest = prepare([str(tmp_path / "in")], tmp_path / "out", PrepareConfig(vocab_size=300, val_fraction=0.2))
    assert len(manifest["read"]["skipped_binary"]) == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w for w in warnings if "binary" in w] == [
        "skipped 4 binary file(s): " + ", ".join(str(tmp_path / "in" / f"font{i}.woff2") for i in range(3)) + ", ..."]
