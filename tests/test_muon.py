import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig
from gptkit.config import TrainConfig
from gptkit.train import build_optimizer
from gptkit.train.optim import MuonAdamW, orthogonalize


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
