"""GGUF's names and metadata against transformers' own GGUF reader on the same file (logits, greedy tokens, token
ids, each tensor type), and the metadata gptkit refuses to guess at."""

import pytest
import torch

from gptkit import GptkitError, generate
from gptkit.generate import Decoding
from gptkit.llamacpp import from_gguf
from gptkit.llamacpp.names import hf_config
from tests.llamacpp.conftest import ARCHS, HELD_OUT, chatml_tokenizer, gguf, logits, model_of, write_gguf


@pytest.mark.parametrize("arch", ARCHS)
def test_transformers_reads_the_same_file_to_the_same_model(tmp_path, arch):
    transformers = pytest.importorskip("transformers")
    model, tokenizer = model_of(arch), chatml_tokenizer()
    write_gguf(tmp_path / "m.gguf", model, tokenizer)
    ours = from_gguf(tmp_path / "m.gguf")[0].eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf").eval()
    their_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file="m.gguf")
    ids = their_tokenizer.encode(HELD_OUT, add_special_tokens=False)
    assert from_gguf(tmp_path / "m.gguf")[1].encode(HELD_OUT) == ids
    with torch.no_grad():
        assert (logits(ours, ids) - theirs(torch.tensor([ids])).logits).abs().max() <= 1e-4
    prompt = ids[:6]
    out = theirs.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False, pad_token_id=0,
                          attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    assert generate(ours, prompt, Decoding(16, temperature=0)) == out[0, len(prompt):].tolist()


@pytest.mark.parametrize("kind", ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"])
def test_each_tensor_type_dequantises_as_transformers_does(tmp_path, kind):
    transformers = pytest.importorskip("transformers")
    model = model_of("llama", n_embd=256, intermediate_size=256)  # K-quant rows come in blocks of 256
    write_gguf(tmp_path / "m.gguf", model, chatml_tokenizer(), kind)
    reader = gguf.GGUFReader(tmp_path / "m.gguf")
    assert reader.get_tensor(1).tensor_type.name in (kind, "F32") and \
        {t.tensor_type.name for t in reader.tensors} == {kind, "F32"}
    ours = from_gguf(tmp_path / "m.gguf")[0].eval()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf").eval()
    ids = list(range(3, 40))
    with torch.no_grad():
        diff = (logits(ours, ids) - theirs(torch.tensor([ids])).logits).abs().max()
    assert diff <= 1e-4 * max(1.0, logits(ours, ids).abs().max().item())
    if kind in ("F16", "BF16", "Q8_0"):  # close to the float32 model it came from
        assert (logits(ours, ids) - logits(model, ids)).abs().max() < 0.05 * logits(model, ids).abs().max()


def test_metadata_gptkit_cannot_compute_is_refused():
    meta = {"llama.block_count": 1, "llama.embedding_length": 64, "llama.attention.head_count": 4,
            "llama.feed_forward_length": 128, "llama.context_length": 64}
    shapes = {"token_embd.weight": (10, 64)}
    assert hf_config("llama", meta, shapes)["head_dim"] == 16
    with pytest.raises(GptkitError, match="partial rotary"):
        hf_config("llama", {**meta, "llama.rope.dimension_count": 8}, shapes)
    with pytest.raises(GptkitError, match="rope_freqs"):
        hf_config("llama", meta, {**shapes, "rope_freqs.weight": (8,)})
    with pytest.raises(GptkitError, match="'yarn' is not supported"):
        hf_config("llama", {**meta, "llama.rope.scaling.type": "yarn"}, shapes)
    with pytest.raises(GptkitError, match="lacks llama.block_count"):
        hf_config("llama", {k: v for k, v in meta.items() if k != "llama.block_count"}, shapes)
