"""Embeddings: unit vectors of the model's width, independent of the batch a text is in; encoders identify."""

import numpy as np
import pytest

from gptkit.checkpoint import load_checkpoint
from gptkit.errors import GptkitError
from gptkit.search.embed import embed, load_encoder
from tests.conftest import DOCUMENTS


def test_embeddings_are_unit_vectors_of_the_model_width(encoder_checkpoint):
    encoder = load_encoder(encoder_checkpoint, dtype="fp32")
    vectors = encoder.embed(list(DOCUMENTS.values()))
    assert vectors.shape == (len(DOCUMENTS), 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.info.pooling == "mean" and encoder.info.dim == 32


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen3"])
def test_a_text_embeds_the_same_alone_and_in_batches_of_other_lengths(encoder_checkpoint, pooling, arch):
    import torch

    from gptkit import GPT
    from tests.conftest import tiny

    ckpt = load_checkpoint(encoder_checkpoint)
    model, tokenizer = ckpt.model.eval(), ckpt.tokenizer
    if arch != "gpt2":  # the same vocabulary, another block: RoPE positions of right-padded rows
        torch.manual_seed(0)
        model = GPT(tiny(arch, vocab_size=model.config.vocab_size, pooling="mean")).eval()
    texts = ["short", "a much longer text " * 6, "medium length text here", "x"]
    alone = np.vstack([embed(model, tokenizer, [t], pooling) for t in texts])
    for batch_size in (2, 3, 4):
        assert np.allclose(embed(model, tokenizer, texts, pooling, batch_size=batch_size), alone, atol=1e-5)


def test_pooling_choices_give_different_vectors(encoder_checkpoint):
    mean = load_encoder(encoder_checkpoint, dtype="fp32").embed(["the river floods"])
    last = load_encoder(encoder_checkpoint, pooling="last", dtype="fp32")
    assert last.info.pooling == "last" and not np.allclose(mean, last.embed(["the river floods"]))
    assert not last.info.same_encoder(load_encoder(encoder_checkpoint).info)


def test_a_long_text_keeps_its_first_tokens(encoder_checkpoint):
    encoder = load_encoder(encoder_checkpoint, max_tokens=8, dtype="fp32")
    long = "The river floods every spring " * 20
    assert np.allclose(encoder.embed([long]), encoder.embed([long + " and more words at the end"]), atol=1e-6)


def test_sentence_transformers_directories_are_encoders(sentence_transformer_dir):
    encoder = load_encoder(sentence_transformer_dir)
    vectors = encoder.embed(["the river floods", "cats and dogs"])
    assert encoder.info.kind == "sentence-transformers" and vectors.shape == (2, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    direct = encoder.model.encode(["the river floods"], normalize_embeddings=True)
    assert np.allclose(vectors[0], direct[0], atol=1e-6)
    spans = encoder.token_spans("the river floods")
    assert [("the river floods")[a:b] for a, b in spans] == ["the", "river", "floods"]


def test_missing_or_wrong_encoders_are_clear_errors(tmp_path, sentence_transformer_dir):
    with pytest.raises(GptkitError, match="no such encoder"):
        load_encoder(tmp_path / "nope")
    with pytest.raises(GptkitError, match="modules.json"):
        load_encoder(sentence_transformer_dir, pooling="last")
