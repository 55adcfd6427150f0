import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig, load_checkpoint
from gptkit.config import RunConfig, TrainConfig, load_config
from gptkit.data import Batches, PrepareConfig, TokenShards, prepare
from gptkit.runtime import Distributed
from gptkit.train import build_optimizer, evaluate, lr_at, train, train_step
from gptkit.train.report import read_metrics
from tests.conftest import SAMPLE_TEXT

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Token shards of a small corpus with a 300-token BPE."""
    tmp = tmp_path_factory.mktemp("data")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n\n".join(f"Paragraph {i}: " + SAMPLE_TEXT[i % 4] for i in range(300)) + "\n")
    prepare([str(corpus)], tmp / "shards", PrepareConfig(vocab_size=300, val_fraction=0.2))
    return tmp / "shards"


def _overrides(shards, out_dir, *extra) -> list[str]:
    """A 2-layer, 32-wide model on 32-token windows, fp32 on CPU; `extra` wins over the defaults."""
    return ["model.n_layer=2", "model.n_embd=32", "model.n_head=2", "model.block_size=32", f"data={shards}",
            f"out_dir={out_dir}", "batch_size=4", "max_steps=12", "warmup_steps=2", "lr=3e-3", "min_lr=3e-4",
            "eval_interval=6", "eval_batches=2", "checkpoint_interval=4", "log_interval=1", "dtype=fp32",
            "device=cpu", "keep_last=5", *extra]


def _run(shards, out_dir, *extra) -> RunConfig:
    return load_config(RunConfig, "tiny", _overrides(shards, out_dir, *extra))


def _cli(*args) -> list[str]:
    return [*args, "train", "--config", "tiny", "--quiet"]


def _losses(out_dir, after=0):
    return [r["loss"] for r in read_metrics(Path(out_dir) / "metrics.jsonl") if "loss" in r and r["step"] > after]


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
    for _ in range(100):
        loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert first > 3.5 and loss.item() < 0.1


def test_gradient_accumulation_equals_one_big_batch(shards):
    batches = Batches(TokenShards(shards, "train"), batch_size=4, block_size=16, seed=0)
    cfg = TrainConfig(batch_size=4, grad_accum=2, grad_clip=0.0, lr=1e-2)
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=300, block_size=16, n_layer=1, n_head=2, n_embd=16))
    reference = GPT(model.config)
    reference.load_state_dict(model.state_dict())
    opt = build_optimizer(model, cfg, torch.device("cpu"))
    loss = train_step(model, opt, None, batches, 3, Distributed(), cfg, torch.device("cpu"), torch.float32)
    # the same 8 sequences in one batch of 8
    (x0, y0), (x1, y1) = batches.batch(3, 0), batches.batch(3, 1)
    ref_opt = build_optimizer(reference, cfg, torch.device("cpu"))
    ref_loss = reference(torch.cat([x0, x1]), torch.cat([y0, y1]))
    ref_loss.backward()
    ref_opt.step()
    assert loss == pytest.approx(ref_loss.item(), abs=1e-6)
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


def test_training_writes_checkpoints_metrics_and_report(shards, tmp_path):
    best = train(_run(shards, tmp_path / "run", "sample_tokens=8"))
    losses = _losses(tmp_path / "run")
    assert len(losses) == 12 and losses[-1] < losses[0]
    evals = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "val_loss" in r]
    assert [r["step"] for r in evals] == [6, 12] and all("sample" in r and "val_bpb" in r for r in evals)
    ckpt = load_checkpoint(best)
    assert ckpt.meta["val_loss"] == min(r["val_loss"] for r in evals)
    assert sorted(p.name for p in (tmp_path / "run").glob("ckpt-*")) == ["ckpt-000004", "ckpt-000008", "ckpt-000012"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "tokens seen: 1,536" in report  # 12 steps x 4 x 32
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000 or "matplotlib" in report
    assert json.loads((tmp_path / "run" / "run.json").read_text())["train"]["max_steps"] == 12


def _start(shards, out_dir, *extra):
    cmd = [*_cli(sys.executable, "-m", "gptkit"), *_overrides(shards, out_dir, *extra)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc, timeout=120):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_resume_after_kill_gives_identical_loss_curve(shards, tmp_path):
    # a constant schedule, so the run that gets killed can be given an endless max_steps
    same = ("checkpoint_interval=10", "dropout=0.1", "schedule=constant")
    train(_run(shards, tmp_path / "full", "max_steps=30", *same))
    proc = _start(shards, tmp_path / "killed", "max_steps=100000", *same)
    _wait_for(lambda: len(_losses(tmp_path / "killed")) >= 14, proc)  # between checkpoints 10 and 20
    proc.kill()  # SIGKILL: no chance to save anything
    proc.wait()
    assert (tmp_path / "killed" / "ckpt-000010").is_dir()
    train(_run(shards, tmp_path / "killed", "max_steps=30", *same))
    assert _losses(tmp_path / "killed", after=10) == _losses(tmp_path / "full", after=10)  # bit-exact
    assert len(_losses(tmp_path / "killed")) == 30


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(shards, tmp_path):
    proc = _start(shards, tmp_path / "run", "max_steps=100000", "checkpoint_interval=1000")
    _wait_for(lambda: len(_losses(tmp_path / "run")) >= 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    saved = sorted((tmp_path / "run").glob("ckpt-*"))
    assert saved and int(saved[-1].name.split("-")[1]) >= 3
    assert "SIGTERM" in (tmp_path / "run" / "report.md").read_text()


def test_nan_loss_stops_with_a_clear_error_and_keeps_good_checkpoints(shards, tmp_path):
    with pytest.raises(GptkitError, match="loss became nan at step") as err:
        train(_run(shards, tmp_path / "run", "lr=1e12", "min_lr=0", "grad_clip=0", "warmup_steps=0",
                   "checkpoint_interval=1", "max_steps=50"))
    assert "ckpt-" in str(err.value)
    for ckpt in (tmp_path / "run").glob("ckpt-*"):
        assert all(torch.isfinite(p).all() for p in load_checkpoint(ckpt).model.parameters())


@pytest.mark.parametrize("overrides, message", [
    (["model.block_size=100000"], "larger than the data"),
    (["dtype=fp16"], "fp16 needs a CUDA GPU"),
    (["data="], "no training data"),
])
def test_bad_runs_are_rejected_before_training(shards, tmp_path, overrides, message):
    if "fp16" in overrides[0] and torch.cuda.is_available():
        pytest.skip("fp16 is valid on CUDA")
    with pytest.raises(GptkitError, match=message):
        train(_run(shards, tmp_path / "run", *overrides))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp"])
def test_two_processes_match_one_process_with_accumulation(shards, tmp_path, fsdp):
    common = ["max_steps=6", "checkpoint_interval=3", "eval_interval=3", f"fsdp={str(fsdp).lower()}"]
    train(_run(shards, tmp_path / "single", "grad_accum=2", *common))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={29533 + fsdp}",
                "-m", "gptkit"]
    cmd = [*_cli(*torchrun), *_overrides(shards, tmp_path / "ddp", *common)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single, ddp = _losses(tmp_path / "single"), _losses(tmp_path / "ddp")
    assert len(ddp) == 6
    assert max(abs(a - b) for a, b in zip(single, ddp)) < 1e-5
    # a checkpoint from the 2-process run resumes in one process (grad_accum=2 keeps the data streams)
    train(_run(shards, tmp_path / "ddp", "grad_accum=2", "max_steps=9", "checkpoint_interval=3", "eval_interval=3",
               "fsdp=false"))
    assert len(_losses(tmp_path / "ddp")) == 9


def test_whole_split_evaluation_averages_every_window(shards):
    val = TokenShards(shards, "val")
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=300, block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    with torch.no_grad():
        expected = sum(model(x[None], y[None]).item() for x, y in val.windows(16)) / len(list(val.windows(16)))
    got = evaluate(model, val, 16, TrainConfig(batch_size=5, eval_batches=0), torch.device("cpu"), torch.float32)
    assert got == pytest.approx(expected, rel=1e-5)
