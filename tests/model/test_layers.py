import pytest
import torch

from gptkit import GPT, ModelConfig
from gptkit.model.layers import Dropout


def test_dropout_is_active_in_training_only(tiny_config):
    model = GPT(ModelConfig(**{**vars(tiny_config), "dropout": 0.5}))
    idx = torch.randint(0, tiny_config.vocab_size, (1, 16))
    model.train()
    assert not torch.equal(model(idx), model(idx))
    model.eval()
    assert torch.equal(model(idx), model(idx))


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_cpu_dropout_drops_p_and_rescales(p):
    torch.manual_seed(0)
    x = torch.rand(1000, 1000) + 1.0  # no zeros of its own
    x.requires_grad_()
    dropout = Dropout(p).train()
    y = dropout(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.003  # 1M draws: the standard error is under 0.0005
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / (1 - p))
    y.sum().backward()
    assert torch.equal(x.grad, kept.float() / (1 - p))
    torch.manual_seed(1)
    a = dropout(x)
    torch.manual_seed(1)
    assert torch.equal(a, dropout(x)) and not torch.equal(a, dropout(x))  # seeded, and fresh each call
    assert torch.equal(dropout.eval()(x), x)
    assert dropout.train()(torch.ones(3, 5, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_attention_dropout_is_its_own_setting(tiny_config):
    def model(**dropouts):
        return GPT(ModelConfig(**{**vars(tiny_config), **dropouts})).train()

    idx = torch.randint(0, tiny_config.vocab_size, (1, 16))
    only_attention = model(dropout=0.0, attn_dropout=0.5)
    assert not torch.equal(only_attention(idx), only_attention(idx))
    none = model(dropout=0.0)
    assert torch.equal(none(idx), none(idx))
    assert model(dropout=0.5).blocks[0].attn.dropout == 0.5  # unset: follows dropout
    residual_only = model(dropout=0.5, attn_dropout=0.0)
    assert residual_only.blocks[0].attn.dropout == 0.0 and residual_only.drop.p == 0.5



def test_rope_makes_attention_scores_depend_on_the_distance_only():
    from gptkit.model.layers import rope_angles, rope_frequencies, rotate

    config = ModelConfig(n_embd=64, n_head=2, positions="rope")
    inv_freq = rope_frequencies(config)
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 32), torch.randn(1, 1, 1, 32)

    def score(m: int, n: int) -> float:
        qm = rotate(q, *rope_angles(inv_freq, torch.tensor([m])))
        kn = rotate(k, *rope_angles(inv_freq, torch.tensor([n])))
        return (qm * kn).sum().item()

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)  # both 4 apart
    assert score(7, 3) != pytest.approx(score(8, 3), abs=1e-3)
    rotated = rotate(q, *rope_angles(inv_freq, torch.tensor([50])))
    assert rotated.norm().item() == pytest.approx(q.norm().item(), rel=1e-5)  # a rotation keeps lengths


@pytest.mark.parametrize("scaling", [dict(type="linear", factor=4.0),
                                     dict(type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                          original_max_position_embeddings=64)])
def test_rope_scaling_gives_transformers_frequencies(scaling):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from gptkit.config import RopeScaling
    from gptkit.model.layers import rope_frequencies

    config = ModelConfig(n_embd=128, n_head=2, positions="rope", rope_theta=500000.0,
                         rope_scaling=RopeScaling(**scaling))
    theirs = LlamaConfig(hidden_size=128, num_attention_heads=2, max_position_embeddings=256,
                         rope_parameters={"rope_type": scaling["type"], "rope_theta": 500000.0,
                                          **{k: v for k, v in scaling.items() if k != "type"}})
    expected, attention_scale = ROPE_INIT_FUNCTIONS[scaling["type"]](theirs, "cpu")
    assert attention_scale == 1.0
    torch.testing.assert_close(rope_frequencies(config), expected, atol=0, rtol=1e-6)


def test_rmsnorm_scales_by_the_root_mean_square_and_does_not_centre():
    from gptkit.model.layers import make_norm

    norm = make_norm(ModelConfig(n_embd=4, n_head=1, norm="rmsnorm", layer_norm_eps=1e-6))
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    rms = (x.pow(2).mean() + 1e-6).sqrt()
    torch.testing.assert_close(norm(x), x / rms)
    assert list(dict(norm.named_parameters())) == ["weight"]


def test_swiglu_is_down_of_silu_gate_times_up():
    from gptkit.model.layers import SwiGLU

    torch.manual_seed(0)
    mlp = SwiGLU(ModelConfig(n_embd=8, n_head=1, mlp="swiglu", intermediate_size=12, bias=False))
    x = torch.randn(2, 3, 8)
    gate, up = mlp.fc.weight[:12], mlp.fc.weight[12:]
    expected = (torch.nn.functional.silu(x @ gate.T) * (x @ up.T)) @ mlp.proj.weight.T
    torch.testing.assert_close(mlp(x), expected)
