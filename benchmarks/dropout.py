"""What dropout costs a CPU training step, and what `attn_dropout=0` saves.

    python benchmarks/dropout.py [--shape 4,128,128,32] [--dropout 0.1] [--steps 10]

--shape is n_layer,n_embd,block_size,batch (default: the Shakespeare CPU recipe).
Times gptkit's `train_step` (AdamW, fp32) with no dropout, with `dropout` everywhere,
and with `dropout` on embeddings and residuals only (`attn_dropout=0`), next to the
transformers loop with the same dropout everywhere (resid/embd/attn_pdrop). Steps of
all four alternate so machine noise hits them alike. On CPU, attention dropout needs
a random mask per attention weight and rules out the fused attention kernel.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

import torch
from train import RandomBatches, gptkit_step, hf_step  # benchmarks/train.py

from gptkit import GPT, ModelConfig, to_hf
from gptkit.config import TrainConfig
from gptkit.train import build_optimizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="4,128,128,32")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    p.add_argument("--smoke", action="store_true",
                   help="a tiny run that only checks the script works (seconds; its figures mean nothing)")
    args = p.parse_args()
    if args.smoke:
        args.shape, args.steps = "1,16,16,2", 1
    import transformers

    transformers.logging.set_verbosity_error()
    n_layer, n_embd, block, batch = (int(v) for v in args.shape.split(","))
    base = ModelConfig(vocab_size=65, block_size=block, n_layer=n_layer, n_head=4, n_embd=n_embd)
    cfg = TrainConfig(batch_size=batch, dtype="fp32", grad_clip=1.0)
    batches = RandomBatches(base.vocab_size, batch, block)
    variants = {}  # name: (model, optimizer, step function)
    for name, config in (("no dropout", base), ("dropout everywhere", replace(base, dropout=args.dropout)),
                         ("dropout, attn_dropout=0", replace(base, dropout=args.dropout, attn_dropout=0.0))):
        model = GPT(config).train()
        variants[f"gptkit, {name}"] = (model, build_optimizer(model, cfg, torch.device("cpu")), gptkit_step)
    with tempfile.TemporaryDirectory() as tmp:
        to_hf(GPT(replace(base, dropout=args.dropout)), None, tmp)
        hf = transformers.GPT2LMHeadModel.from_pretrained(tmp, attn_implementation="sdpa").train()
    variants["transformers loop, dropout everywhere"] = (hf, torch.optim.AdamW(hf.parameters()), hf_step)

    times = {name: [] for name in variants}
    for i in range(args.steps + 1):
        for name, (model, optimizer, step) in variants.items():
            start = time.perf_counter()
            step(model, optimizer, batches, i, cfg, torch.float32)
            if i:  # the first step is a warm-up
                times[name].append(time.perf_counter() - start)
    print(f"# {n_layer} x {n_embd}, context {block}, batch {batch}, fp32, dropout {args.dropout}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.steps} steps")
    print("| variant | ms/step | tokens/s |")
    print("|---|---|---|")
    for name, ts in times.items():
        seconds = statistics.median(ts)
        print(f"| {name} | {seconds * 1e3:.0f} | {batch * block / seconds:,.0f} |")


if __name__ == "__main__":
    main()
