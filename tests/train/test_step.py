"""One optimiser step and one evaluation: they learn, accumulate exactly, and average every window."""

import pytest
import torch

from gptkit import GPT, ModelConfig
from gptkit.config import TrainConfig
from gptkit.data import Batches, TokenShards
from gptkit.train import build_optimizer, evaluate, train_step


@pytest.mark.parametrize("name", ["adamw", "muon"])
def test_loss_falls_when_overfitting_one_batch(name):
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32))
    cfg = TrainConfig(lr=1e-2, weight_decay=0.0, optimizer=name, muon_lr=2e-2)
    optimizer = build_optimizer(model, cfg, torch.device("cpu"))
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr * group["lr_scale"]
    x = torch.randint(0, 64, (4, 16))
    y = torch.roll(x, -1, dims=1)
    first = model(x, y).item()
    for _ in range(40):
        loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert first > 3.5 and loss.item() < first / 5  # memorising one batch: the loss falls by far


def test_gradient_accumulation_equals_one_big_batch(shards):
    batches = Batches(TokenShards(shards, "train"), batch_size=4, block_size=16, seed=0)
    cfg = TrainConfig(batch_size=4, grad_accum=2, grad_clip=0.0, lr=1e-2)
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=300, block_size=16, n_layer=1, n_head=2, n_embd=16))
    reference = GPT(model.config)
    reference.load_state_dict(model.state_dict())
    opt = build_optimizer(model, cfg, torch.device("cpu"))
    loss = train_step(model, opt, batches, 3, cfg)
    # the same 8 sequences in one batch of 8
    (x0, y0), (x1, y1) = batches.batch(3, 0), batches.batch(3, 1)
    ref_opt = build_optimizer(reference, cfg, torch.device("cpu"))
    ref_loss = reference(torch.cat([x0, x1]), torch.cat([y0, y1]))
    ref_loss.backward()
    ref_opt.step()
    assert loss == pytest.approx(ref_loss.item(), abs=1e-6)
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


def test_whole_split_evaluation_averages_every_window(shards):
    val = TokenShards(shards, "val")
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=300, block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    with torch.no_grad():
        expected = sum(model(x[None], y[None]).item() for x, y in val.windows(16)) / len(list(val.windows(16)))
    got = evaluate(model, val, 16, TrainConfig(batch_size=5, eval_batches=0))
    assert got == pytest.approx(expected, rel=1e-5)
