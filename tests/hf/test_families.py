"""Parity with transformers for every family, on tiny random models that transformers itself builds:
the same logits (fp32, within 1e-5) and the same greedy tokens, reading their directory and writing ours."""

import json

import pytest
import torch

from gptkit import GPT, GptkitError, from_hf, generate, to_hf
from gptkit.generate import Decoding
from gptkit.hf import family_for
from tests.conftest import tiny

transformers = pytest.importorskip("transformers")

_BODY = dict(vocab_size=150, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=6,
             max_position_embeddings=128)
# family -> (transformers config class, model class, settings): GQA, tied and untied heads, rope_theta,
# Llama 3's rope scaling, Qwen2's q/k/v biases, Qwen3's QK-norm with a head size of its own.
CASES = {
    "llama-gqa-untied": ("LlamaConfig", "LlamaForCausalLM", dict(num_key_value_heads=2, rope_theta=500000.0)),
    "llama-tied-mha": ("LlamaConfig", "LlamaForCausalLM", dict(num_key_value_heads=6, tie_word_embeddings=True)),
    "llama3-scaling": ("LlamaConfig", "LlamaForCausalLM", dict(
        num_key_value_heads=3, rope_theta=500000.0, tie_word_embeddings=True,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=32))),
    "llama-biases": ("LlamaConfig", "LlamaForCausalLM", dict(num_key_value_heads=2, attention_bias=True,
                                                             mlp_bias=True)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(num_key_value_heads=2, sliding_window=None)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(num_key_value_heads=2, tie_word_embeddings=True)),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(num_key_value_heads=2, head_dim=16, rope_theta=1e6)),
    "qwen3-mqa": ("Qwen3Config", "Qwen3ForCausalLM", dict(num_key_value_heads=1, head_dim=8,
                                                          tie_word_embeddings=True)),
}


def _theirs(case: str, seed: int = 0):
    config_class, model_class, settings = CASES[case]
    torch.manual_seed(seed)
    config = getattr(transformers, config_class)(**_BODY, **settings)
    model = getattr(transformers, model_class)(config).eval()
    with torch.no_grad():  # norms start at 1 and biases at 0: randomise them, so a swapped name would show
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def _hf_greedy(model, prompt, n):
    out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, pad_token_id=0,
                         attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    return out[0, len(prompt):].tolist()


def _assert_same(ours: GPT, theirs) -> None:
    idx = torch.randint(0, _BODY["vocab_size"], (2, 40))
    with torch.no_grad():
        assert (ours(idx) - theirs(idx).logits).abs().max().item() <= 1e-5
    prompt = [5, 17, 99, 3]
    assert generate(ours, prompt, Decoding(24, temperature=0)) == _hf_greedy(theirs, prompt, 24)


@pytest.mark.parametrize("case", CASES)
def test_their_model_loads_with_the_same_logits_and_greedy_tokens(tmp_path, case):
    theirs = _theirs(case)
    theirs.save_pretrained(tmp_path)
    ours, _ = from_hf(tmp_path)
    assert ours.config.kv_heads == CASES[case][2]["num_key_value_heads"]
    _assert_same(ours.eval(), theirs)


@pytest.mark.parametrize("case", CASES)
def test_our_export_loads_in_transformers_with_the_same_logits_and_greedy_tokens(tmp_path, case):
    _theirs(case, seed=1).save_pretrained(tmp_path / "theirs")
    ours, _ = from_hf(tmp_path / "theirs")
    to_hf(ours, None, tmp_path / "ours")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
    expected = "MistralForCausalLM" if case == "mistral" else CASES[case][1]
    assert type(back).__name__ == expected.replace("Mistral", "Llama")  # a Mistral-shaped model is Llama's
    _assert_same(ours.eval(), back)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_a_model_trained_by_gptkit_exports_and_comes_back_unchanged(tmp_path, arch):
    torch.manual_seed(0)
    model = GPT(tiny(arch)).eval()
    to_hf(model, None, tmp_path)
    back, _ = from_hf(tmp_path)
    assert back.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name
    idx = torch.randint(0, 320, (2, 30))
    with torch.no_grad():
        assert torch.equal(back.eval()(idx), model(idx))


def test_a_block_no_family_computes_is_refused_with_the_reasons(tmp_path):
    mixed = GPT(tiny("gpt2", positions="rope"))  # GPT-2's block with rotary positions: an ablation
    with pytest.raises(GptkitError, match=r"no Hugging Face family computes this architecture \(gpt2: "
                                          r"positions='rope'; llama: norm='layernorm'"):
        to_hf(mixed, None, tmp_path)
    assert family_for(tiny("llama")).model_type == "llama"
    assert family_for(tiny("llama", qkv_bias=True, o_bias=False)).model_type == "qwen2"
    assert family_for(tiny("qwen3")).model_type == "qwen3"


def test_a_sliding_window_becomes_the_context_window(tmp_path):
    _theirs("mistral").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "sliding_window": 64}))
    ours, _ = from_hf(tmp_path)
    assert ours.config.block_size == 64  # within the window, sliding attention is full attention


def test_sharded_weights_and_bf16_tensors_load(tmp_path):
    theirs = _theirs("qwen3")
    theirs.to(torch.bfloat16).save_pretrained(tmp_path, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    ours, _ = from_hf(tmp_path)
    assert ours.dtype == torch.float32
    for name, p in theirs.named_parameters():
        if name == "model.norm.weight":
            assert torch.equal(ours.ln_f.weight, p.float())


def test_unsupported_variants_name_what_is_unsupported(tmp_path):
    _theirs("llama-tied-mha").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for change, message in (({"hidden_act": "gelu"}, "hidden_act='gelu'"),
                            ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}},
                             "rope scaling of type 'yarn'")):
        (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(GptkitError, match=message):
            from_hf(tmp_path)
