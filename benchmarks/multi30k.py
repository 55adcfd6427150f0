"""English->German translation on Multi30k: gptkit's fine-tuning against a transformers baseline, same budget.

    python benchmarks/multi30k.py [--minutes 20] [--parallel] [--beams 1,4] [--arms gptkit,baseline]
                                  [--data ../shared/data/multi30k] [--out runs/bench-multi30k] [key=value ...]
    python benchmarks/multi30k.py --base runs/smollm2 --arms pretrained,peft,zeroshot --parallel --beams 1

Both arms train a decoder-only model of the same shape from scratch on the same
tokenized examples (the 29,000 train pairs, an 8k byte-level BPE trained on them,
"English: {source}\\nGerman: {target}<eot>", loss on the target only) for the same
wall-clock budget, select on `val`, and translate `test_2016_flickr` greedily
(and with beam search for gptkit); sacreBLEU BLEU and chrF are printed with the
signature.

- gptkit: `gptkit finetune` with the multi30k-en-de preset (key=value overrides apply):
  packed rows, the LM head on target positions only, Muon, checkpoint kept by val BLEU.
- baseline: transformers' GPT2LMHeadModel of the same shape and dropout, a plain
  loop (BaselineRecipe): 32 examples per step, each padded to the batch's longest,
  labels -100 on the prompt, AdamW at 2e-3 with a cosine schedule, bf16 autocast
  where the CPU is fast at it, checkpoint kept by val BLEU as gptkit's is; greedy
  `generate` with left padding.

From a pretrained base (--base, e.g. SmolLM2-135M-Instruct from `gptkit import-gguf`), the
same examples in the base's own tokenizer, one pair per row (32 a step), loss on the target:

- pretrained: gptkit's LoRA fine-tune of the base (PAIRS: rank 16 on all seven
  projections, AdamW at 1e-3), kept by val BLEU.
- peft: the same base in transformers with PEFT LoRA, the same recipe, a plain loop.
- zeroshot: the instruct model as it is, asked through its chat template to translate.

Each arm's step count comes from timing its first steps, so its schedule ends with
the budget. --parallel runs the two arms at once, one core each (the same
conditions for both on a 2-core machine); otherwise one after the other with all cores.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from arms import PlainLoop, arm_parser, run_arms, run_own_arm, smoke_settings
from pretrained import LoraRecipe, gptkit_overrides, peft_model, zero_shot

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "multi30k"
EVALS = 12  # evaluations per from-scratch arm (val loss and val BLEU), evenly spaced
PRETRAINED_EVALS = 3  # per pretrained-base arm (each decodes 200 sentences with the larger model)
PAIRS = LoraRecipe(batch_size=32, max_length=160)  # a pair is at most about 120 of SmolLM2's tokens
FROM_SCRATCH = ("gptkit", "baseline")


@dataclass(frozen=True)
class BaselineRecipe:
    """The plain loop's settings: a common small-model recipe (AdamW at 2e-3 beat 1e-3 per step here)."""

    batch_size: int = 32  # examples per step, each padded to the longest in the batch
    lr: float = 2e-3
    min_lr: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1337


def main() -> None:
    p = arm_parser(__doc__, 20.0, DATA, ROOT / "runs" / "bench-multi30k")
    p.add_argument("--beams", default="1,4", help="beam widths to translate test with (gptkit arm)")
    p.add_argument("--base", help="a pretrained gptkit checkpoint for the pretrained, peft and zeroshot arms")
    args = p.parse_args()
    smoke_settings(args, "multi30k")
    if args.smoke and not args.arm:
        import smoke

        args.overrides.append("max_new_tokens=16")
        args.base, args.arms = str(smoke.tiny_base(Path(args.out).parent)), "gptkit,baseline,pretrained,peft,zeroshot"
    if set(args.arms.split(",")) - set(FROM_SCRATCH) and not args.base:
        sys.exit("the pretrained, peft and zeroshot arms need --base CHECKPOINT (e.g. from gptkit import-gguf)")
    data = Path(args.data)
    if not (data / "train.en.gz").is_file():
        sys.exit(f"skipped: Multi30k not found at {data} (see ../shared/data/README.md)")
    out = Path(args.out)
    if run_own_arm(args, out, {"gptkit": lambda: _gptkit_arm(args, data, out / args.arm),
                                "baseline": lambda: _baseline_arm(args, data, out / args.arm),
                                "pretrained": lambda: _gptkit_arm(args, data, out / args.arm, _pretrained(args)),
                                "peft": lambda: _peft_arm(args, data, out / args.arm),
                                "zeroshot": lambda: _zeroshot_arm(args, data)}):
        return
    out.mkdir(parents=True, exist_ok=True)
    arms = args.arms.split(",")
    if set(arms) & set(FROM_SCRATCH):
        _shared_tokenizer(data, out)
    run_arms(__file__, arms, args.parallel, ["--minutes", str(args.minutes), "--beams", args.beams, "--data", str(data),
                                             "--out", str(out), *(["--base", args.base] if args.base else []),
                                             *args.overrides], args.smoke)
    results = [json.loads((out / f"{arm}.json").read_text()) for arm in arms]
    _print_table(results, args)
    _plot(results, out / "multi30k-bleu.png", args)


