import pytest
import torch

from gptkit import GPT, ModelConfig, Tokenizer

SAMPLE_TEXT = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "def add(a, b):\n    return a + b\n",
    "Grüße aus Köln! 你好，世界。 Emoji: 🙂🚀",
    "Numbers 12345 and symbols #$%&*() repeated, repeated, repeated.",
] * 20


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Tests that take `device` run on the CPU and, where one is present, on a CUDA GPU."""
    return request.param


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig(vocab_size=320, block_size=64, n_layer=2, n_head=4, n_embd=32)


@pytest.fixture
def tiny_model(tiny_config) -> GPT:
    torch.manual_seed(0)
    return GPT(tiny_config).eval()


@pytest.fixture(scope="session")
def bpe_tokenizer() -> Tokenizer:
    return Tokenizer.train_bpe(SAMPLE_TEXT, vocab_size=300)
