"""The training loop end to end: checkpoints, metrics, report, resume after SIGKILL, SIGTERM, NaN, bad runs."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gptkit import GptkitError, load_checkpoint
from gptkit.data import Batches
from gptkit.generate import Decoding
from gptkit.train import train
from gptkit.train.report import read_metrics
from tests.train.conftest import _cli, _losses, _overrides, _run


def test_training_writes_checkpoints_metrics_and_report(shards, tmp_path):
    best = train(_run(shards, tmp_path / "run", "sample_tokens=8", "keep_last=2"))
    losses = _losses(tmp_path / "run")
    assert len(losses) == 12 and losses[-1] < losses[0]
    evals = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "val_loss" in r]
    assert [r["step"] for r in evals] == [6, 12] and all("sample" in r and "val_bpb" in r for r in evals)
    ckpt = load_checkpoint(best)
    assert ckpt.meta["val_loss"] == min(r["val_loss"] for r in evals)
    assert sorted(p.name for p in (tmp_path / "run").glob("ckpt-*")) == ["ckpt-000008", "ckpt-000012"]  # pruned
    assert list((tmp_path / "run").glob(".ckpt-*")) == []  # and nothing of the pruned one is left hidden
    report = (tmp_path / "run" / "report.md").read_text()
    assert "tokens seen: 1,536" in report  # 12 steps x 4 x 32
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000 or "matplotlib" in report
    assert json.loads((tmp_path / "run" / "run.json").read_text())["train"]["max_steps"] == 12


def _start(shards, out_dir, *extra):
    cmd = [*_cli(sys.executable, "-m", "gptkit"), *_overrides(shards, out_dir, *extra)]
    # Ctrl-C as a terminal delivers it, even when this test runs in the background (where SIGINT starts ignored)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


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
    try:
        _wait_for(lambda: len(_losses(tmp_path / "killed")) >= 14, proc)  # past checkpoint 10
    finally:
        proc.kill()  # SIGKILL: no chance to save anything, or to release the run's lock
        proc.wait()
    newest = max(int(p.name.removeprefix("ckpt-")) for p in (tmp_path / "killed").glob("ckpt-*"))
    assert 10 <= newest < 30  # so the rerun must replay steps from a checkpoint
    train(_run(shards, tmp_path / "killed", "max_steps=30", *same))  # takes over the dead run's lock
    steps = [r["step"] for r in read_metrics(tmp_path / "killed" / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 31))  # the killed run's steps past its checkpoint were replaced
    assert _losses(tmp_path / "killed", after=10) == _losses(tmp_path / "full", after=10)  # bit-exact


def test_a_second_training_run_on_the_same_out_dir_is_refused(shards, tmp_path):
    first = _start(shards, tmp_path / "run", "max_steps=100000", "checkpoint_interval=1000", "eval_interval=1000")
    try:
        _wait_for(lambda: len(_losses(tmp_path / "run")) >= 2, first)
        second = subprocess.run([*_cli(sys.executable, "-m", "gptkit"), *_overrides(shards, tmp_path / "run")],
                                capture_output=True, text=True, timeout=120)
        steps_before = len(_losses(tmp_path / "run"))
        _wait_for(lambda: len(_losses(tmp_path / "run")) > steps_before, first)  # the first run goes on undisturbed
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 2
    assert "Traceback" not in second.stderr
    assert second.stderr.strip().splitlines()[-1] == (f"error: {tmp_path / 'run'} is in use by another training "
                                                      f"run (pid {first.pid}): wait for it to finish, or choose "
                                                      f"another directory")
    steps = [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, len(steps) + 1))  # one run's metrics, not two interleaved


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_signal_saves_a_checkpoint_then_ends_the_run(shards, tmp_path, sig):
    proc = _start(shards, tmp_path / "run", "max_steps=100000", "checkpoint_interval=1000")
    try:
        _wait_for(lambda: len(_losses(tmp_path / "run")) >= 3, proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 128 + sig, err  # saved, then ended as the signal asks (130 or 143)
    assert "Traceback" not in err and f"stopped by {sig.name}" in err
    saved = sorted((tmp_path / "run").glob("ckpt-*"))
    assert saved and int(saved[-1].name.split("-")[1]) == max(r["step"] for r in
                                                               read_metrics(tmp_path / "run" / "metrics.jsonl"))
    assert sig.name in (tmp_path / "run" / "report.md").read_text()


def test_max_minutes_stops_and_saves(shards, tmp_path):
    train(_run(shards, tmp_path / "run", "max_steps=100000", "max_minutes=0.002", "checkpoint_interval=1000"))
    steps = [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert 1 <= steps[-1] < 100000
    assert (tmp_path / "run" / f"ckpt-{steps[-1]:06d}").is_dir() and (tmp_path / "run" / "best").is_dir()
    assert "stopped by max_minutes=0.002" in (tmp_path / "run" / "report.md").read_text()


def test_a_failing_compile_falls_back_to_eager(shards, tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    train(_run(shards, tmp_path / "compiled", "compile=true", "max_steps=4"))
    assert "torch.compile failed (no compiler here); training without it" in caplog.text
    train(_run(shards, tmp_path / "eager", "max_steps=4"))
    assert _losses(tmp_path / "compiled") == _losses(tmp_path / "eager")


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


def test_evaluation_samples_with_the_configured_sampling(shards, tmp_path):
    from gptkit.generate import generate_text

    train(_run(shards, tmp_path / "run", "max_steps=4", "eval_interval=4", "checkpoint_interval=4",
               "sample_tokens=8", "sample_temperature=0"))
    sample = [r["sample"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "sample" in r]
    ckpt = load_checkpoint(tmp_path / "run" / "ckpt-000004")  # the weights the sample came from
    assert sample == [generate_text(ckpt.model.eval(), ckpt.tokenizer, "", Decoding(8, temperature=0))]


def test_a_signal_during_a_step_abandons_it_and_the_resumed_run_is_exact(shards, tmp_path, monkeypatch):
    same = ("checkpoint_interval=2", "schedule=constant", "dropout=0.1")
    train(_run(shards, tmp_path / "full", "max_steps=6", *same))
    draw = Batches.batch

    def batch(self, step, stream=0):
        if step == 3 and self.seed == 1337:  # in the middle of the 4th training step (not an evaluation)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: its handler runs right here
        return draw(self, step, stream)

    monkeypatch.setattr(Batches, "batch", batch)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even in the background
    try:
        with pytest.raises(KeyboardInterrupt):  # after saving, the Ctrl-C is passed on as usual
            train(_run(shards, tmp_path / "cut", "max_steps=6", *same))
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.undo()
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "full")[:3]  # step 4 never happened
    assert (tmp_path / "cut" / "ckpt-000003").is_dir()  # saved as the 3rd step left it
    assert "stopped by SIGINT" in (tmp_path / "cut" / "report.md").read_text()
    train(_run(shards, tmp_path / "cut", "max_steps=6", *same))
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "full")  # bit-exact, dropout included
