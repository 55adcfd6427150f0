"""LoRA adapters: start as the base model, train alone, merge exactly, and load in PEFT with the same logits."""

import dataclasses
import json

import pytest
import torch

from gptkit import GPT, GptkitError, to_hf
from gptkit.lora import LoraConfig, LoraLinear, apply_lora, load_adapters, merge_lora, save_adapters
from tests.conftest import tiny


@pytest.fixture
def model(arch) -> GPT:
    torch.manual_seed(0)
    return GPT(tiny(arch, vocab_size=97, block_size=32)).eval()


def _logits(model, idx):
    with torch.no_grad():
        return model(idx)


def _randomise_adapters(model):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoraLinear):
                module.lora_B.normal_(0, 0.2)


def test_adapters_start_as_the_base_model_and_merge_exactly(model):
    idx = torch.randint(0, 97, (2, 20))
    base = _logits(model, idx)
    apply_lora(model, LoraConfig(rank=4, alpha=8))
    torch.testing.assert_close(_logits(model, idx), base, atol=0, rtol=0)  # B = 0: the same function
    _randomise_adapters(model)
    adapted = _logits(model, idx)
    assert (adapted - base).abs().max() > 1e-3
    merge_lora(model)
    assert not any(isinstance(m, LoraLinear) for m in model.modules())
    assert set(model.state_dict()) == set(GPT(model.config).state_dict())  # a plain GPT again
    torch.testing.assert_close(_logits(model, idx), adapted, atol=1e-5, rtol=0)


def test_only_the_adapters_train(model):
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    apply_lora(model.train(), LoraConfig(rank=2, targets=("q", "v", "down")))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"blocks.{i}.{t}.lora_{m}" for i in range(2) for t in ("attn.qkv", "mlp.proj")
                         for m in "AB"}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    idx = torch.randint(0, 97, (4, 20))
    for _ in range(3):
        model(idx, idx).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = dict(model.named_parameters())
    for name, value in before.items():  # base weights live on as <target>.base.<name>
        moved = name.replace("attn.qkv.", "attn.qkv.base.").replace("mlp.proj.", "mlp.proj.base.")
        assert torch.equal(after[moved], value), name
    trained = after["blocks.0.attn.qkv.lora_B"]
    assert trained.abs().sum() > 0
    k_rows = slice(model.config.n_head * model.config.head_size, None)  # k and v: only v is a target
    q, kv = trained[: k_rows.start, :2], trained[k_rows, 2:]
    v_rows = model.config.kv_heads * model.config.head_size
    assert q.abs().sum() > 0 and kv[:v_rows].abs().sum() == 0 and kv[v_rows:].abs().sum() > 0
    assert trained[: k_rows.start, 2:].abs().sum() == 0 and trained[k_rows, :2].abs().sum() == 0


def test_legacy_target_names_are_the_same_roles():
    assert LoraConfig(targets=("attn.qkv", "mlp.fc")).targets == ("q", "k", "v", "gate", "up")
    assert LoraConfig(targets=("o", "attn.proj")).targets == ("o",)


def test_a_role_the_model_lacks_alone_is_a_clear_error():
    with pytest.raises(GptkitError, match="no gate projections to adapt: its blocks have q, k, v, o, up, down"):
        apply_lora(GPT(tiny("gpt2")), LoraConfig(rank=2, targets=("gate",)))


@pytest.mark.parametrize("targets", [("q", "k", "v", "o", "gate", "up", "down"), ("q", "v")])
def test_saved_adapters_load_in_peft_with_the_same_logits(model, tmp_path, targets):
    import peft
    from transformers import AutoModelForCausalLM

    to_hf(model, None, tmp_path / "base")
    apply_lora(model, LoraConfig(rank=4, alpha=8, targets=targets))
    _randomise_adapters(model)
    save_adapters(model, tmp_path / "adapter", base_model=str(tmp_path / "base"))
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", 4, 8.0)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    theirs = peft.PeftModel.from_pretrained(base, tmp_path / "adapter")
    idx = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(theirs.eval()(idx).logits, _logits(model, idx), atol=1e-5, rtol=0)
    torch.manual_seed(0)  # the same base model again, with the saved adapters loaded back
    again = load_adapters(GPT(model.config).eval(), tmp_path / "adapter")
    torch.testing.assert_close(_logits(again, idx), _logits(model, idx), atol=1e-6, rtol=0)
    sizes = {f.name: f.stat().st_size for f in (tmp_path / "adapter").iterdir()}
    assert sizes["adapter_model.safetensors"] < 0.5 * (tmp_path / "base" / "model.safetensors").stat().st_size
    with pytest.raises(GptkitError, match="adapters for another model"):
        wider = GPT(dataclasses.replace(model.config, n_embd=64, head_dim=0, intermediate_size=0))
        load_adapters(wider, tmp_path / "adapter")
    with pytest.raises(GptkitError, match="no adapter_config.json"):
        load_adapters(GPT(model.config), tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"rank": -1}, "rank must be >= 0"),
    ({"targets": ("attn.q",)}, "targets must be some of q, k, v, o, gate, up, down"),
    ({"dropout": 1.0}, "dropout must be in"),
])
def test_bad_lora_configs_are_clear_errors(kwargs, message):
    with pytest.raises(GptkitError, match=message):
        LoraConfig(**kwargs)


def test_rank_zero_means_no_adapters(model):
    with pytest.raises(GptkitError, match="LoRA needs rank >= 1"):
        apply_lora(model, LoraConfig(rank=0))


def test_adapters_cannot_be_applied_twice_or_saved_without_any(model, tmp_path):
    with pytest.raises(GptkitError, match="no LoRA adapters"):
        save_adapters(model, tmp_path / "a")
    apply_lora(model)
    with pytest.raises(GptkitError, match="already has LoRA adapters"):
        apply_lora(model)
