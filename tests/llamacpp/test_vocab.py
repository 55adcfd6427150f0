"""The tokenizer in GGUF metadata: every split llama.cpp names survives the file, padding rows are unused
tokens, and what gptkit cannot rebuild is refused by name."""

import pytest

from gptkit import GptkitError
from gptkit.llamacpp import from_gguf
from gptkit.llamacpp.vocab import tokenizer_from_gguf
from tests.llamacpp.conftest import HELD_OUT, chatml_tokenizer, gguf, model_of, write_gguf


@pytest.mark.parametrize("pre", ["gpt-2", "smollm", "llama-bpe", "qwen2"])
def test_each_pre_tokenizer_survives_the_file(tmp_path, pre):
    tokenizer = chatml_tokenizer(pre)
    write_gguf(tmp_path / "m.gguf", model_of("llama"), tokenizer)
    assert gguf.GGUFReader(tmp_path / "m.gguf").fields["tokenizer.ggml.pre"].contents() == pre
    text = HELD_OUT + " 1234567 apples\n\n  spaced   out\r\n"
    assert from_gguf(tmp_path / "m.gguf")[1].encode(text) == tokenizer.encode(text)


def test_padded_vocabulary_rows_are_unused_tokens(tmp_path):
    model, tokenizer = model_of("llama", vocab_size=384), chatml_tokenizer()
    write_gguf(tmp_path / "m.gguf", model, tokenizer)
    fields = gguf.GGUFReader(tmp_path / "m.gguf").fields
    assert len(fields["tokenizer.ggml.tokens"].contents()) == 384
    assert fields["tokenizer.ggml.token_type"].contents()[-1] == 5  # UNUSED
    back, back_tokenizer, _ = from_gguf(tmp_path / "m.gguf")
    assert back.config.vocab_size == 384 and back_tokenizer.vocab_size == tokenizer.vocab_size


def test_what_the_tokenizer_reader_cannot_rebuild_is_named():
    with pytest.raises(GptkitError, match="SentencePiece"):
        tokenizer_from_gguf({"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["a"]})
    with pytest.raises(GptkitError, match="'tekken'; gptkit knows gpt-2, smollm, llama-bpe, qwen2"):
        tokenizer_from_gguf({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "tekken"})
    with pytest.raises(GptkitError, match="not two tokens"):
        tokenizer_from_gguf({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a", "b"],
                             "tokenizer.ggml.merges": ["ab"]})
    with pytest.raises(GptkitError, match="merges do not fit its vocabulary"):
        tokenizer_from_gguf({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a", "b"],
                             "tokenizer.ggml.merges": ["a c"]})
    with pytest.raises(GptkitError, match="no end-of-sequence token"):
        tokenizer_from_gguf({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a", "b"],
                             "tokenizer.ggml.merges": []})


def test_a_tokenizer_without_an_end_of_text_token_writes_no_eos_id(tmp_path):
    from gptkit import Tokenizer
    from gptkit.llamacpp.vocab import gguf_tokenizer

    trained = chatml_tokenizer()
    bare = Tokenizer(trained.backend, "<|no-such-token|>")
    assert bare.eot_id is None and "tokenizer.ggml.eos_token_id" not in gguf_tokenizer(bare, 320)
