import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig
from gptkit.config import TrainConfig
from gptkit.train import build_optimizer, lr_at
from gptkit.train.optim import MuonAdamW, orthogonalize


def test_schedule_values():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)  # half way through the cosine
    assert lr_at(110, cfg) == pytest.approx(0.1)
    wsd = TrainConfig(lr=1.0, min_lr=0.0, warmup_steps=10, max_steps=110, schedule="wsd", decay_fraction=0.2)
    assert lr_at(50, wsd) == 1.0 and lr_at(88, wsd) == 1.0
    assert lr_at(99, wsd) == pytest.approx(0.5) and lr_at(110, wsd) == 0.0
    assert lr_at(100, TrainConfig(lr=1.0, warmup_steps=0, schedule="constant")) == 1.0


def test_weight_decay_applies_to_weight_matrices_only():
    model = GPT(ModelConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=8))
    decay, no_decay = build_optimizer(model, TrainConfig(weight_decay=0.1), torch.device("cpu")).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == [
        "blocks.0.attn.proj.weight", "blocks.0.attn.qkv.weight", "blocks.0.mlp.fc.weight", "blocks.0.mlp.proj.weight"]
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "wte.weight" in {names[id(p)] for p in no_decay["params"]}


def test_parameter_groups_go_by_role_on_a_llama_style_model():
    from tests.conftest import tiny

    model = GPT(tiny("llama"))  # no position embedding, RMSNorm, an untied head, no biases
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = build_optimizer(model, TrainConfig(weight_decay=0.1), torch.device("cpu")).param_groups
    assert {names[id(p)] for p in no_decay["params"]} == {"wte.weight", "ln_f.weight"} | {
        f"blocks.{i}.{n}.weight" for i in range(2) for n in ("ln_1", "ln_2")}
    assert "lm_head.weight" in {names[id(p)] for p in decay["params"]}  # an output head is decayed like a matrix
    muon = build_optimizer(model, TrainConfig(optimizer="muon"), torch.device("cpu")).param_groups
    hidden = {names[id(p)] for g in muon if g["muon"] for p in g["params"]}
    assert hidden == {f"blocks.{i}.{m}.weight" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.fc",
                                                                         "mlp.proj")}


@pytest.mark.parametrize("shape", [(16, 48), (48, 16)])
def test_orthogonalize_flattens_the_singular_values(shape):
    torch.manual_seed(0)
    g = torch.randn(shape) * torch.logspace(-1, 1, shape[1])  # columns scaled over two decades
    before = torch.linalg.svdvals(g)
    after = torch.linalg.svdvals(orthogonalize(g))
    assert before.max() / before.min() > 10
    assert after.min() > 0.6 and after.max() < 1.25  # the quintic iteration oscillates in about [0.7, 1.2]


def _model():
    torch.manual_seed(0)
    return GPT(ModelConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32))


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    model = _model()
    optimizer = build_optimizer(model, TrainConfig(optimizer="muon", lr=1e-3, muon_lr=2e-2), torch.device("cpu"))
    names = {id(p): n for n, p in model.named_parameters()}
    muon = [g for g in optimizer.param_groups if g["muon"]]
    assert len(muon) == 1 and muon[0]["lr_scale"] == pytest.approx(20)
    assert sorted(names[id(p)] for p in muon[0]["params"]) == sorted(
        f"blocks.{i}.{m}.weight" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"))
    rest = {names[id(p)] for g in optimizer.param_groups if not g["muon"] for p in g["params"]}
    assert {"wte.weight", "wpe.weight", "ln_f.weight", "blocks.0.mlp.fc.bias"} <= rest
    with pytest.raises(ValueError, match="2-D"):
        MuonAdamW([{"params": [model.ln_f.weight], "muon": True}])


def test_muon_state_round_trips_for_exact_resume():
    x = torch.randint(0, 64, (4, 17))
    cfg = TrainConfig(optimizer="muon", lr=1e-2, muon_lr=2e-2)

    def steps(model, optimizer, n):
        for _ in range(n):
            model(x[:, :-1], x[:, 1:]).backward()
            optimizer.step()
            optimizer.zero_grad()

    straight = _model()
    opt = build_optimizer(straight, cfg, torch.device("cpu"))
    steps(straight, opt, 6)
    resumed = _model()
    opt2 = build_optimizer(resumed, cfg, torch.device("cpu"))
    steps(resumed, opt2, 3)
    state = {"model": resumed.state_dict(), "optimizer": opt2.state_dict()}
    again = _model()
    opt3 = build_optimizer(again, cfg, torch.device("cpu"))
    again.load_state_dict(state["model"])
    opt3.load_state_dict(state["optimizer"])
    steps(again, opt3, 3)
    for a, b in zip(straight.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_muon_with_fsdp_is_rejected():
    with pytest.raises(GptkitError, match="fsdp=false"):
        TrainConfig(optimizer="muon", fsdp=True)
    with pytest.raises(GptkitError, match="optimizer must be one of adamw, muon"):
        TrainConfig(optimizer="sgd")


def test_after_each_growth_the_lr_warms_up_again_on_the_global_schedule():
    from gptkit.config import GrowStage

    stages = (GrowStage(at=10, n_layer=4), GrowStage(at=0.5, n_layer=8))
    plain = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=5, max_steps=40, grow=stages)
    rewarmed = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=5, max_steps=40, grow=stages, grow_warmup_steps=4)
    assert [lr_at(s, plain) for s in range(40)] == [lr_at(s, TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=5,
                                                                         max_steps=40)) for s in range(40)]
    for start in (10, 20):  # step `start` is the grown model's first
        assert lr_at(start - 1, rewarmed) == lr_at(start - 1, plain)
        for k in range(4):
            assert lr_at(start + k, rewarmed) == pytest.approx(lr_at(start + k, plain) * (k + 1) / 4)
        assert lr_at(start + 4, rewarmed) == lr_at(start + 4, plain)


def test_muon_orthogonalises_each_role_of_a_fused_weight_on_its_own():
    from tests.conftest import tiny

    torch.manual_seed(0)
    model = GPT(tiny("llama"))  # q/k/v of 4 + 2 + 2 heads in one Linear, gate/up in another
    optimizer = build_optimizer(model, TrainConfig(optimizer="muon", lr=1e-3, muon_lr=1e-2, weight_decay=0),
                                torch.device("cpu"))
    qkv, fc = model.blocks[0].attn.qkv.weight, model.blocks[0].mlp.fc.weight
    before = qkv.detach().clone()
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    grad = qkv.grad.clone()
    optimizer.step()
    q, k, v = (32, 16, 16)
    lr = [g["lr"] for g in optimizer.param_groups if g["muon"]][0]
    update = (qkv.detach() - before) / -lr  # one step: the Nesterov update of a zero buffer is 1.95 x the gradient
    for rows in (slice(0, q), slice(q, q + k), slice(q + k, q + k + v)):
        dtype = torch.bfloat16 if optimizer.param_groups[-1]["ns_dtype"] == "bf16" else torch.float32
        expected = orthogonalize(grad[rows] * 1.95, dtype=dtype) * 0.2 * max(grad[rows].shape) ** 0.5
        torch.testing.assert_close(update[rows], expected, atol=1e-4, rtol=1e-4)
    splits = [g["splits"] for g in optimizer.param_groups if g["muon"]][0]
    names = [n for n, p in model.named_parameters() if any(p is x for g in optimizer.param_groups if g["muon"]
                                                             for x in g["params"])]
    assert dict(zip(names, splits))["blocks.0.mlp.fc.weight"] == [fc.shape[0] // 2] * 2