def _shared_tokenizer(data: Path, out: Path) -> None:
    """One 8k byte-level BPE on the training pairs (as rendered for training), for both arms."""
    from gptkit.config import TaskConfig
    from gptkit.data import Task, read_records
    from gptkit.tokenizer import Tokenizer

    task, records, _ = read_records(data / "train.{lang}.gz", Task.from_config(TaskConfig(format="translation")))
    texts = (t for r in records for t in (task.prompt(r), task.reference(r)))
    Tokenizer.train_bpe(texts, 8192).save(out / "tokenizer.json")


def _config(args, out: Path, max_steps: int, data: Path, extra: list[str] = (), evals: int = EVALS):
    from gptkit.config import FinetuneConfig, load_config

    pretrained = any(o.startswith("init=") for o in extra)  # the base brings its own tokenizer and shape
    settings = [f"data={data}/train.{{lang}}.gz", f"val_data={data}/val.{{lang}}.gz", f"out_dir={out}",
                *([] if pretrained else [f"tokenizer={out.parent / 'tokenizer.json'}"]), f"max_steps={max_steps}",
                "device=cpu", f"eval_interval={max(1, max_steps // evals)}", f"checkpoint_interval={max_steps}",
                f"log_interval={2 if pretrained else 25}", "warmup_steps=" + str(min(100, max_steps // 10))]
    overrides = [o for o in args.overrides if not (pretrained and o.startswith("model."))]
    return load_config(FinetuneConfig, "multi30k-en-de", settings + overrides + list(extra))


def _pretrained(args) -> list[str]:
    """The gptkit arm's settings for the LoRA fine-tune of --base: one pair per row, as the peft arm's."""
    return [*gptkit_overrides(Path(args.base), PAIRS), "pack=false"]


def _gptkit_arm(args, data: Path, out: Path, pretrained: list[str] = ()) -> dict:
    """gptkit finetune for the budget: from scratch, or with `pretrained` settings (a base, fewer evaluations)."""
    import shutil

    import torch

    from gptkit.checkpoint import load_checkpoint
    from gptkit.data import Task, read_records
    from gptkit.eval.tasks import predict, score
    from gptkit.generate import Decoding
    from gptkit.train import finetune
    from gptkit.train.report import read_metrics

    extra, evals, probe_steps = (pretrained, PRETRAINED_EVALS, 8) if pretrained else ([], EVALS, 40)
    probe = out.with_name(f"{out.name}-probe")
    shutil.rmtree(probe, ignore_errors=True)
    # a pretrained base's probe evaluates once, on a few sentences: its evaluations are slow
    finetune(_config(args, probe, probe_steps, data, [*extra, "select_examples=20"], 1) if pretrained else
             _config(args, probe, probe_steps, data))
    rows = [r for r in read_metrics(probe / "metrics.jsonl") if "tokens_per_s" in r]
    seconds_per_step = (rows[-1]["elapsed"] - rows[0]["elapsed"]) / (rows[-1]["step"] - rows[0]["step"])
    max_steps = max(probe_steps, int(args.minutes * 60 / seconds_per_step))
    shutil.rmtree(out, ignore_errors=True)
    config = _config(args, out, max_steps, data, extra, evals)
    start = time.perf_counter()
    best = finetune(config)
    train_seconds = time.perf_counter() - start
    ckpt = load_checkpoint(best)
    task = Task.from_dict(ckpt.meta["task"])
    _, test, _ = read_records(data / "test_2016_flickr.{lang}.gz", task)
    history = [{"minutes": r["elapsed"] / 60, "val_loss": r["val_loss"], "val_bleu": r["val_bleu"]}
               for r in read_metrics(out / "metrics.jsonl") if "val_bleu" in r]
    result = {"arm": out.name, "params": ckpt.model.num_params(), "steps": max_steps, "train_seconds": train_seconds,
              "training_minutes": history[-1]["minutes"], "history": history, "scores": {}}
    model = ckpt.model.eval()
    for beams in (int(b) for b in args.beams.split(",")):
        start = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=config.train.dtype != "fp32"):
            decoding = Decoding(config.task.max_new_tokens, temperature=0, num_beams=beams)
            predictions = predict(model, ckpt.tokenizer, task, test, decoding)
        scores = score(task, predictions, test)
        result["scores"][f"beam {beams}" if beams > 1 else "greedy"] = {
            "bleu": scores["bleu"].score, "chrf": scores["chrf"].score, "signature": scores["bleu"].signature,
            "decode_seconds": time.perf_counter() - start}
    return result


def _baseline_arm(args, data: Path, out: Path) -> dict:
    """transformers' GPT2LMHeadModel, trained by a plain loop on the same examples."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from gptkit.tokenizer import Tokenizer

    m, t = _config(args, out, 1, data).model, BaselineRecipe()
    tokenizer = Tokenizer.load(out.parent / "tokenizer.json")
    torch.manual_seed(t.seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=m.block_size, n_embd=m.n_embd,
                                       n_layer=m.n_layer, n_head=m.n_head, resid_pdrop=m.dropout, embd_pdrop=m.dropout,
                                       attn_pdrop=m.dropout, bos_token_id=tokenizer.eot_id,
                                       eos_token_id=tokenizer.eot_id))
    loop = PlainLoop(model, t.lr, t.min_lr, (t.beta1, t.beta2), t.weight_decay, t.grad_clip)
    return _plain_arm("baseline", args, data, out, model, tokenizer, loop, t, EVALS, m.block_size, probe_steps=40)


def _plain_arm(arm: str, args, data: Path, out: Path, model, tokenizer, loop, recipe, evals: int,
               block_size: int = 0, probe_steps: int = 8) -> dict:
    """A transformers model trained by `loop` for the budget, `recipe.batch_size` padded examples a step,
    kept by val BLEU on the first select_examples val sentences (as gptkit's), greedy on test."""
    import numpy as np

    from gptkit.config import TaskConfig
    from gptkit.data import Task, read_records
    from gptkit.eval.metrics import bleu

    cfg = _config(args, out, 1, data)
    block_size = block_size or recipe.max_length
    task = Task.from_config(TaskConfig(format="translation"))
    _, train_records, _ = read_records(data / "train.{lang}.gz", task)
    _, val_records, _ = read_records(data / "val.{lang}.gz", task)
    _, test, _ = read_records(data / "test_2016_flickr.{lang}.gz", task)
    train_examples = task.examples(train_records, tokenizer, block_size)
    val_examples = task.examples(val_records, tokenizer, block_size)
    rng = np.random.default_rng(recipe.seed)

    def batches():
        while True:
            order = rng.permutation(len(train_examples))
            for start in range(0, len(order) - recipe.batch_size + 1, recipe.batch_size):
                yield _padded([train_examples[i] for i in order[start : start + recipe.batch_size]])

    stream, dtype = batches(), loop.dtype
    seconds_per_step, train_seconds = loop.probe(stream, probe_steps, skip=probe_steps // 4)  # kernels warm up
    max_steps = max(2 * probe_steps, int(args.minutes * 60 / seconds_per_step))
    steps = max_steps - probe_steps  # the schedule proper, after the probe's low-lr steps
    warmup, best_bleu, best_state = min(100, steps // 10), -1.0, None
    scored = val_records[: cfg.task.select_examples]
    history = []
    for i in range(steps):
        start = time.perf_counter()
        loop.step(next(stream), loop.lr_at(i, steps, warmup))
        train_seconds += time.perf_counter() - start
        if (i + 1) % max(1, steps // evals) == 0 or i + 1 == steps:  # the same selection as gptkit's
            predictions = _hf_greedy(model, tokenizer, task, scored, cfg.task.max_new_tokens, dtype)
            val_bleu = bleu(predictions, [[task.reference(r) for r in scored]]).score
            history.append({"minutes": train_seconds / 60, "val_loss": _val_loss(model, val_examples, dtype),
                            "val_bleu": val_bleu})
            if val_bleu > best_bleu:
                best_bleu, best_state = val_bleu, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    start = time.perf_counter()
    predictions = _hf_greedy(model, tokenizer, task, test, cfg.task.max_new_tokens, dtype)
    return {"arm": arm, "params": sum(p.numel() for p in model.parameters()), "steps": max_steps,
            "train_seconds": train_seconds, "training_minutes": train_seconds / 60, "history": history,
            "scores": {"greedy": _scores(task, predictions, test, start)}}


def _peft_arm(args, data: Path, out: Path) -> dict:
    """The base with transformers + PEFT LoRA adapters: the pretrained arm's recipe, a plain loop."""
    t = PAIRS
    model, tokenizer, _ = peft_model(Path(args.base), out, t)
    loop = PlainLoop(model, t.lr, t.min_lr, (0.9, 0.95), t.weight_decay, t.grad_clip)
    return _plain_arm("peft", args, data, out, model, tokenizer, loop, t, PRETRAINED_EVALS)


def _zeroshot_arm(args, data: Path) -> dict:
    """The instruct model as it is, asked through its chat template for the German translation."""
    from gptkit.checkpoint import inspect_checkpoint
    from gptkit.config import TaskConfig
    from gptkit.data import Task, read_records

    task = Task.from_config(TaskConfig(format="translation"))
    _, test, _ = read_records(data / "test_2016_flickr.{lang}.gz", task)
    prompts = [f"Translate this English sentence into German. Reply with the German sentence only.\n\n"
               f"{r.fields['source']}" for r in test]
    start = time.perf_counter()
    predictions = [p.splitlines()[0].strip() if p else p for p in zero_shot(Path(args.base), prompts, 80)]
    return {"arm": "zeroshot", "params": inspect_checkpoint(args.base)[2], "steps": 0, "training_minutes": 0.0,
            "history": [], "scores": {"greedy": _scores(task, predictions, test, start)}}


def _scores(task, predictions: list[str], test, start: float) -> dict:
    from gptkit.eval.metrics import bleu, chrf

    refs = [[task.reference(r) for r in test]]
    b, c = bleu(predictions, refs), chrf(predictions, refs)
    return {"bleu": b.score, "chrf": c.score, "signature": b.signature, "decode_seconds": time.perf_counter() - start}


def _padded(examples) -> dict:
    import torch

    width = max(len(e.ids) for e in examples)
    ids = torch.zeros(len(examples), width, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros(len(examples), width, dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        labels[row, : len(e.ids)] = torch.tensor([i if target else -100 for i, target in zip(e.ids, e.targets)])
        mask[row, : len(e.ids)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _val_loss(model, examples, dtype) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), torch.autocast("cpu", dtype, enabled=dtype != torch.float32):
        for start in range(0, len(examples), 64):
            batch = _padded(examples[start : start + 64])
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += model(**batch).loss.item() * n
            count += n
    model.train()
    return total / count


def _hf_greedy(model, tokenizer, task, records, max_new_tokens: int, dtype) -> list[str]:
    import torch

    model.eval()
    predictions = []
    with torch.no_grad(), torch.autocast("cpu", dtype, enabled=dtype != torch.float32):
        for start in range(0, len(records), 32):
            window = getattr(model.config, "n_positions", None) or model.config.max_position_embeddings
            budget = window - max_new_tokens  # a long source is cut, as gptkit's predict cuts it
            prompts = [tokenizer.encode(task.prompt(r, tokenizer, budget)) for r in records[start : start + 32]]
            width = max(len(p) for p in prompts)
            ids = torch.tensor([[tokenizer.eot_id] * (width - len(p)) + p for p in prompts])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.eot_id, eos_token_id=tokenizer.eot_id)
            for row in out[:, width:].tolist():
                predictions.append(tokenizer.decode([i for i in row if i != tokenizer.eot_id]).strip())
    return predictions


def _print_table(results: list[dict], args) -> None:
    print(f"\nMulti30k en->de, test_2016_flickr (1,000 sentences), {args.minutes:g} min of training per arm"
          f"{' (arms in parallel, one core each)' if args.parallel else ''}")
    print(f"{'arm':<10} {'params':>10} {'steps':>7} {'train min':>9} {'decode':>8} {'BLEU':>6} {'chrF':>6}")
    for r in results:
        for name, s in r["scores"].items():
            print(f"{r['arm'] + ' ' + name:<18} {r['params']:>10,} {r['steps']:>7,} {r['training_minutes']:>9.1f} "
                  f"{s['decode_seconds']:>7.0f}s {s['bleu']:>6.2f} {s['chrf']:>6.2f}")
    print("signature:", results[0]["scores"]["greedy"]["signature"])


def _plot(results: list[dict], path: Path, args) -> None:
    """Val BLEU against training time for each arm, and each arm's test BLEU (greedy) at its end."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(install matplotlib for the plot)")
        return
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for r in (r for r in results if r["history"]):
        line, = ax.plot([h["minutes"] for h in r["history"]], [h["val_bleu"] for h in r["history"]], marker=".",
                        label=f"{r['arm']}: val (first 200)")
        ax.scatter([r["training_minutes"]], [r["scores"]["greedy"]["bleu"]], color=line.get_color(), marker="*",
                   s=120, label=f"{r['arm']}: test_2016_flickr, greedy", zorder=3)
    ax.set_xlabel("training minutes (wall clock; evaluations excluded)")
    ax.set_ylabel("sacreBLEU")
    ax.set_title(f"Multi30k en->de: each arm's steps for {args.minutes:g} min at its timed speed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
