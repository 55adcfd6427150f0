"""Generation speed: gptkit vs transformers' `generate`, same weights, side by side.

    python benchmarks/generate.py [--batches 1,8] [--prompts 32,512] [--new 128] [--dtypes fp32,bf16,int8]
    python benchmarks/generate.py --quality CKPT [--text ../shared/data/tinyshakespeare.txt]

A 124M-shaped GPT-2 with random weights; every case is greedy, runs to exactly
--new tokens, and is timed twice: once for 1 new token (time to first token,
TTFT: the prefill) and once for all of them; decode tokens/s is
batch * (new - 1) / (full - TTFT). gptkit and transformers alternate within
each case. int8 is gptkit's int8 weights (transformers has no CPU int8 path
for GPT-2). bf16 on a CPU without AMX/AVX512-BF16 is emulated and very slow,
so it is left out there unless asked for.

The reference line is the memory-bandwidth bound at batch 1: each decoded
token reads every weight once, so tokens/s <= bandwidth / model bytes (the
bandwidth is measured here by summing a 1 GB tensor).

--quality CKPT reports what int8 (and bf16) cost in quality: perplexity of a
trained checkpoint on the last 10% of --text, for each dtype.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gptkit import GPT, ModelConfig, load_checkpoint, to_hf  # noqa: E402
from gptkit.generate import GREEDY_DECODING, generate_batch  # noqa: E402
from gptkit.quantize import for_inference  # noqa: E402
from gptkit.runtime import fast_bf16  # noqa: E402


def as_dtype(model: GPT, name: str) -> GPT:
    return for_inference(copy.deepcopy(model), name)


def time_ours(model, prompts, new: int) -> float:
    start = time.perf_counter()
    out = generate_batch(model, prompts, replace(GREEDY_DECODING, max_new_tokens=new))
    assert all(len(o) == new for o in out)
    return time.perf_counter() - start


def time_theirs(model, prompts, new: int) -> float:
    idx = torch.tensor(prompts)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, pad_token_id=0)
    assert out.shape[1] == idx.shape[1] + new
    return time.perf_counter() - start


def measure(timer, model, prompts, new: int, repeats: int) -> tuple[float, float]:
    """(TTFT seconds, decode tokens/s), best of `repeats`."""
    ttft = min(timer(model, prompts, 1) for _ in range(repeats))
    full = min(timer(model, prompts, new) for _ in range(repeats))
    return ttft, len(prompts) * (new - 1) / max(full - ttft, 1e-9)


def bandwidth(numel: int = 256 * 2**20) -> float:
    """Read bandwidth in bytes/s: the best of a few sums over `numel` floats (1 GB)."""
    x = torch.ones(numel)
    x.sum()
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best


def model_bytes(model: GPT, name: str) -> int:
    """Bytes read per decoded token: every weight except the position table (one row of wte is the lookup)."""
    n = model.num_params() - model.wpe.weight.numel()
    return n * {"fp32": 4, "bf16": 2, "int8": 1}[name]


def speed(args) -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=args.vocab, block_size=1024, n_layer=args.layers, n_head=args.heads,
                         n_embd=args.embd)
    ours = GPT(config).eval()
    with tempfile.TemporaryDirectory() as d:
        to_hf(ours, None, d)
        theirs = transformers.GPT2LMHeadModel.from_pretrained(d, attn_implementation="sdpa").eval()
    dtypes = args.dtypes.split(",") if args.dtypes else ["fp32", "int8"] + (["bf16"] if fast_bf16(
        torch.device("cpu")) else [])
    bw = bandwidth(2**20 if args.smoke else 256 * 2**20)
    print(f"# generate: {ours.num_params() / 1e6:.1f}M params, greedy, {args.new} new tokens, torch "
          f"{torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads")
    print(f"# memory bandwidth {bw / 1e9:.1f} GB/s -> batch-1 bound: " + ", ".join(
        f"{n} {bw / model_bytes(ours, n):.0f} tokens/s" for n in ("fp32", "bf16", "int8")))
    print("| dtype | batch | prompt | TTFT gptkit ms | TTFT transformers ms | decode tok/s gptkit | "
          "decode tok/s transformers | decode speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    results = []  # (who, batch, prompt, dtype, decode tok/s, TTFT s)
    for name in dtypes:
        mine = as_dtype(ours, name)
        hf = None if name == "int8" else copy.deepcopy(theirs).to(mine.wte.weight.dtype)
        for batch in map(int, args.batches.split(",")):
            for length in map(int, args.prompts.split(",")):
                prompts = torch.randint(0, config.vocab_size, (batch, length)).tolist()
                time_ours(mine, prompts, 2)  # warm-up
                a_ttft, a_tps = measure(time_ours, mine, prompts, args.new, args.repeats)
                results.append(("gptkit", batch, length, name, a_tps, a_ttft))
                cells = ["n/a", "n/a", "n/a"]
                if hf is not None:
                    time_theirs(hf, prompts, 2)
                    b_ttft, b_tps = measure(time_theirs, hf, prompts, args.new, args.repeats)
                    results.append(("transformers", batch, length, name, b_tps, b_ttft))
                    cells = [f"{b_ttft * 1e3:.0f}", f"{b_tps:.1f}", f"{a_tps / b_tps:.2f}x"]
                print(f"| {name} | {batch} | {length} | {a_ttft * 1e3:.0f} | {cells[0]} | {a_tps:.1f} | {cells[1]} | "
                      f"{cells[2]} |", flush=True)
    print("\nbest dtype of each, decode tokens/s (TTFT):")
    for batch, length in sorted({(r[1], r[2]) for r in results}):
        ours_best, theirs_best = (
            max((r for r in results if r[:3] == (who, batch, length)), key=lambda r: r[4])
            for who in ("gptkit", "transformers")
        )
        print(f"- batch {batch}, prompt {length}: gptkit {ours_best[3]} {ours_best[4]:.1f} "
              f"({ours_best[5] * 1e3:.0f} ms) vs transformers {theirs_best[3]} {theirs_best[4]:.1f} "
              f"({theirs_best[5] * 1e3:.0f} ms): {ours_best[4] / theirs_best[4]:.2f}x")


def quality(args) -> None:
    """Perplexity of a trained checkpoint on the tail of a text, per dtype."""
    text_path = Path(args.text)
    if not text_path.is_file():
        sys.exit(f"no text at {text_path}: pass --text FILE")
    ckpt = load_checkpoint(args.quality)
    text = text_path.read_text(encoding="utf-8")
    ids = ckpt.tokenizer.encode(text[int(len(text) * 0.9):])
    block = ckpt.model.config.block_size
    windows = torch.tensor(ids[: len(ids) // (block + 1) * (block + 1)]).view(-1, block + 1)[: args.windows]
    print(f"# perplexity of {args.quality} on the last 10% of {text_path.name} "
          f"({len(windows)} windows of {block} tokens)")
    print("| dtype | loss | perplexity | delta vs fp32 |")
    print("|---|---|---|---|")
    base = None
    for name in args.quality_dtypes.split(","):
        model = as_dtype(ckpt.model.eval(), name)
        losses = []
        with torch.inference_mode():
            for chunk in windows.split(8):
                losses.append(float(model(chunk[:, :-1], chunk[:, 1:])))
        loss = statistics.fmean(losses)
        base = loss if base is None else base
        print(f"| {name} | {loss:.4f} | {math.exp(loss):.3f} | {math.exp(loss) / math.exp(base) - 1:+.2%} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--prompts", default="32,512")
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--dtypes", default="", help="default: fp32,int8, plus bf16 where the CPU is fast at it")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per case (the best counts)")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--embd", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--quality", metavar="CKPT", help="report perplexity per dtype for this checkpoint instead")
    p.add_argument("--quality-dtypes", default="fp32,int8,bf16")
    p.add_argument("--text", default=str(Path(__file__).resolve().parents[2] / "shared/data/tinyshakespeare.txt"))
    p.add_argument("--windows", type=int, default=200)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--smoke", action="store_true",
                   help="a tiny run that only checks the script works (seconds; its figures mean nothing)")
    args = p.parse_args()
    if args.smoke:
        args.layers, args.embd, args.heads, args.vocab, args.new = 1, 16, 2, 256, 4
        args.batches, args.prompts, args.dtypes = "1,2", "8", "fp32,int8"
    if args.quality:
        quality(args)
        return
    try:
        import transformers  # noqa: F401
    except ImportError:
        sys.exit("this benchmark needs transformers: pip install 'gptkit[hf]'")
    speed(args)


if __name__ == "__main__":
    main()
