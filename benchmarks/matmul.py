"""Where a decoded token's time goes: each matmul kernel gptkit can use, reading a model's weights once.

    python benchmarks/matmul.py [--layers 12] [--embd 768] [--vocab 50257] [--repeats 7]

At batch 1 a decoding step multiplies one row of activations by every weight matrix of the model, once
each, in order: the QKV, output, MLP-up and MLP-down matrices of every block, then the LM head. This
script does exactly that sweep (no attention, norms or Python model code around it) with each kernel on
the same weights, so the weights come from memory as in real decoding, and reports how fast each kernel
reads them, against the read bandwidth the machine shows when summing a 1 GB tensor:

- fp32: `F.linear` (MKL's sgemv), oneDNN on weights packed ahead of time, MKL's packed sgemm;
- bf16: `F.linear`, `torch.mv`, oneDNN packed (gptkit's `PackedLinear`);
- int8: PyTorch's weight-only `_weight_int8pack_mm` with bf16 activations (gptkit's `Int8Linear`),
  the same with fp32 activations, and FBGEMM's dynamic-quantised linear (activations rounded to 8 bits
  per tensor, which costs Llama-family models too much quality);
- int4: PyTorch's weight-only `_weight_int4pack_mm_for_cpu` in groups of 32 (gptkit's `Int4Linear`).

It also times one call on a 64 x 64 matrix: the fixed cost of a kernel, which a decoding step pays
about 50 times for the 124M shape. Kernels this PyTorch build lacks are left out.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from generate import bandwidth  # noqa: E402  (the decode benchmark's probe: both tables use one measure)

from gptkit.quantize import Int4Linear, Int8Linear, PackedLinear  # noqa: E402


def shapes(layers: int, embd: int, vocab: int) -> list[tuple[int, int]]:
    """(out, in) of every weight matrix a GPT-2 decoding step reads, in order."""
    return [(3 * embd, embd), (embd, embd), (4 * embd, embd), (embd, 4 * embd)] * layers + [(vocab, embd)]


def kernels() -> dict[str, tuple[float, callable]]:
    """name -> (bytes per weight, make(weight) -> function of an fp32 activation row)."""
    def plain(dtype):
        def make(w):
            w = w.to(dtype)
            return lambda x: F.linear(x.to(dtype), w)
        return make

    def mv(w):
        w = w.bfloat16()
        return lambda x: torch.mv(w, x[0].bfloat16())

    def int8_fp32_activations(w):
        scale = w.abs().amax(1) / 127
        q = (w / scale[:, None]).round().to(torch.int8)
        return lambda x: torch._weight_int8pack_mm(x, q, scale)

    def fbgemm(w):
        scale = (w.abs().amax(1) / 127).double()
        q = torch.quantize_per_channel(w, scale, torch.zeros(len(w), dtype=torch.long), 0, torch.qint8)
        packed = torch.ops.quantized.linear_prepack(q, None)
        return lambda x: torch.ops.quantized.linear_dynamic(x, packed, True)

    def onednn_fp32(w):
        packed = torch.ops.mkldnn._reorder_linear_weight(w, 1)
        return lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")

    def mkl_fp32(w):
        packed = torch.ops.mkl._mkl_reorder_linear_weight(w, 1)
        return lambda x: torch.ops.mkl._mkl_linear(x, packed, w, None, 1)

    def module(cls):
        def make(w):
            return cls(w, None)  # a module is the function
        return make

    return {"fp32 F.linear": (4, plain(torch.float32)), "fp32 oneDNN packed": (4, onednn_fp32),
            "fp32 MKL packed": (4, mkl_fp32), "bf16 F.linear": (2, plain(torch.bfloat16)), "bf16 torch.mv": (2, mv),
            "bf16 oneDNN packed (gptkit)": (2, module(PackedLinear)),
            "int8 weight-only (gptkit)": (1, module(Int8Linear)),
            "int8 weight-only, fp32 activations": (1, int8_fp32_activations),
            "int8 FBGEMM dynamic": (1, fbgemm),
            "int4 weight-only, groups of 32 (gptkit)": (0.5, module(Int4Linear))}


def sweep(calls, rows: dict[int, torch.Tensor], in_sizes: list[int], repeats: int) -> float:
    """Seconds for the best of `repeats` sweeps through every matrix in order."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for call, k in zip(calls, in_sizes):
            call(rows[k])
        best = min(best, time.perf_counter() - start)
    return best


def fixed_cost(make, repeats: int = 2000) -> float:
    """Seconds for one call on a 64 x 64 matrix: what a kernel costs besides reading its weights."""
    call, x = make(torch.randn(64, 64)), torch.randn(1, 64)
    for _ in range(50):
        call(x)
    start = time.perf_counter()
    for _ in range(repeats):
        call(x)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--embd", type=int, default=768)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--smoke", action="store_true", help="a tiny run that only checks the script works")
    args = p.parse_args()
    if args.smoke:
        args.layers, args.embd, args.vocab, args.repeats = 1, 64, 256, 1
    torch.manual_seed(0)
    matrices = [torch.randn(n, k) * 0.02 for n, k in shapes(args.layers, args.embd, args.vocab)]
    in_sizes = [w.shape[1] for w in matrices]
    rows = {k: torch.randn(1, k) for k in set(in_sizes)}
    weights = sum(w.numel() for w in matrices)
    bw = bandwidth(2**20 if args.smoke else 256 * 2**20)
    print(f"# {len(matrices)} matrices, {weights / 1e6:.1f}M weights, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; read bandwidth (sum of 1 GB) {bw / 1e9:.1f} GB/s")
    print("| kernel | sweep ms | weights read GB/s | share of the bandwidth | fixed cost per call µs |")
    print("|---|---|---|---|---|")
    for name, (size, make) in kernels().items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                calls = [make(w) for w in matrices]
                seconds = sweep(calls, rows, in_sizes, args.repeats)
                cost = fixed_cost(make, 20 if args.smoke else 2000)
        except (RuntimeError, AttributeError) as e:  # a kernel this build or CPU does not have
            print(f"# {name}: left out ({str(e).splitlines()[0][:80]})", file=sys.stderr)
            continue
        del calls
        rate = weights * size / seconds
        print(f"| {name} | {seconds * 1e3:.2f} | {rate / 1e9:.1f} | {rate / bw:.0%} | {cost * 1e6:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
