import pytest

from gptkit import Tokenizer
from gptkit.data import PrepareConfig
from tests.conftest import SAMPLE_TEXT

CONFIG = PrepareConfig(vocab_size=300, val_fraction=0.2)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    paragraphs = [f"Paragraph {i}: " + SAMPLE_TEXT[i % 4] for i in range(200)]
    path.write_text("\n\n".join(paragraphs) + "\n")
    return path


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    """A small BPE trained on one English -> German example (test_formats and test_qa train their own)."""
    texts = ["English: a man rides a red bike\nGerman: ein Mann fährt ein rotes Fahrrad"] * 20
    return Tokenizer.train_bpe(texts, vocab_size=320)
