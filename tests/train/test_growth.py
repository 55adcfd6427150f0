"""Progressive training in the loop: a run grows on schedule, records it, and resumes exactly across a growth."""

import json
import shutil

import pytest
import torch

from gptkit import load_checkpoint
from gptkit.checkpoint import load_train_state
from gptkit.train import train
from gptkit.train.report import read_metrics
from tests.train.conftest import _losses, _overrides, _run
from tests.train.test_loop import _start, _wait_for

# a constant schedule, so a run's length does not change its learning rates (an endless run can be killed)
SAME = ("schedule=constant", "dropout=0.1", "log_interval=1")


def test_a_run_grows_on_schedule_and_says_so(shards, tmp_path):
    seen = []
    best = train(_run(shards, tmp_path / "run", "grow=[{at = 4, n_layer = 3}, {at = 0.5, n_embd = 64}]",
                      "grow_warmup_steps=2", "eval_interval=4", "checkpoint_interval=4"), seen.append)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    events = [r for r in records if "grow_stage" in r]
    assert [(e["step"], e["grow_stage"], e["n_layer"], e["n_embd"], e["n_head"]) for e in events] == \
        [(4, 1, 3, 32, 2), (6, 2, 3, 64, 4)]
    assert [r["grown"]["n_layer"] for r in seen if "grown" in r] == [3, 3]  # the progress output's growth lines
    assert len(_losses(tmp_path / "run")) == 12 and _losses(tmp_path / "run")[-1] < _losses(tmp_path / "run")[0]
    final = load_checkpoint(tmp_path / "run" / "ckpt-000012")
    assert (final.model.config.n_layer, final.model.config.n_embd) == (3, 64)
    assert final.meta["run"]["train"]["grow"][1] == {"at": 0.5, "n_layer": None, "n_embd": 64}
    assert load_train_state(tmp_path / "run" / "ckpt-000004")["stage"] == 1  # grown after step 4, then saved
    assert load_checkpoint(tmp_path / "run" / "ckpt-000004").model.config.n_layer == 3
    assert load_checkpoint(best).model.config.n_layer in (2, 3)  # the lowest val loss, whatever its stage
    report = (tmp_path / "run" / "report.md").read_text()
    assert "grown at step 4: 3 layers x 32" in report and "grown at step 6: 3 layers x 64" in report
    assert f"parameters: {final.model.num_params():,}" in report
    evals = {r["step"]: r["val_loss"] for r in records if "val_loss" in r}
    assert set(evals) == {4, 8, 12}


def _copy_checkpoint(source, out_dir):
    out_dir.mkdir()
    shutil.copytree(source, out_dir / source.name)  # the version the link points to, as a plain directory


@pytest.mark.parametrize("method", ["stack", "identity"])
def test_resume_before_at_and_after_a_growth_step_is_bit_exact(shards, tmp_path, method):
    grow = ["grow=[{at = 5, n_layer = 4}]", f"grow_method={method}", "grow_order=interleave"]
    train(_run(shards, tmp_path / "full", *grow, *SAME, "checkpoint_interval=1", "keep_last=20"))
    for step in (4, 5, 6):  # the last checkpoint before the growth, the one it was grown in, the first after
        resumed = tmp_path / f"from-{step}"
        _copy_checkpoint(tmp_path / "full" / f"ckpt-{step:06d}", resumed)
        train(_run(shards, resumed, *grow, *SAME))
        assert _losses(resumed, after=step) == _losses(tmp_path / "full", after=step)
        assert [r["step"] for r in read_metrics(resumed / "metrics.jsonl") if "grow_stage" in r] == \
            ([5] if step == 4 else [])


def test_resume_after_kill_across_a_growth_step_gives_identical_loss_curve(shards, tmp_path):
    grow = ("grow=[{at = 6, n_layer = 4}]", "optimizer=muon", "checkpoint_interval=4", "eval_interval=4")
    train(_run(shards, tmp_path / "full", "max_steps=16", *grow, *SAME))
    proc = _start(shards, tmp_path / "killed", "max_steps=100000", *grow, *SAME)
    try:
        _wait_for(lambda: len(_losses(tmp_path / "killed")) >= 10, proc)  # past the growth and checkpoint 8
    finally:
        proc.kill()
        proc.wait()
    train(_run(shards, tmp_path / "killed", "max_steps=16", *grow, *SAME))
    assert _losses(tmp_path / "killed") == _losses(tmp_path / "full")  # bit-exact
    run = json.loads((tmp_path / "killed" / "run.json").read_text())
    assert run["train"]["grow"] == [{"at": 6, "n_layer": 4, "n_embd": None}]


def test_optimizer_reset_and_compile_are_rebuilt_after_growth(shards, tmp_path, monkeypatch):
    compiled = []

    def record(module, *args, **kwargs):
        compiled.append(module.config.n_layer)
        return module

    monkeypatch.setattr(torch, "compile", record)
    train(_run(shards, tmp_path / "reset", "grow=[{at = 2, n_layer = 4}]", "grow_optimizer=reset", "compile=true",
               "max_steps=4", *SAME))
    assert compiled == [2, 4]  # compiled at the start, and again around the grown model
    train(_run(shards, tmp_path / "carry", "grow=[{at = 2, n_layer = 4}]", "max_steps=4", *SAME))
    reset, carry = _losses(tmp_path / "reset"), _losses(tmp_path / "carry")
    assert reset[:2] == carry[:2] and reset[2:] != carry[2:]  # the same until the growth, then not


def test_the_progress_output_says_when_the_model_grew(shards, tmp_path, capsys):
    from gptkit.cli import main

    assert main(["train", "--config", "tiny", *_overrides(shards, tmp_path / "run", "max_steps=4",
                                                          "grow=[{at = 2, n_layer = 3}]")]) == 0
    out = capsys.readouterr()
    assert "step 2: grew to 3 layers x 32 (48,800 parameters)" in out.out + out.err
