import pytest
import torch
import torch.nn as nn

from gptkit import GPT, GptkitError, runtime
from gptkit.generate import Decoding, generate, generate_batch
from gptkit.quantize import Int4Linear, Int8Linear, for_inference, quantize_int4, quantize_int8
from tests.conftest import tiny


@pytest.mark.parametrize("shape", [(1, 1, 96), (5, 7, 96)], ids=["a-decoding-step", "a-prompt"])
def test_int8_linear_is_close_to_the_float_linear(shape):
    torch.manual_seed(0)
    linear = nn.Linear(96, 200)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = linear(x)
        got = Int8Linear(linear.weight, linear.bias)(x)
        scale = (linear.weight.abs().amax(1, keepdim=True) / 127).bfloat16().float()  # one per row, as stored
        rounded = x @ ((linear.weight / scale).round() * scale).T + linear.bias
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert (got - expected).norm() / expected.norm() < 0.02
    assert (got - rounded).abs().max() <= 0.02 * expected.abs().max()  # the kernel (a step) or the matmul (a prompt)


@pytest.fixture
def trained_model(tiny_config):
    """A tiny model taught to continue a fixed pattern, so its predictions are confident."""
    torch.manual_seed(0)
    model = GPT(tiny_config)
    pattern = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7] * 4)[None]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = model(pattern[:, :-1], pattern[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), pattern[0].tolist()


def test_int8_model_keeps_loss_and_greedy_output(trained_model):
    model, pattern = trained_model
    idx = torch.tensor([pattern])
    with torch.no_grad():
        loss = float(model(idx[:, :-1], idx[:, 1:]))
    reference = generate(model, pattern[:8], Decoding(30, temperature=0))
    quantized = quantize_int8(_copy(model))
    with torch.no_grad():
        assert float(quantized(idx[:, :-1], idx[:, 1:])) == pytest.approx(loss, rel=0.05, abs=0.01)
    assert generate(quantized, pattern[:8], Decoding(30, temperature=0)) == reference
    assert generate_batch(quantized, [pattern[:8], pattern[2:5]], Decoding(10, temperature=0)) == [
        generate(quantized, p, Decoding(10, temperature=0)) for p in (pattern[:8], pattern[2:5])]


def _copy(model: GPT) -> GPT:
    clone = GPT(model.config)
    clone.load_state_dict(model.state_dict())
    return clone.eval()


def test_for_inference_casts_or_quantizes(tiny_model):
    assert for_inference(_copy(tiny_model), "bf16").wte.weight.dtype == torch.bfloat16
    assert for_inference(_copy(tiny_model), "fp32").wte.weight.dtype == torch.float32
    assert isinstance(for_inference(_copy(tiny_model), "int8").blocks[0].mlp.fc, Int8Linear)
    assert isinstance(for_inference(_copy(tiny_model), "int4").blocks[0].mlp.fc, Int4Linear)
    with pytest.raises(GptkitError, match="unknown dtype 'int3'"):
        for_inference(tiny_model, "int3")


@pytest.mark.parametrize("flags, dtype", [
    ({"avx2", "amx_bf16"}, torch.bfloat16), ({"avx2", "avx512_bf16"}, torch.bfloat16), ({"avx2", "fma"}, torch.float32),
], ids=["amx", "avx512-bf16", "avx2-only"])
def test_auto_picks_bf16_only_where_the_cpu_computes_it_fast(tiny_model, monkeypatch, flags, dtype):
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: frozenset(flags))
    assert for_inference(_copy(tiny_model), "auto").dtype == dtype


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="no oneDNN bf16 on this CPU")
def test_packed_bf16_gives_the_plain_bf16_logits_and_greedy_tokens(trained_model):
    from gptkit.quantize import PackedLinear

    model, pattern = trained_model
    packed = for_inference(_copy(model), "bf16")
    assert isinstance(packed.blocks[0].attn.qkv, PackedLinear) and isinstance(packed.lm_head, PackedLinear)
    plain = _copy(model).to(torch.bfloat16)  # the same weights through the ordinary bf16 matmul
    idx = torch.tensor([pattern])
    with torch.no_grad():
        got, expected = packed(idx).float(), plain(idx).float()
    assert (got - expected).abs().max() <= 0.05 * expected.abs().max()
    greedy = Decoding(30, temperature=0)
    assert generate(packed, pattern[:8], greedy) == generate(plain, pattern[:8], greedy)
    assert generate_batch(packed, [pattern[:8], pattern[2:5]], Decoding(10, temperature=0)) == [
        generate(packed, p, Decoding(10, temperature=0)) for p in (pattern[:8], pattern[2:5])]


def _int4_reference(weight: torch.Tensor) -> torch.Tensor:
    """The weight int4 stores, rounded the same way, computed plainly: each group of 32 from its min to its max in
    15 steps."""
    groups = weight.view(weight.shape[0], -1, 32)
    low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
    scale = (high - low) / 15
    return (((groups - low) / scale).round() * scale + low).view_as(weight)


@pytest.mark.parametrize("rows", [64, 50], ids=["whole-packs", "padded-rows"])
def test_int4_linear_computes_with_the_rounded_weights(rows):
    torch.manual_seed(0)
    linear = nn.Linear(96, rows)
    x = torch.randn(3, 5, 96)
    with torch.no_grad():
        got = Int4Linear(linear.weight, linear.bias)(x)
        exact = x @ _int4_reference(linear.weight).T + linear.bias
        unrounded = linear(x)
    assert got.shape == (3, 5, rows) and got.dtype == torch.float32
    assert (got - exact).abs().max() <= 0.02 * exact.abs().max()  # bf16 activations and scales
    assert 0.01 < (got - unrounded).norm() / unrounded.norm() < 0.15  # 4 bits cost something, not everything


def test_int4_model_keeps_greedy_output_and_batches_as_it_decodes_alone(trained_model):
    model, pattern = trained_model
    idx = torch.tensor([pattern])
    with torch.no_grad():
        loss = float(model(idx[:, :-1], idx[:, 1:]))
    quantized = quantize_int4(_copy(model))
    assert isinstance(quantized.lm_head, Int4Linear)
    with torch.no_grad():
        assert float(quantized(idx[:, :-1], idx[:, 1:])) == pytest.approx(loss, rel=0.15, abs=0.05)
    greedy = Decoding(30, temperature=0)
    assert generate(quantized, pattern[:8], greedy) == generate(model, pattern[:8], greedy)
    assert generate_batch(quantized, [pattern[:8], pattern[2:5]], Decoding(10, temperature=0)) == [
        generate(quantized, p, Decoding(10, temperature=0)) for p in (pattern[:8], pattern[2:5])]


def test_int4_keeps_a_matrix_it_cannot_group_in_bf16():
    torch.manual_seed(0)
    model = GPT(tiny("gpt2", n_embd=24, n_head=4)).eval()  # rows of 24 values: no whole group of 32
    quantized = quantize_int4(_copy(model))
    assert not isinstance(quantized.blocks[0].attn.qkv, Int4Linear)
    assert isinstance(quantized.blocks[0].mlp.proj, Int4Linear)  # 96 inputs: three groups
    idx = torch.randint(0, 320, (2, 9))
    with torch.no_grad():
        got, expected = quantized(idx), model(idx)
    assert (got - expected).norm() / expected.norm() < 0.2
