"""Growth operators: function-preserving ones keep the logits, stacking copies blocks in the documented order."""

import dataclasses

import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig
from gptkit.config import TrainConfig
from gptkit.grow import carry_optimizer_state, grow_depth, grow_to, grow_width
from gptkit.runtime import Distributed
from gptkit.train.distributed import load_optimizer_state_by_name, optimizer_state_by_name
from gptkit.train.optim import build_optimizer
from tests.conftest import tiny


def _shape(arch: str, **shape) -> ModelConfig:
    return tiny(arch, **{**dict(vocab_size=97, block_size=32, n_layer=3, n_head=2, n_embd=16), **shape})


@pytest.fixture
def trained(arch) -> GPT:
    """A small model of each architecture with non-trivial weights everywhere (biases and norms too), in eval mode."""
    torch.manual_seed(0)
    model = GPT(_shape(arch))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def _logits(model, idx):
    with torch.no_grad():
        return model.eval()(idx)


@pytest.mark.parametrize("order", ["repeat", "interleave"])
def test_identity_blocks_leave_the_logits_unchanged(trained, order):
    idx = torch.randint(0, 97, (2, 20))
    grown = grow_depth(trained, 7, method="identity", order=order)
    assert grown.model.config.n_layer == 7
    torch.testing.assert_close(_logits(grown.model, idx), _logits(trained, idx), atol=1e-6, rtol=0)
    kept = [i for i in range(7) if grown.sources[f"blocks.{i}.attn.qkv.weight"] is not None]
    assert kept == ([0, 1, 2] if order == "repeat" else [0, 2, 4])  # new blocks after the trained ones, or spread
    assert [grown.sources[f"blocks.{i}.ln_2.weight"] for i in kept] == [f"blocks.{i}.ln_2.weight" for i in range(3)]
    assert grown.sources["wte.weight"] == "wte.weight"


@pytest.mark.parametrize("order, expected", [("repeat", [0, 1, 2, 0, 1, 2]), ("interleave", [0, 0, 1, 1, 2, 2])])
def test_stack_copies_the_trained_blocks_in_the_documented_order(trained, order, expected):
    grown = grow_depth(trained, 6, method="stack", order=order)
    old, new = trained.state_dict(), grown.model.state_dict()
    for i, origin in enumerate(expected):
        assert grown.sources[f"blocks.{i}.mlp.fc.weight"] == f"blocks.{origin}.mlp.fc.weight"
        for name in ("ln_1.weight", "attn.qkv.weight", "attn.proj.weight", "mlp.proj.weight"):
            assert torch.equal(new[f"blocks.{i}.{name}"], old[f"blocks.{origin}.{name}"])
    for name in (n for n in old if not n.startswith("blocks.")):  # embeddings, the final norm, an untied head
        assert torch.equal(new[name], old[name]) and grown.sources[name] == name


@pytest.mark.parametrize("factor", [2, 3])
def test_width_growth_computes_the_same_function(trained, factor):
    idx = torch.randint(0, 97, (2, 20))
    grown = grow_width(trained, factor).model
    assert (grown.config.n_embd, grown.config.n_head) == (16 * factor, 2 * factor)
    assert grown.config.kv_heads == trained.config.kv_heads * factor
    assert grown.config.head_size == trained.config.head_size  # heads are copied whole: the same attention scale
    torch.testing.assert_close(_logits(grown, idx), _logits(trained, idx), atol=1e-5, rtol=0)
    noisy = grow_width(trained, factor, noise=0.01).model  # breaks the copies' symmetry, nearly the same function
    difference = (_logits(noisy, idx) - _logits(trained, idx)).abs().max().item()
    assert 1e-6 < difference < 0.5


