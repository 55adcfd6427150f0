"""Progressive training against fixed-size training of the same target model, for the same wall-clock budget.

    python benchmarks/growth.py [--tasks shakespeare,wikitext] [--minutes 15,5] [--arms fixed,grow]
                                [--short 0.7] [--evals 16] [--out runs/bench-growth] [key=value ...]

Each task trains its target model twice in this one invocation, one arm after the
other: `fixed` at the target shape from step 0, and `grow` on the growth preset's
schedule (gptkit/configs/*-grow.toml), which ends at the target shape. key=value
overrides apply to the growth arm (e.g. `grow=[{at = 0.3, n_layer = 8}]`,
model.n_layer=4, grow_method=identity); the fixed arm is always the growth arm's
last shape without growth. Each arm's step count is set from timed probes of
every shape, so its learning-rate schedule ends with the budget.

Tasks: tiny Shakespeare, char-level (nanoGPT's split: the last 10% validates), and
WikiText-2's valid.txt with a 4,096-token BPE, split 90/10 the same way. Val loss
is over the whole val split, against training time (evaluations excluded).
Prints each arm's final val loss and the time each arm needs to reach the fixed
arm's final val loss (interpolated between evaluations), and writes a PNG. A
cosine schedule anneals only at its end, so mid-run points of a longer run are
pessimistic: `--short 0.7` also trains the growth arm on 70% of the budget, which
measures directly whether growth gets there in 70% of the time.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from gptkit.config import RunConfig, load_config  # noqa: E402
from gptkit.data import PrepareConfig, prepare  # noqa: E402
from gptkit.data.clean import CleanConfig  # noqa: E402
from gptkit.train import train  # noqa: E402
from gptkit.train.report import read_metrics  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RAW = CleanConfig(dedup_exact=False, min_chars=0)  # the text as it is: a benchmark split, not a cleaned corpus
TASKS = {  # name: (corpus under --data, how to prepare it, growth preset)
    "shakespeare": (Path("tinyshakespeare.txt"), PrepareConfig(tokenizer="char", val_fraction=0.1, split="tail",
                                                                clean=RAW), "shakespeare-char-grow"),
    "wikitext": (Path("wikitext-2") / "valid.txt",
                 PrepareConfig(vocab_size=4096, val_fraction=0.1, split="tail", clean=RAW), "wikitext-grow"),
}
BENCH = ["device=cpu", "eval_batches=0", "checkpoint_interval=1000000", "log_interval=25", "sample_tokens=0"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="shakespeare,wikitext")
    p.add_argument("--minutes", default="15,5", help="training budget per arm, one per task (or one for all)")
    p.add_argument("--arms", default="fixed,grow")
    p.add_argument("--short", type=float, default=0.0,
                   help="also train the growth schedule on this share of the budget (e.g. 0.7), its lr annealed by "
                        "then: does growth reach the fixed arm's final val loss in that share of the time?")
    p.add_argument("--evals", type=int, default=16, help="evaluations per arm, evenly spaced (and one at the end)")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-growth"))
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--smoke", action="store_true",
                   help="a tiny run that only checks the script works (seconds; its figures mean nothing)")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    if args.smoke:
        import smoke

        work = smoke.workdir()
        args.data, args.out, args.tasks, args.minutes, args.evals = str(smoke.datasets(work)), str(work), \
            "shakespeare", "0.02", 2
        args.overrides = [*smoke.TINY_MODEL, "model.block_size=16", "batch_size=2", "grow=[{at=0.5,n_layer=2}]",
                          *args.overrides]
    tasks, arms = args.tasks.split(","), args.arms.split(",")
    minutes = [float(m) for m in args.minutes.split(",")]
    for task, budget in zip(tasks, minutes * len(tasks) if len(minutes) == 1 else minutes):
        corpus, prep, preset = TASKS[task]
        corpus = Path(args.data) / corpus
        if not corpus.is_file():
            sys.exit(f"{corpus} not found (see shared/data/README.md)")
        out = Path(args.out) / task
        if not (out / "data" / "manifest.json").is_file():
            prepare([str(corpus)], out / "data", prep)
        common = [*BENCH, f"data={out / 'data'}", f"max_minutes={budget}"]
        grow = load_config(RunConfig, preset, [*common, *args.overrides])
        fixed = dataclasses.replace(grow, model=grow.shapes()[-1], train=dataclasses.replace(grow.train, grow=()))
        curves = {arm: _run_arm(arm, fixed if arm == "fixed" else grow, out / arm, budget, args.evals)
                  for arm in arms}
        if args.short:
            curves[f"grow, {args.short:.0%} budget"] = _run_arm("grow-short", grow, out / "grow-short",
                                                                  budget * args.short, args.evals)
        _print(task, budget, grow, curves)
        _plot(out / f"growth-{task}.png", task, curves)


def _run_arm(arm: str, run: RunConfig, out_dir: Path, minutes: float, evals: int) -> dict:
    """Train one arm with a step count that fills `minutes`; its val curve and growth events."""
    shutil.rmtree(out_dir, ignore_errors=True)
    steps = _steps_for(run, out_dir.parent / "probe", minutes)
    print(f"# {arm}: {_describe(run)}, {steps} steps", flush=True)
    train_cfg = dataclasses.replace(run.train, max_steps=steps, out_dir=str(out_dir),
                                    eval_interval=max(1, steps // evals))
    train(dataclasses.replace(run, train=train_cfg))
    return {**_curve(out_dir), "steps": steps, "describe": _describe(run)}


def _curve(out_dir: Path) -> dict:
    """An arm's evaluations (training seconds, val loss) and growth events (seconds, new shape)."""
    records = read_metrics(out_dir / "metrics.jsonl")
    return {"evals": [(r["elapsed"], r["val_loss"]) for r in records if "val_loss" in r],
            "growth": [(r["elapsed"], f"{r['n_layer']}x{r['n_embd']}") for r in records if "grow_stage" in r]}


