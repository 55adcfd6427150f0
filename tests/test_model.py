import math

import pytest
import torch

from gptkit import GPT, GptkitError, KVCache, ModelConfig
from gptkit.model import Dropout


def test_cached_decoding_matches_full_recompute(tiny_model, tiny_config, device):
    tiny_model.to(device)
    idx = torch.randint(0, tiny_config.vocab_size, (3, 24), device=device)
    with torch.no_grad():
        full = tiny_model(idx)
        cache = KVCache(tiny_config, batch_size=3)
        steps = [tiny_model(idx[:, :6], cache=cache)]  # prefill, then one token at a time
        steps += [tiny_model(idx[:, t : t + 1], cache=cache) for t in range(6, 16)]
        steps.append(tiny_model(idx[:, 16:], cache=cache))  # a multi-token chunk on a warm cache
    assert [cache.length(slot) for slot in range(3)] == [24, 24, 24]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_cache_slots_of_different_lengths_match_full_recompute(tiny_model, tiny_config, device):
    tiny_model.to(device)
    idx = torch.randint(0, tiny_config.vocab_size, (3, 20), device=device)
    lengths = [4, 9, 13]  # a right-padded prefill: the cache keeps each row's real length
    with torch.no_grad():
        full = tiny_model(idx)
        cache = KVCache(tiny_config, batch_size=3)
        padded = torch.stack([torch.cat([idx[b, :n], torch.zeros(13 - n, dtype=torch.long, device=device)])
                              for b, n in enumerate(lengths)])
        tiny_model.hidden_states(padded, cache, lengths=lengths)
        for step in range(5):
            new = torch.stack([idx[b, n + step] for b, n in enumerate(lengths)])[:, None]
            out = tiny_model(new, cache=cache)
            for b, n in enumerate(lengths):
                torch.testing.assert_close(out[b, 0], full[b, n + step], atol=1e-5, rtol=0)
    assert [cache.length(slot) for slot in range(3)] == [n + 5 for n in lengths]


def test_bf16_cache_follows_autocast_dtype(tiny_model, tiny_config, device):
    tiny_model.to(device)
    cache = KVCache(tiny_config, batch_size=1)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        tiny_model(torch.zeros(1, 3, dtype=torch.long, device=device), cache=cache)
        tiny_model(torch.zeros(1, 1, dtype=torch.long, device=device), cache=cache)
    assert cache.dtype == torch.bfloat16 and cache.device.type == device


def test_overflowing_the_context_window_is_a_clear_error(tiny_model, tiny_config):
    with pytest.raises(GptkitError, match="context window of 64"):
        tiny_model(torch.zeros(1, 65, dtype=torch.long))
    cache = KVCache(tiny_config, batch_size=1, max_len=8)
    tiny_model(torch.zeros(1, 8, dtype=torch.long), cache=cache)
    with pytest.raises(GptkitError, match="exceed the cache length of 8"):
        tiny_model(torch.zeros(1, 1, dtype=torch.long), cache=cache)


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


def test_head_is_tied_to_token_embedding(tiny_model):
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


def test_backward_reaches_every_parameter(tiny_model, tiny_config):
    idx = torch.randint(0, tiny_config.vocab_size, (2, 16))
    tiny_model.train()
    tiny_model(idx, idx).backward()
    for name, p in tiny_model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("bad", [
    {"n_embd": 30, "n_head": 4}, {"n_layer": 0}, {"dropout": 1.0}, {"attn_dropout": -0.1}, {"vocab_size": -1},
    {"block_size": "64"}, {"layer_norm_eps": 0},
])
def test_invalid_model_config_is_rejected(bad):
    with pytest.raises(GptkitError, match="model config"):
        ModelConfig(**{"vocab_size": 10, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 8, **bad})


def test_a_reset_slot_starts_again_while_the_others_keep_their_contents(tiny_model, tiny_config):
    idx = torch.randint(0, tiny_config.vocab_size, (2, 12))
    with torch.no_grad():
        full = tiny_model(idx)
        cache = KVCache(tiny_config, batch_size=2)
        tiny_model(torch.randint(0, tiny_config.vocab_size, (2, 7)), cache=cache)  # something to forget
        cache.reset([0])
        first = tiny_model(idx[:1, :9], cache=cache, slots=[0])
        assert [cache.length(0), cache.length(1)] == [9, 7]
        cache.reset([1])
        second = tiny_model(idx[1:], cache=cache, slots=[1])
    torch.testing.assert_close(first[0], full[0, :9], atol=1e-5, rtol=0)
    torch.testing.assert_close(second[0], full[1], atol=1e-5, rtol=0)


def test_model_reports_its_device_and_dtype(tiny_model):
    assert tiny_model.device == torch.device("cpu") and tiny_model.dtype == torch.float32
    assert tiny_model.to(torch.bfloat16).dtype == torch.bfloat16


def test_a_span_head_gives_start_end_logits_and_a_loss_over_allowed_positions_only():
    import torch.nn.functional as F

    from gptkit.model import SPAN_END, SPAN_START

    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16, span_head=True)).eval()
    idx = torch.randint(0, 50, (2, 10))
    spans = model(idx)
    assert spans.shape == (2, 10, 2)
    labels = torch.full((2, 10), -1)
    labels[:, 4:] = 0  # positions 0-3 are the question: never an answer
    labels[0, 5] += SPAN_START
    labels[0, 7] += SPAN_END
    labels[1, 9] += SPAN_START + SPAN_END  # the null position
    masked = spans[:, 4:]
    expected = (F.cross_entropy(masked[..., 0], torch.tensor([1, 5])) +
                F.cross_entropy(masked[..., 1], torch.tensor([3, 5]))) / 2
    assert torch.allclose(model(idx, labels), expected, atol=1e-6)
    assert model.logits(model.hidden_states(idx)).shape == (2, 10, 50)  # the LM head is still there


@pytest.mark.parametrize("shape", [dict(), dict(bias=False), dict(span_head=True), dict(n_layer=3, n_embd=48),
                                   dict(vocab_size=7, block_size=5)])
def test_param_count_is_the_built_models(shape):
    from gptkit.model import param_count

    config = ModelConfig(**{**dict(vocab_size=320, block_size=64, n_layer=2, n_head=4, n_embd=32), **shape})
    assert param_count(config) == GPT(config).num_params()
