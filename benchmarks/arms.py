"""What the side-by-side fine-tuning benchmarks share: arms run as processes, and their baselines' plain loop.

    run_arms(__file__, ["gptkit", "baseline"], parallel=True, argv=[...])   # each arm: `script ARGV --arm NAME`
    loop = PlainLoop(model, lr=2e-3, min_lr=2e-4)
    seconds_per_step = loop.probe(batches, steps=12, skip=4)                 # timed steps at a tenth of lr
    for i in range(steps):
        loop.step(next(batches), loop.lr_at(i, steps, warmup=100))
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path


def arm_parser(doc: str, minutes: float, data: Path, out: Path) -> argparse.ArgumentParser:
    """The flags every side-by-side benchmark takes; the script adds its own."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=minutes, help="training budget per arm")
    p.add_argument("--arms", default="gptkit,baseline")
    p.add_argument("--parallel", action="store_true", help="run the arms at once, one core each")
    p.add_argument("--data", default=str(data))
    p.add_argument("--out", default=str(out))
    p.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm in this process
    p.add_argument("--smoke", action="store_true", help="a tiny run on synthetic data that only checks the script "
                   "works (seconds; its figures mean nothing)")
    p.add_argument("overrides", nargs="*", help="key=value settings of the gptkit arm")
    return p


def smoke_settings(args, data: str = "") -> None:
    """--smoke, in the parent: synthetic data sets (their `data` part as --data), a temporary --out, a budget
    of seconds and the tiny model. The arms get --smoke too, for the settings the scripts keep as constants."""
    if not args.smoke or args.arm:
        return
    import smoke

    work = smoke.workdir()
    args.data, args.out = str(smoke.datasets(work / "data") / data), str(work / "out")
    args.minutes, args.overrides = 0.01, [*smoke.TINY_MODEL, *args.overrides]


def run_arms(script: str, arms: list[str], parallel: bool, argv: list[str], smoke: bool = False) -> None:
    """Run each arm in its own process: at once with one thread each, or one after the other with all cores."""
    argv = [*argv, "--smoke"] if smoke else argv
    threads = "1" if parallel else str(os.cpu_count())
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    procs = []
    for arm in arms:
        procs.append(subprocess.Popen([sys.executable, script, *argv, "--arm", arm], env=env))
        if not parallel:
            procs[-1].wait()
    for proc in procs:
        if proc.wait():
            sys.exit(f"an arm failed (exit {proc.returncode})")


def run_own_arm(args, out: Path, arms: dict) -> bool:
    """In an arm's process (`--arm NAME`): run arms[NAME]() with the threads run_arms gave it and write its
    result to out/NAME.json; False in the parent process."""
    if not args.arm:
        return False
    import json

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    (out / f"{args.arm}.json").write_text(json.dumps(arms[args.arm](), indent=2) + "\n")
    return True


class PlainLoop:
    """A transformers model trained the plain way: AdamW, gradient clipping, bf16 autocast where the CPU is
    fast at it, linear warmup then a cosine decay to min_lr."""

    def __init__(self, model, lr: float, min_lr: float, betas=(0.9, 0.95), weight_decay: float = 0.1,
                 grad_clip: float = 1.0):
        import torch

        from gptkit.runtime import fast_bf16

        self.model, self.lr, self.min_lr, self.grad_clip = model, lr, min_lr, grad_clip
        self.dtype = torch.bfloat16 if fast_bf16(torch.device("cpu")) else torch.float32
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)

    def autocast(self):
        import torch

        return torch.autocast("cpu", self.dtype, enabled=self.dtype != torch.float32)

    def step(self, batch: dict, lr: float) -> float:
        import torch

        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.autocast():
            loss = self.model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def probe(self, batches, steps: int, skip: int) -> tuple[float, float]:
        """(seconds per step after the first `skip`, seconds in all) over `steps` steps at a tenth of lr.

        The steps count as training: the model is not reset."""
        timed = []
        for _ in range(steps):
            start = time.perf_counter()
            self.step(next(batches), self.lr * 0.1)
            timed.append(time.perf_counter() - start)
        return sum(timed[skip:]) / len(timed[skip:]), sum(timed)

    def lr_at(self, i: int, steps: int, warmup: int) -> float:
        if i < warmup:
            return self.lr * (i + 1) / warmup
        progress = max(0.0, (i - warmup) / max(1, steps - warmup))
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))