_STEP_SECONDS: dict = {}  # model shape -> seconds per training step, measured once per invocation


def _steps_for(run: RunConfig, probe_dir: Path, minutes: float) -> int:
    """The step count whose stages, at each shape's measured step time, add up to 95% of the budget
    (max_minutes stops the run if the machine slows down)."""
    seconds = [_step_seconds(run, shape, probe_dir) for shape in run.shapes()]

    def duration(steps: int) -> float:
        starts = [0, *(stage.step(steps) for stage in run.train.grow), steps]
        return sum((end - start) * s for start, end, s in zip(starts, starts[1:], seconds))

    low, high = 100, 10_000_000
    while low < high:  # the largest step count that fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if duration(mid) <= 0.95 * minutes * 60 else (low, mid - 1)
    return low


def _step_seconds(run: RunConfig, shape, probe_dir: Path) -> float:
    """Time steps 20-60 of a short fixed-size run (after warm-up)."""
    if shape not in _STEP_SECONDS:
        shutil.rmtree(probe_dir, ignore_errors=True)
        cfg = dataclasses.replace(run.train, grow=(), max_steps=60, log_interval=20, eval_interval=1000,
                                  eval_batches=1, max_minutes=0, out_dir=str(probe_dir))
        train(RunConfig(model=shape, train=cfg))
        elapsed = {r["step"]: r["elapsed"] for r in read_metrics(probe_dir / "metrics.jsonl") if "loss" in r}
        _STEP_SECONDS[shape] = (elapsed[60] - elapsed[20]) / 40
        shutil.rmtree(probe_dir, ignore_errors=True)
    return _STEP_SECONDS[shape]


def _describe(run: RunConfig) -> str:
    shapes = run.shapes()
    text = " -> ".join(f"{s.n_layer}x{s.n_embd}" for s in shapes)
    if run.train.grow:
        stages = ", ".join(str(stage.at) for stage in run.train.grow)
        text += f" ({run.train.grow_method}/{run.train.grow_order}, at {stages}, optimizer {run.train.grow_optimizer}" \
                + (f", re-warmup {run.train.grow_warmup_steps}" if run.train.grow_warmup_steps else "") + ")"
    return text


def _time_to(evals: list[tuple[float, float]], target: float) -> float | None:
    """Training seconds at which val loss first reaches `target`, interpolated between evaluations."""
    for (t0, v0), (t1, v1) in zip([(0.0, float("inf")), *evals], evals):
        if v1 <= target:
            return t1 if v0 == float("inf") else t0 + (t1 - t0) * (v0 - target) / (v0 - v1)
    return None


def _print(task: str, minutes: float, run: RunConfig, curves: dict) -> None:
    m = run.shapes()[-1]
    print(f"\n## {task}: target {m.n_layer}x{m.n_embd} (context {m.block_size}, vocab {m.vocab_size}), "
          f"{minutes:g} min of training per arm, val loss on the whole val split")
    target = curves["fixed"]["evals"][-1][1] if "fixed" in curves else None
    fixed_time = curves["fixed"]["evals"][-1][0] if "fixed" in curves else None
    print("| arm | model | steps | final val loss | training time | time to the fixed arm's final val loss |")
    print("|---|---|---|---|---|---|")
    for arm, c in curves.items():
        elapsed, final = c["evals"][-1]
        reach = _time_to(c["evals"], target) if target is not None else None
        share = f" ({100 * reach / fixed_time:.0f}%)" if reach is not None else ""
        reached = f"{reach:.0f} s{share}" if reach is not None else "not reached" if target else "n/a"
        print(f"| {arm} | {c['describe']} | {c['steps']:,} | {final:.4f} | {elapsed:.0f} s | {reached} |")
    for arm, c in curves.items():
        print(f"{arm} curve (s, val loss): " + ", ".join(f"({t:.0f}, {v:.3f})" for t, v in c["evals"]))


def _plot(path: Path, task: str, curves: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (arm, c) in enumerate(curves.items()):
        times, losses = zip(*c["evals"])
        line, = ax.plot([t / 60 for t in times], losses, marker="o", markersize=3, label=f"{arm}: {c['describe']}")
        for t, shape in c["growth"]:
            ax.axvline(t / 60, color=line.get_color(), linestyle="--", linewidth=0.8)
            ax.annotate(shape, (t / 60, 1), xycoords=("data", "axes fraction"), xytext=(3, -12 - 10 * i),
                        textcoords="offset points", fontsize=8, color=line.get_color())
    finals = [c["evals"][-1][1] for c in curves.values()]
    ax.set_ylim(min(finals) - 0.05, min(finals) + 1.0)
    ax.set_xlabel("training time (min; evaluations excluded)")
    ax.set_ylabel("val loss (nats/token)")
    ax.set_title(f"{task}: fixed-size vs progressive training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
