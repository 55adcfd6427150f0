"""Training throughput: gptkit's training step vs a plain PyTorch loop over transformers' GPT2LMHeadModel.

    python benchmarks/train.py [--shapes shakespeare-char,gpt2-124m] [--dtypes fp32,bf16] [--steps 4]

Both sides: same shape, batch, dropout 0, dtype, AdamW and gradient clipping at 1.0.
gptkit runs `gptkit.train.train_step` (the loop's own step);
the peer runs forward with labels, backward, clip, AdamW step. Steps alternate between
the two so machine noise hits both alike. MFU is against the matmul peak this script
measures first (a large fp32 and bf16 matmul), using 6N + 12LCT FLOPs per token.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from gptkit import GPT, ModelConfig, to_hf  # noqa: E402
from gptkit.config import TrainConfig  # noqa: E402
from gptkit.train import Precision, build_optimizer, train_step  # noqa: E402

SHAPES = {  # name: (model config, batch size)
    "shakespeare-char": (ModelConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384), 64),
    "gpt2-124m": (ModelConfig(vocab_size=50257, block_size=256, n_layer=12, n_head=12, n_embd=768), 4),
    "smoke": (ModelConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=16), 2),
}


def matmul_peak(dtype: torch.dtype, tries: int = 3, sizes=(1024, 2048, 4096)) -> float:
    """The best FLOP/s of square matmuls of a few sizes (the fastest size differs by dtype and cache)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        for _ in range(tries):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
        if 2 * (2 * n) ** 3 / best > 10:  # e.g. bf16 emulated on an AVX2 CPU: the next size would take minutes
            break
    return best


class RandomBatches:
    """Stands in for `gptkit.data.Batches`: uniformly random ids (throughput does not depend on the text)."""

    def __init__(self, vocab_size: int, batch_size: int, block_size: int):
        self.shape, self.vocab_size = (batch_size, block_size + 1), vocab_size

    def batch(self, step: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = torch.randint(0, self.vocab_size, self.shape, generator=torch.Generator().manual_seed(step))
        return chunk[:, :-1], chunk[:, 1:]


def gptkit_step(model, optimizer, batches, step: int, cfg: TrainConfig, dtype: torch.dtype) -> None:
    train_step(model, optimizer, batches, step, cfg, Precision(torch.device("cpu"), dtype))


def hf_step(model, optimizer, batches, step: int, cfg: TrainConfig, dtype: torch.dtype) -> None:
    """The plain loop a transformers user writes."""
    x, _ = batches.batch(step, 0)
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        loss = model(x, labels=x).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default="shakespeare-char,gpt2-124m")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--steps", type=int, default=4, help="timed steps per side")
    p.add_argument("--smoke", action="store_true",
                   help="a tiny run that only checks the script works (seconds; its figures mean nothing)")
    args = p.parse_args()
    if args.smoke:
        args.shapes, args.dtypes, args.steps = "smoke", "fp32", 1
    try:
        import transformers
    except ImportError:
        sys.exit("this benchmark needs transformers: pip install 'gptkit[hf]'")
    transformers.logging.set_verbosity_error()
    dev = torch.device("cpu")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    sizes = (128,) if args.smoke else (1024, 2048, 4096)
    peaks = {name: matmul_peak(dtypes[name], sizes=sizes) for name in args.dtypes.split(",")}
    print(f"# training step throughput, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} threads; measured matmul peak: "
          + ", ".join(f"{name} {peak / 1e9:.0f} GFLOP/s" for name, peak in peaks.items()))
    print("| shape | dtype | batch | gptkit tokens/s | gptkit MFU | HF loop tokens/s | HF loop MFU | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        config, batch = SHAPES[shape]
        T = config.block_size
        batches = RandomBatches(config.vocab_size, batch, T)
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            ours = GPT(config).train()
            to_hf(ours, None, tmp)
            theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp, attn_implementation="sdpa").train()
        flops = ours.flops_per_token(T) * batch * T
        for name in args.dtypes.split(","):
            dtype = dtypes[name]
            cfg = TrainConfig(batch_size=batch, dtype=name, grad_clip=1.0)
            ours_opt = build_optimizer(ours, cfg, dev)
            theirs_opt = torch.optim.AdamW(theirs.parameters(), lr=6e-4, weight_decay=0.1)

            times = {"ours": [], "theirs": []}
            for i in range(args.steps + 1):
                for side, model, opt in (("ours", ours, ours_opt), ("theirs", theirs, theirs_opt)):
                    start = time.perf_counter()
                    (gptkit_step if side == "ours" else hf_step)(model, opt, batches, i, cfg, dtype)
                    if i:  # the first step of each side is a warm-up
                        times[side].append(time.perf_counter() - start)
            a, b = statistics.median(times["ours"]), statistics.median(times["theirs"])
            tokens = batch * T
            print(f"| {shape} | {name} | {batch} x {T} | {tokens / a:,.0f} | {flops / a / peaks[name]:.1%} | "
                  f"{tokens / b:,.0f} | {flops / b / peaks[name]:.1%} | {b / a:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
