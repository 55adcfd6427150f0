import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gptkit import GptkitError, Tokenizer
from tests.conftest import SAMPLE_TEXT


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_byte_level_bpe_round_trips_every_string(bpe_tokenizer, text):
    assert bpe_tokenizer.decode(bpe_tokenizer.encode(text)) == text


HARD_CASES = ["", "你好，世界", "🙂🚀👩‍👩‍👧", "e\u0301 combining", "\x00\x07\x1b ctrl", " lead  trail  "]


@pytest.mark.parametrize("text", HARD_CASES)
def test_byte_level_bpe_round_trips_hard_cases(bpe_tokenizer, text):
    assert bpe_tokenizer.decode(bpe_tokenizer.encode(text)) == text


def test_bpe_training_learns_merges_and_respects_vocab_size(bpe_tokenizer):
    assert bpe_tokenizer.vocab_size == 300
    assert bpe_tokenizer.eot_id is not None
    assert len(bpe_tokenizer.encode("repeated, repeated")) < len("repeated, repeated") / 2
    assert bpe_tokenizer.encode("a<|endoftext|>b")[1] == bpe_tokenizer.eot_id


def test_encode_batch_equals_encode(bpe_tokenizer):
    texts = ["one", "two words", "", "Köln 🙂"]
    assert bpe_tokenizer.encode_batch(texts) == [bpe_tokenizer.encode(t) for t in texts]


def test_save_and_load_give_identical_ids(tmp_path, bpe_tokenizer):
    bpe_tokenizer.save(tmp_path / "tokenizer.json")
    for path in (tmp_path / "tokenizer.json", tmp_path):
        loaded = Tokenizer.load(path)
        assert loaded.encode(SAMPLE_TEXT[2]) == bpe_tokenizer.encode(SAMPLE_TEXT[2])
        assert loaded.sha256 == bpe_tokenizer.sha256


def test_character_tokenizer_maps_each_character():
    tok = Tokenizer.train_char(["hello\nworld"])
    ids = tok.encode("hello\nworld")
    assert len(ids) == 11 and tok.decode(ids) == "hello\nworld"
    assert tok.vocab_size == len(set("hello\nworld")) + 2  # + end-of-text + unknown
    assert tok.encode("z") == [tok.backend.token_to_id("<unk>")]


def test_vocab_too_small_for_the_specials_is_a_clear_error():
    with pytest.raises(GptkitError, match="vocab_size 200 is too small.*at least 257"):
        Tokenizer.train_bpe(["text"], vocab_size=200)


def test_bad_tokenizer_files_are_clear_errors(tmp_path):
    with pytest.raises(GptkitError, match="tokenizer file not found"):
        Tokenizer.load(tmp_path / "missing.json")
    (tmp_path / "tokenizer.json").write_text("{broken")
    with pytest.raises(GptkitError, match="not a valid tokenizer.json"):
        Tokenizer.load(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GptkitError, match="no tokenizer.json"):
        Tokenizer.load(tmp_path / "empty")


def test_decode_stream_never_splits_a_character(bpe_tokenizer):
    text = "Grüße 你好 🙂👩‍👩‍👧 done"
    ids = bpe_tokenizer.encode(text)
    pieces = list(bpe_tokenizer.decode_stream(ids))
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert len(pieces) > 1  # text comes out as it is produced, not all at the end


def test_a_long_text_encodes_in_pieces_to_the_same_ids(bpe_tokenizer):
    import random

    from tests.conftest import SAMPLE_TEXT

    random.seed(0)
    seps = ["", " ", "  ", "\n", "\n\n  ", "\t", " 123 ", "'s "]
    text = "".join(random.choice(SAMPLE_TEXT) + random.choice(seps) for _ in range(400))
    pieces = list(bpe_tokenizer.encode_long(text, piece_chars=64))
    assert len(pieces) > 100  # really encoded in pieces
    assert [i for ids in pieces for i in ids] == bpe_tokenizer.encode(text)
    chars = Tokenizer.train_char([text])
    assert [i for ids in chars.encode_long(text, piece_chars=64) for i in ids] == chars.encode(text)
