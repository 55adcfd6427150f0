import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gptkit import GPT, GptkitError, ModelConfig
from gptkit.checkpoint import load_checkpoint
from tests.conftest import tiny


def test_loss_ignores_targets_marked_minus_one(tiny_model, tiny_config):
    idx = torch.randint(0, tiny_config.vocab_size, (2, 10))
    targets = torch.randint(0, tiny_config.vocab_size, (2, 10))
    masked = targets.clone()
    masked[:, :5] = -1
    logits = tiny_model(idx)
    expected = torch.nn.functional.cross_entropy(logits[:, 5:].flatten(0, 1), targets[:, 5:].flatten())
    torch.testing.assert_close(tiny_model(idx, masked), expected)
    # a random model predicts roughly uniformly: loss near ln(V)
    assert abs(tiny_model(idx, targets).item() - math.log(tiny_config.vocab_size)) < 0.5


def test_gpt2_initialisation_statistics():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=1000, block_size=64, n_layer=4, n_head=4, n_embd=256)
    model = GPT(config)
    assert abs(model.wte.weight.std().item() - 0.02) < 0.001
    assert abs(model.blocks[0].mlp.fc.weight.std().item() - 0.02) < 0.001
    scaled = 0.02 / math.sqrt(2 * config.n_layer)
    assert abs(model.blocks[0].attn.proj.weight.std().item() - scaled) < 0.0005
    assert torch.all(model.blocks[0].ln_1.weight == 1) and torch.all(model.blocks[0].attn.qkv.bias == 0)


def test_head_is_tied_to_token_embedding():
    torch.manual_seed(0)
    tiny_model = GPT(tiny("gpt2")).eval()
    hidden = torch.randn(2, 3, tiny_model.config.n_embd)
    before = tiny_model.logits(hidden).detach()
    with torch.no_grad():
        tiny_model.wte.weight[7] += 1.0  # move one token's embedding
    after = tiny_model.logits(hidden).detach()
    changed = (after - before).abs().amax(dim=(0, 1)) > 1e-6
    assert changed.nonzero().flatten().tolist() == [7]  # that token's logit moved, and no other
    torch.testing.assert_close(after[..., 7] - before[..., 7], hidden.sum(-1))  # by hidden . (1, 1, ..., 1)
    names = [n for n, _ in tiny_model.named_parameters()]
    assert not any("head" in n for n in names)


def test_parameter_count_and_flops_match_gpt2_small():
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = GPT(ModelConfig())  # GPT-2 124M
    assert model.num_params() == 124_439_808  # the published count for HF gpt2
    assert model.num_params(non_embedding=True) == 124_439_808 - 1024 * 768


def test_flops_per_token_matches_the_matmuls_a_training_step_runs():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = GPT(ModelConfig(vocab_size=512, block_size=64, n_layer=2, n_head=4, n_embd=64))
    idx = torch.randint(0, 512, (2, 64))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # attention as countable bmm
        model(idx, idx).backward()
    counted = counter.get_total_flops()
    estimate = model.flops_per_token(64) * idx.numel()
    assert 0.97 < counted / estimate <= 1.0  # 6N also counts the few bias and LayerNorm parameters


def test_backward_reaches_every_parameter(tiny_model, tiny_config):
    idx = torch.randint(0, tiny_config.vocab_size, (2, 16))
    tiny_model.train()
    tiny_model(idx, idx).backward()
    for name, p in tiny_model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("bad", [
    {"n_embd": 30, "n_head": 4}, {"n_layer": 0}, {"dropout": 1.0}, {"attn_dropout": -0.1}, {"vocab_size": -1},
    {"block_size": "64"}, {"layer_norm_eps": 0}, {"n_kv_head": 3}, {"norm": "batchnorm"}, {"mlp": "relu"},
    {"positions": "rope", "head_dim": 3}, {"rope_theta": 0}, {"intermediate_size": -1}, {"qkv_bias": "yes"},
])
def test_invalid_model_config_is_rejected(bad):
    with pytest.raises(GptkitError, match="model config"):
        ModelConfig(**{"vocab_size": 10, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 8, **bad})


