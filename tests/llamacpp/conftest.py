"""Tiny GGUF files the tests write themselves: gptkit's export, re-encoded in any tensor type with the gguf
package (random blocks for the K-quants, which it reads but cannot quantise)."""

import numpy as np
import pytest
import torch

from gptkit import GPT, Tokenizer
from gptkit.llamacpp import to_gguf
from gptkit.llamacpp.vocab import PRE_TOKENIZERS
from tests.conftest import SAMPLE_TEXT, tiny

gguf = pytest.importorskip("gguf")

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
HELD_OUT = "Held-out text: the 2024 budget rose 13.5%, naïve café owners said; <|im_start|> stays text. 🙂"


def chatml_tokenizer(pre: str = "gpt-2") -> Tokenizer:
    """A byte-level BPE with ChatML's special tokens, splitting text as llama.cpp's `pre` does."""
    from tokenizers import pre_tokenizers

    trained = Tokenizer.train_bpe(SAMPLE_TEXT, 300, special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
    trained.backend.pre_tokenizer = pre_tokenizers.Sequence(PRE_TOKENIZERS[pre]())
    return Tokenizer(trained.backend, "<|im_end|>", "<|im_start|>", CHATML)


# GGUF architecture -> a tiny model of it. transformers' GGUF reader takes GPT-2's context as 1024 and
# Qwen3's head size as 128 whatever the file says, so those shapes are the ones its parity can check.
SHAPES = {
    "gpt2": tiny("gpt2", block_size=1024),
    "llama": tiny("llama", n_embd=64, block_size=128),
    "qwen2": tiny("llama", n_embd=64, block_size=128, tie_embeddings=True, qkv_bias=True),
    "qwen3": tiny("qwen3", n_embd=64, block_size=128, n_kv_head=2, head_dim=128),
}


def model_of(arch: str, seed: int = 0, **shape) -> GPT:
    torch.manual_seed(seed)
    model = GPT(SHAPES[arch] if not shape else SHAPES[arch].__class__(**{**vars(SHAPES[arch]), **shape}))
    with torch.no_grad():  # norms start at 1 and biases at 0: randomise them, so a swapped tensor would show
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def write_gguf(path, model: GPT, tokenizer: Tokenizer, kind: str = "F32"):
    """gptkit's f32 export, then every weight matrix re-encoded as `kind` (a GGMLQuantizationType name)."""
    to_gguf(model, tokenizer, path, "f32")
    if kind != "F32":
        _reencode(path, getattr(gguf.GGMLQuantizationType, kind))
    return path


# Where a K-quant block keeps its float16 scales: random bits there could be inf or NaN.
_SCALES = {"Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def _reencode(path, qtype) -> None:
    reader = gguf.GGUFReader(path)
    writer = gguf.GGUFWriter(None, reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if not key.startswith("GGUF.") and key != "general.architecture":
            sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), field.types[0], sub_type=sub)
    rng = np.random.default_rng(0)
    for t in reader.tensors:
        values = np.array(t.data, dtype=np.float32)
        if values.ndim == 1:
            writer.add_tensor(t.name, values)
            continue
        if qtype.name in _SCALES:
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            data = rng.integers(0, 256, (values.shape[0], values.shape[1] // block, size), dtype=np.uint8)
            for at in _SCALES[qtype.name]:
                data[..., at:at + 2] = np.array([2e-4 if qtype.name == "Q6_K" else 2e-3], np.float16).view(np.uint8)
            data = data.reshape(values.shape[0], -1)
        else:
            data = gguf.quants.quantize(values, qtype)
        writer.add_tensor(t.name, data, raw_dtype=qtype)
    tmp = path.with_name(path.name + ".tmp")  # the reader maps `path`: write beside it, then rename
    writer.write_header_to_file(tmp)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)


ARCHS = ["gpt2", "llama", "qwen2", "qwen3"]


def logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]))
