"""Two processes under torchrun (DDP and FSDP2) against one process with gradient accumulation, and
checkpoints that move between the two."""

import os
import subprocess
import sys

import pytest

from gptkit.train import train
from gptkit.train.report import read_metrics
from tests.train.conftest import _cli, _finetune_config, _finetune_overrides, _losses, _overrides, _run

# a constant schedule: the length of a run does not change its learning rates, so runs of different
# lengths (and a run resumed from another's checkpoint) take the same steps
SAME = ["checkpoint_interval=3", "eval_interval=3", "schedule=constant", "warmup_steps=0"]


def _torchrun(shards, out_dir, *extra):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gptkit"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*_cli(*torchrun), *_overrides(shards, out_dir, *SAME, *extra)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _close(a, b):
    assert len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) < 1e-5


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp"])
def test_two_processes_match_one_process_and_resume_in_one(shards, tmp_path, fsdp):
    sharding = f"fsdp={str(fsdp).lower()}"
    train(_run(shards, tmp_path / "single", "grad_accum=2", "max_steps=9", *SAME))  # uninterrupted
    _torchrun(shards, tmp_path / "two", "max_steps=6", sharding)
    _close(_losses(tmp_path / "two"), _losses(tmp_path / "single")[:6])
    # its checkpoint resumes in one process (grad_accum=2 keeps the data streams) on the same curve
    train(_run(shards, tmp_path / "two", "grad_accum=2", "max_steps=9", *SAME))
    _close(_losses(tmp_path / "two"), _losses(tmp_path / "single"))


def test_a_one_process_checkpoint_resumes_in_two(shards, tmp_path):
    train(_run(shards, tmp_path / "single", "grad_accum=2", "max_steps=9", *SAME))
    train(_run(shards, tmp_path / "moved", "grad_accum=2", "max_steps=6", *SAME))
    _torchrun(shards, tmp_path / "moved", "max_steps=9")
    _close(_losses(tmp_path / "moved"), _losses(tmp_path / "single"))


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp"])
def test_two_processes_grow_like_one_process(shards, tmp_path, fsdp):
    grow = ("grow=[{at = 2, n_layer = 3}, {at = 4, n_layer = 4}]", "max_steps=6", "grow_method=stack")
    train(_run(shards, tmp_path / "single", "grad_accum=2", *grow, *SAME))
    _torchrun(shards, tmp_path / "two", *grow, f"fsdp={str(fsdp).lower()}")
    _close(_losses(tmp_path / "two"), _losses(tmp_path / "single"))
    events = [r["n_layer"] for r in read_metrics(tmp_path / "two" / "metrics.jsonl") if "grow_stage" in r]
    assert events == [3, 4]


def test_two_processes_finetune_like_one_process(task_files, tmp_path):
    from gptkit.train import finetune

    same = ["schedule=constant", "warmup_steps=0", "val_examples=0", "max_steps=6", "batch_size=4"]
    config = _finetune_config(task_files, tmp_path / "single", "grad_accum=2", *same)
    finetune(config)
    settings = _finetune_overrides(task_files, tmp_path / "two", *same)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gptkit"]
    proc = subprocess.run([*torchrun, "finetune", "--quiet", *settings], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    _close(_losses(tmp_path / "two"), _losses(tmp_path / "single"))