def test_model_reports_its_device_and_dtype(tiny_model):
    assert tiny_model.device == torch.device("cpu") and tiny_model.dtype == torch.float32
    assert tiny_model.to(torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.parametrize("shape", [dict(), dict(bias=False), dict(span_head=True), dict(n_layer=3, n_embd=48),
                                   dict(vocab_size=7, block_size=5), dict(tie_embeddings=False)])
def test_param_count_is_the_built_models(shape, arch):
    from gptkit.model import param_count

    config = tiny(arch, **shape)
    assert param_count(config) == GPT(config).num_params()


def test_llama_parameter_count_is_the_published_one():
    # SmolLM2-135M: 30 layers of 576, 9 heads sharing 3 key/value heads, SwiGLU of 1536, a tied 49152-token head
    config = ModelConfig(vocab_size=49152, block_size=8192, n_layer=30, n_head=9, n_kv_head=3, n_embd=576,
                         intermediate_size=1536, norm="rmsnorm", mlp="swiglu", positions="rope", bias=False)
    from gptkit.model import param_count

    assert param_count(config) == 134_515_008


def test_an_untied_head_is_a_weight_of_its_own(tiny_config):
    import dataclasses

    model = GPT(dataclasses.replace(tiny_config, tie_embeddings=False))
    assert model.head_weight() is model.lm_head.weight and model.lm_head.weight is not model.wte.weight
    tied = GPT(dataclasses.replace(tiny_config, tie_embeddings=True))
    assert tied.head_weight() is tied.wte.weight
    extra = tiny_config.vocab_size * tiny_config.n_embd
    assert model.num_params() - tied.num_params() == extra


def test_a_checkpoint_written_before_the_architecture_choices_loads_with_the_same_logits():
    data = Path(__file__).parent / "data"
    ckpt = load_checkpoint(data / "written-before-architectures")
    expected = load_file(str(data / "written-before-architectures.logits.safetensors"))
    assert ckpt.model.config.norm == "layernorm" and ckpt.model.config.positions == "learned"
    with torch.no_grad():
        assert torch.equal(ckpt.model.eval()(expected["idx"]), expected["logits"])


def test_each_architecture_has_the_weights_of_its_block(arch):
    names = {n.split(".", 2)[-1] for n, _ in GPT(tiny(arch)).named_parameters() if n.startswith("blocks.0.")}
    common = {"attn.qkv.weight", "attn.proj.weight", "mlp.fc.weight", "mlp.proj.weight", "ln_1.weight", "ln_2.weight"}
    biases = {"attn.qkv.bias", "attn.proj.bias", "mlp.fc.bias", "mlp.proj.bias", "ln_1.bias", "ln_2.bias"}
    extra = {"gpt2": biases, "llama": set(), "qwen3": {"attn.q_norm.weight", "attn.k_norm.weight"}}[arch]
    assert names == common | extra


def test_qkv_and_mlp_shapes_follow_the_heads_and_the_mlp_width():
    model = GPT(tiny("qwen3"))  # 4 query heads and 1 key/value head of 16, over a width of 32
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    assert attn.qkv.weight.shape == (4 * 16 + 2 * 16, 32) and attn.proj.weight.shape == (32, 64)
    assert mlp.fc.weight.shape == (2 * 96, 32) and mlp.proj.weight.shape == (32, 96)  # 8/3 * 32 rounded up to 16
    roles = {p.role: (p.linear, p.rows) for p in model.blocks[0].projections()}
    assert list(roles) == ["q", "k", "v", "o", "gate", "up", "down"]
    assert roles["k"][1] == slice(64, 80) and roles["up"][1] == slice(96, 192) and roles["down"][1] is None
