"""Two processes under torchrun (DDP and FSDP2) against one process with gradient accumulation."""

import os
import subprocess
import sys

import pytest

from gptkit.train import train
from tests.train.conftest import _cli, _losses, _overrides, _run


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
