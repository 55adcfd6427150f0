import pytest
import torch

from gptkit import GPT, ModelConfig, Tokenizer
from gptkit.checkpoint import save_checkpoint

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


# The blocks every part of gptkit runs on: GPT-2's, a Llama-style one (RoPE, RMSNorm, SwiGLU, 2 key/value heads
# for 4 query heads, no biases, an untied head) and a Qwen3-style one (QK-norm, a head size of its own).
ARCHITECTURES = {
    "gpt2": {},
    "llama": dict(norm="rmsnorm", mlp="swiglu", positions="rope", n_kv_head=2, bias=False, tie_embeddings=False),
    "qwen3": dict(norm="rmsnorm", mlp="swiglu", positions="rope", n_kv_head=1, bias=False, qk_norm=True,
                  head_dim=16, rope_theta=1e6),
}


def tiny(arch: str = "gpt2", **shape) -> ModelConfig:
    """A tiny model config of one of the ARCHITECTURES (keys in `shape` override)."""
    return ModelConfig(**{**dict(vocab_size=320, block_size=64, n_layer=2, n_head=4, n_embd=32),
                          **ARCHITECTURES[arch], **shape})


@pytest.fixture(params=list(ARCHITECTURES))
def arch(request) -> str:
    return request.param


@pytest.fixture
def tiny_config(arch) -> ModelConfig:
    """A tiny config of each architecture in turn: tests that take it run on all of them."""
    return tiny(arch)


@pytest.fixture
def tiny_model(tiny_config) -> GPT:
    torch.manual_seed(0)
    return GPT(tiny_config).eval()


@pytest.fixture(scope="session")
def bpe_tokenizer() -> Tokenizer:
    return Tokenizer.train_bpe(SAMPLE_TEXT, vocab_size=300)


# -- search: a small document collection and a tiny encoder checkpoint --------------------------------
DOCUMENTS = {
    "vaccines": "Vaccines train the immune system to recognise viruses before an infection happens.",
    "pets": "Cats and dogs are the most popular pets, and both need regular visits to a vet.",
    "markets": "The stock market fell sharply today as investors worried about rising interest rates.",
    "rivers": "The river floods every spring when the snow in the mountains melts.",
    "baking": "Bread rises because yeast ferments the sugars in the dough and releases carbon dioxide.",
    "chinese": "疫苗通过训练免疫系统来识别病毒，从而在感染之前提供保护。",
}


@pytest.fixture(scope="session")
def encoder_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("encoder") / "ckpt"
    tokenizer = Tokenizer.train_bpe(list(DOCUMENTS.values()) * 5, vocab_size=400)
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, block_size=64,
                            pooling="mean"))
    save_checkpoint(path, model, tokenizer)
    return path