def test_a_grown_model_trains_and_its_new_blocks_learn(trained):
    grown = grow_depth(trained, 4, method="identity").model.train()
    idx = torch.randint(0, 97, (4, 20))
    optimizer = torch.optim.AdamW(grown.parameters(), lr=1e-2)
    before = grown.blocks[3].attn.qkv.weight.detach().clone()
    for _ in range(3):
        grown(idx, idx).backward()
        optimizer.step()
        optimizer.zero_grad()
    assert grown.blocks[3].mlp.proj.weight.abs().sum() > 0  # the zero projection moved first...
    assert not torch.equal(grown.blocks[3].attn.qkv.weight, before)  # ...and then the rest of the new block


@pytest.mark.parametrize("call, message", [
    (lambda m: grow_depth(m, 3), "larger than the model's 3"),
    (lambda m: grow_depth(m, 6, method="copy"), "method must be one of stack, identity"),
    (lambda m: grow_depth(m, 6, order="random"), "order must be one of repeat, interleave"),
    (lambda m: grow_width(m, 1), "integer >= 2"),
    (lambda m: grow_width(m, 1.5), "integer >= 2"),
])
def test_bad_growth_requests_are_clear_errors(trained, call, message):
    with pytest.raises(GptkitError, match=message):
        call(trained)


def test_grow_to_a_shape_composes_depth_and_width(trained, arch):
    idx = torch.randint(0, 97, (2, 20))
    shape = trained.config.grown(5, 2)
    grown = grow_to(trained, shape, "identity")
    assert grown.model.config == shape
    torch.testing.assert_close(_logits(grown.model, idx), _logits(trained, idx), atol=1e-5, rtol=0)
    assert set(grown.sources.values()) == {None}  # widened: nothing has its old shape, no state carries
    assert grow_to(trained, trained.config).model is trained
    with pytest.raises(GptkitError, match="only n_layer and the width can change"):
        grow_to(trained, _shape(arch, block_size=64, n_layer=5))
    with pytest.raises(GptkitError, match=r"n_head=2 \(expected 4\)"):
        grow_to(trained, dataclasses.replace(shape, n_head=2, n_kv_head=trained.config.n_kv_head))


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_optimizer_state_follows_the_copied_tensors(trained, optimizer):
    cfg = TrainConfig(optimizer=optimizer, lr=1e-2)
    old_optimizer = build_optimizer(trained.train(), cfg, torch.device("cpu"))
    idx = torch.randint(0, 97, (4, 20))
    for _ in range(2):
        trained(idx, idx).backward()
        old_optimizer.step()
        old_optimizer.zero_grad()
    named = optimizer_state_by_name(trained, old_optimizer, old_optimizer.state_dict())
    growth = grow_depth(trained, 5, method="identity", order="interleave")
    new_optimizer = build_optimizer(growth.model, cfg, torch.device("cpu"))
    load_optimizer_state_by_name(growth.model, new_optimizer, carry_optimizer_state(named, growth.sources),
                                 Distributed())
    old_params, new_params = dict(trained.named_parameters()), dict(growth.model.named_parameters())
    for name, param in new_params.items():
        source = growth.sources[name]
        state = new_optimizer.state.get(param, {})
        if source is None:
            assert not state  # a fresh parameter starts with fresh state
            continue
        old_state = old_optimizer.state[old_params[source]]
        assert state.keys() == old_state.keys() and state
        for key, value in old_state.items():
            assert torch.equal(torch.as_tensor(state[key]), torch.as_tensor(value)), (name, key)
    stacked = grow_depth(trained, 6, method="stack")
    carried = carry_optimizer_state(named, stacked.sources)
    for key in named["blocks.1.mlp.fc.weight"]:  # blocks 1 and 4 are copies of block 1: so are their moments
        assert torch.equal(carried["blocks.4.mlp.fc.weight"][key], named["blocks.1.mlp.fc.weight"][key])
    carried["blocks.4.mlp.fc.weight"][list(named["blocks.1.mlp.fc.weight"])[-1]].add_(1)  # copies, not views
    assert not torch.equal(carried["blocks.1.mlp.fc.weight"][key], carried["blocks.4.mlp.fc.weight"][key])
