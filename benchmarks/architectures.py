"""GPT-2's block against today's (Llama-style) block, and each ingredient alone, on character-level tiny Shakespeare.

    python benchmarks/architectures.py [--minutes 15] [--arms gpt2,modern,rope,...] [--data FILE] [key=value ...]

Every arm trains `benchmarks/shakespeare.py`'s recipe (4 x 128, context 128, batch
32, Muon, the same schedule shape) for the same wall-clock budget, one after the
other in this process, and is scored on the whole validation split. Each arm's step
count comes from a timing probe of that arm (all probes first, back to back), so a
slower block gets fewer steps, as it would in the budget; training then runs those
steps to the end, so a busy machine later on changes the wall time, not the result.
Parameter counts are matched to GPT-2's within 1% (rotary positions alone drop the
16k position embeddings): where grouped-query attention or dropping biases saves
weights, the MLP gets them back. The arms:

    gpt2     GPT-2's block: LayerNorm, GELU MLP, learned positions, multi-head attention, biases
    modern   RMSNorm + SwiGLU + RoPE + grouped-query attention (2 key/value heads for 4) + no biases
    rope     GPT-2's block with rotary positions instead of learned ones
    rmsnorm  ... with RMSNorm instead of LayerNorm
    swiglu   ... with a SwiGLU MLP (8/3 as wide, three matrices) instead of GELU
    gqa      ... with 2 key/value heads for 4 query heads (the MLP a little wider)
    qk_norm  ... with RMSNorm on each head's queries and keys
    nobias   ... without biases
    modern_qk_norm  the modern block with QK-norm too (Qwen3's)
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from shakespeare import DEFAULTS, _estimate_steps  # noqa: E402

from gptkit.config import RunConfig, load_config  # noqa: E402
from gptkit.data import PrepareConfig, prepare  # noqa: E402
from gptkit.data.clean import CleanConfig  # noqa: E402
from gptkit.model import param_count  # noqa: E402
from gptkit.tokenizer import Tokenizer  # noqa: E402
from gptkit.train import train  # noqa: E402
from gptkit.train.report import read_metrics  # noqa: E402

MODERN = ["model.norm=rmsnorm", "model.mlp=swiglu", "model.positions=rope", "model.n_kv_head=2",
          "model.intermediate_size=400", "model.bias=false"]
ARMS = {
    "gpt2": [],
    "modern": MODERN,
    "rope": ["model.positions=rope"],
    "rmsnorm": ["model.norm=rmsnorm"],
    "swiglu": ["model.mlp=swiglu", "model.intermediate_size=344"],  # three matrices of 344: as many weights
    "gqa": ["model.n_kv_head=2", "model.intermediate_size=576"],  # 4 * 128 + the 64 x 2 x 128 GQA saves
    "qk_norm": ["model.qk_norm=true"],
    "nobias": ["model.bias=false"],
    "modern_qk_norm": [*MODERN, "model.qk_norm=true"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"))
    p.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget of each arm")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-architectures"))
    p.add_argument("--smoke", action="store_true",
                   help="a tiny run that only checks the script works (seconds; its figures mean nothing)")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    steps = 0
    if args.smoke:
        import smoke

        work = smoke.workdir()
        args.data, args.out, steps = str(smoke.datasets(work) / "tinyshakespeare.txt"), str(work / "run"), 12
        args.overrides = [*smoke.TINY_MODEL, "model.n_embd=32", "model.block_size=16", "batch_size=2",
                          "eval_interval=6", *args.overrides]
        args.arms, args.minutes = "gpt2,modern", 0.01
    if not Path(args.data).is_file():
        sys.exit(f"{args.data} not found: pass --data (see shared/data/README.md)")
    out = Path(args.out)
    prepare([args.data], out / "data", PrepareConfig(tokenizer="char", val_fraction=0.1, split="tail",
                                                    clean=CleanConfig(dedup_exact=False, min_chars=0)))
    arms = args.arms.split(",")
    unknown = set(arms) - set(ARMS)
    if unknown:
        sys.exit(f"unknown arms {', '.join(sorted(unknown))}: choose from {', '.join(ARMS)}")
    # every arm's step count first, timed back to back under the same conditions, then the training runs
    budgets = {name: steps or _estimate_steps(_overrides(name, out, args.overrides), out / name, args.minutes)
               for name in arms}
    rows = [_run_arm(name, out, budgets[name], args.minutes, args.overrides) for name in arms]
    print(f"# tiny Shakespeare, char-level, {args.minutes} min per arm, val loss over the whole val split")
    print("| block | parameters | steps | tokens/s (probe) | val loss reached | best val loss |")
    print("|---|---|---|---|---|---|")
    for name, params, run_steps, speed, final, best in rows:
        print(f"| {name} | {params:,} | {run_steps} | {speed:,.0f} | {final:.4f} | {best:.4f} |")


def _overrides(name: str, out: Path, extra: list[str]) -> list[str]:
    return [*DEFAULTS, f"data={out / 'data'}", f"out_dir={out / name / 'train'}", *ARMS[name], *extra]


def _run_arm(name: str, out: Path, steps: int, minutes: float, extra: list[str]) -> tuple:
    """Train one arm for its steps; its speed is the probe's (the steps that fit the budget), not this run's."""
    shutil.rmtree(out / name / "train", ignore_errors=True)
    arm_dir = out / name
    run = load_config(RunConfig, None, [*_overrides(name, out, extra), f"max_steps={steps}"])
    start = time.perf_counter()
    train(run)
    wall = time.perf_counter() - start
    evals = [r for r in read_metrics(arm_dir / "train" / "metrics.jsonl") if "val_loss" in r]
    tokens = steps * run.train.batch_size * run.model.block_size
    print(f"{name}: {steps} steps in {wall / 60:.1f} min, val loss {evals[-1]['val_loss']:.4f}", flush=True)
    vocab = Tokenizer.load(out / "data" / "tokenizer.json").vocab_size  # the model takes the data's vocabulary
    params = param_count(dataclasses.replace(run.model, vocab_size=vocab))
    return name, params, steps, tokens / (minutes * 60), evals[-1]["val_loss"], \
        min(r["val_loss"] for r in evals)


if __name__ == "__main__":
    main()
