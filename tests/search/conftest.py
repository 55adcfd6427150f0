"""A tiny sentence-transformers model (the gptkit encoder and the documents are in tests/conftest.py)."""

import pytest
import torch

from tests.conftest import DOCUMENTS


@pytest.fixture(scope="session")
def sentence_transformer_dir(tmp_path_factory):
    """A 1-layer BERT saved as a sentence-transformers model (mean pooling, normalised), built offline."""
    transformers = pytest.importorskip("transformers")
    st = pytest.importorskip("sentence_transformers")
    try:
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers import models
    tmp = tmp_path_factory.mktemp("st")
    words = sorted({w.strip(".,").lower() for text in DOCUMENTS.values() for w in text.split()})
    (tmp / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    hf = tmp / "bert"
    transformers.BertTokenizerFast(vocab_file=str(tmp / "vocab.txt")).save_pretrained(hf)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(words) + 5, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    transformers.BertModel(config).save_pretrained(hf)
    body = models.Transformer(str(hf), max_seq_length=64)
    model = st.SentenceTransformer(modules=[body, models.Pooling(32, "mean"), models.Normalize()])
    model.save(str(tmp / "model"))
    return tmp / "model"
