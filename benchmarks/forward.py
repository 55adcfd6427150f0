"""Forward+backward time per step: gptkit vs transformers' GPT2LMHeadModel, same weights.

    python benchmarks/forward.py [--layers 12 --embd 768 --heads 12 --batch 4 --seq 256 --steps 3]

Both models get identical (random) weights and the same batch; steps alternate
between them so machine noise hits both alike. Prints the median per dtype and
the ratio (transformers time / gptkit time: above 1 means gptkit is faster).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from gptkit import GPT, ModelConfig, to_hf  # noqa: E402


def step_time(model, idx, dtype, hf: bool) -> float:
    """One forward+backward over idx[:, :-1] predicting idx[:, 1:] (HF shifts labels itself)."""
    model.zero_grad(set_to_none=True)
    inputs = idx[:, :-1]
    _sync(idx.device)
    start = time.perf_counter()
    with torch.autocast(idx.device.type, dtype=dtype, enabled=dtype != torch.float32):
        loss = model(inputs, labels=inputs).loss if hf else model(inputs, idx[:, 1:])
    loss.backward()
    _sync(idx.device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--embd", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=3, help="timed steps per model and dtype")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--smoke", action="store_true",
                   help="a tiny run that only checks the script works (seconds; its figures mean nothing)")
    args = p.parse_args()
    if args.smoke:
        args.layers, args.embd, args.heads, args.vocab, args.batch, args.seq, args.steps = 1, 16, 2, 256, 2, 16, 1
        args.dtypes = "fp32"
    try:
        import transformers
    except ImportError:
        sys.exit("this benchmark needs transformers: pip install 'gptkit[hf]'")
    transformers.logging.set_verbosity_error()

    torch.manual_seed(0)
    config = ModelConfig(vocab_size=args.vocab, block_size=1024, n_layer=args.layers,
                         n_head=args.heads, n_embd=args.embd)
    ours = GPT(config).train()
    with tempfile.TemporaryDirectory() as d:
        to_hf(ours, None, d)
        theirs = transformers.GPT2LMHeadModel.from_pretrained(d, attn_implementation="sdpa").train()
    ours.to(args.device)
    theirs.to(args.device)
    idx = torch.randint(0, args.vocab, (args.batch, args.seq + 1), device=args.device)

    print(f"# forward+backward, {ours.num_params() / 1e6:.1f}M params, batch {args.batch} x {args.seq}, "
          f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}")
    print("| dtype | gptkit s/step | transformers s/step | speed-up (transformers / gptkit) |")
    print("|---|---|---|---|")
    for name in args.dtypes.split(","):
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[name]
        ours_t, theirs_t = [], []
        step_time(ours, idx, dtype, hf=False)  # warm-up
        step_time(theirs, idx, dtype, hf=True)
        for _ in range(args.steps):
            ours_t.append(step_time(ours, idx, dtype, hf=False))
            theirs_t.append(step_time(theirs, idx, dtype, hf=True))
        a, b = statistics.median(ours_t), statistics.median(theirs_t)
        print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
