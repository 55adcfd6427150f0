"""Extractive QA on SQuAD v1.1 data, scored on XQuAD-en: gptkit against a transformers baseline, same budget.

    python benchmarks/squad.py [--minutes 60] [--pretrain 0.4] [--parallel] [--arms gptkit,baseline]
                               [--data ../shared/data] [--out runs/bench-squad] [key=value ...]
    python benchmarks/squad.py --base runs/smollm2 --arms pretrained,transformers,zeroshot --parallel

Both arms train a 4-layer, 256-wide GPT-2 from scratch within the same wall-clock
budget, read each context in the same windows (question first, then up to 256
tokens of context, windows sharing 128 tokens, gptkit.data.qa), keep the checkpoint
with the best F1 on 300 held-out training questions, and are scored on XQuAD-en
(1,190 questions) with the SQuAD v1.1 metric, answers picked by the same best-span
search (at most 30 tokens).

- gptkit: `--pretrain` of the budget is language-model pretraining (`gptkit train`)
  on the training contexts and WikiText-2 valid; the rest `gptkit finetune --config squad-qa`:
  a span head, start/end loss over the context positions only, Muon. key=value
  settings apply to the fine-tuning.
- baseline: transformers' GPT2ForQuestionAnswering of the same shape and dropout,
  trained on the QA windows alone by a plain loop: AdamW with a cosine schedule,
  16 windows per step, bf16 autocast where the CPU is fast at it.

From a pretrained base (--base, e.g. SmolLM2-135M-Instruct from `gptkit import-gguf`):

- pretrained: `gptkit finetune --config squad-qa` from the base, every weight and a new
  span head trained (pretrained.FullRecipe: AdamW, 16 windows of at most 384 tokens a step).
- transformers: the same base as transformers' AutoModelForQuestionAnswering (through
  gptkit's export), the same windows and recipe, a plain loop.
- zeroshot: the instruct model as it is, asked through its chat template for a short
  answer copied from the context (no training).

The from-scratch arms share one 8k byte-level BPE trained on the pretraining text. Each arm's
step counts come from timing its first steps. --parallel runs the arms at once, one
core each; otherwise one after the other with all cores.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import time
from pathlib import Path

import smoke
from arms import PlainLoop, arm_parser, run_arms, run_own_arm, smoke_settings
from pretrained import FullRecipe, gptkit_full_overrides, hf_directory, zero_shot

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
EVALS = 8  # evaluations (val F1) per from-scratch arm
PRETRAINED_EVALS = 2  # per pretrained-base arm (each is as slow as tens of steps)
FROM_SCRATCH = ("gptkit", "baseline")
SHAPE = ["model.n_layer=4", "model.n_head=4", "model.n_embd=256", "model.block_size=256", "model.dropout=0.1",
         "model.attn_dropout=0"]  # the squad-qa preset's
BATCH = 16  # windows (or pretraining rows) per step: a 1-core CPU does about one such step a second
PROBE_STEPS = 12
VAL_QUESTIONS = 300


def main() -> None:
    p = arm_parser(__doc__, 60.0, DATA, ROOT / "runs" / "bench-squad")
    p.add_argument("--pretrain", type=float, default=0.4, help="gptkit arm: share of the budget for pretraining")
    p.add_argument("--base", help="a pretrained gptkit checkpoint for the pretrained, transformers and zeroshot arms")
    args = p.parse_args()
    smoke_settings(args)
    if args.smoke:
        _smoke_constants(args)
        if not args.arm:
            args.base, args.arms = str(smoke.tiny_base(Path(args.out).parent)), ",".join(
                [*FROM_SCRATCH, "pretrained", "transformers", "zeroshot"])
    if set(args.arms.split(",")) - set(FROM_SCRATCH) and not args.base:
        sys.exit("the pretrained, transformers and zeroshot arms need --base CHECKPOINT (e.g. from gptkit import-gguf)")
    data = Path(args.data)
    if not (data / "squad" / "train.json.gz").is_file():
        sys.exit(f"skipped: SQuAD data not found at {data}/squad (see ../shared/data/README.md)")
    out = Path(args.out)
    if run_own_arm(args, out, {"gptkit": lambda: _gptkit_arm(args, data, out),
                                "baseline": lambda: _baseline_arm(args, data, out),
                                "pretrained": lambda: _pretrained_arm(args, data, out),
                                "transformers": lambda: _transformers_arm(args, data, out),
                                "zeroshot": lambda: _zeroshot_arm(args, data)}):
        return
    out.mkdir(parents=True, exist_ok=True)
    arms = args.arms.split(",")
    if set(arms) & set(FROM_SCRATCH):
        _pretraining_data(data, out)
    run_arms(__file__, arms, args.parallel, ["--minutes", str(args.minutes), "--pretrain", str(args.pretrain),
               "--data", str(data), "--out", str(out), *(["--base", args.base] if args.base else []),
               *args.overrides], args.smoke)
    _print_table([json.loads((out / f"{arm}.json").read_text()) for arm in arms], args)


def _smoke_constants(args) -> None:
    """The tiny shape and counts of a --smoke run (in the parent and in each arm)."""
    global SHAPE, BATCH, PROBE_STEPS, VAL_QUESTIONS
    SHAPE, BATCH, PROBE_STEPS, VAL_QUESTIONS = [*smoke.TINY_MODEL, "model.block_size=128"], 4, 6, 10
    if not args.arm:
        args.overrides += ["model.block_size=128", "batch_size=4", "val_examples=10", "select_examples=10"]


def _pretraining_data(data: Path, out: Path) -> None:
    """The training contexts (each once) and WikiText-2 valid, tokenized with an 8k BPE trained on them."""
    from gptkit.data import PrepareConfig, prepare

    squad = json.loads(gzip.open(data / "squad" / "train.json.gz", "rt", encoding="utf-8").read())
    contexts = [p["context"] for article in squad["data"] for p in article["paragraphs"]]
    corpus = out / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "contexts.txt").write_text("\n\n".join(contexts) + "\n", encoding="utf-8")
    shutil.copy(data / "wikitext-2" / "valid.txt", corpus / "wikitext-2-valid.txt")
    prepare([str(corpus)], out / "lm-data", PrepareConfig(vocab_size=8192, val_fraction=0.02))


def _steps(minutes: float, probe) -> int:
    """Steps that fill `minutes`, from the seconds per step of a short probe run."""
    seconds_per_step = probe()
    return max(50, int(minutes * 60 / seconds_per_step))


def _probe_seconds(out: Path) -> float:
    from gptkit.train.report import read_metrics

    rows = [r for r in read_metrics(out / "metrics.jsonl") if "tokens_per_s" in r]
    return (rows[-1]["elapsed"] - rows[0]["elapsed"]) / (rows[-1]["step"] - rows[0]["step"])


def _pretrain_config(out: Path, data_dir: Path, max_steps: int):
    from gptkit.config import RunConfig, load_config

    return load_config(RunConfig, None, [
        *SHAPE, f"data={data_dir}", f"out_dir={out}", f"max_steps={max_steps}", f"batch_size={BATCH}",
        "optimizer=muon", "lr=2e-3", "min_lr=2e-4", "muon_lr=0.02", f"warmup_steps={min(100, max_steps // 10)}",
        "device=cpu", f"eval_interval={_eval_interval(max_steps, 4)}", f"checkpoint_interval={max_steps}",
        "log_interval=2", "sample_tokens=0", "eval_batches=10"])


def _eval_interval(max_steps: int, evals: int = EVALS) -> int:
    """Steps between evaluations: `evals` in a run, one at the end of a timing probe."""
    return max_steps if max_steps <= PROBE_STEPS else max(1, max_steps // evals)


def _finetune_config(args, out: Path, init: Path | str, data: Path, max_steps: int, extra: list[str] = (),
                     evals: int = EVALS):
    """The squad-qa preset (4 x 256 with a span head, 16 windows a step, Muon, kept by val F1 on 300 questions);
    `extra` settings after it (a pretrained base's)."""
    from gptkit.config import FinetuneConfig, load_config

    return load_config(FinetuneConfig, "squad-qa", [
        f"data={data}/squad/train.json.gz", f"init={init}", f"out_dir={out}", f"max_steps={max_steps}",
        f"warmup_steps={min(50, max_steps // 10)}", "device=cpu", f"eval_interval={_eval_interval(max_steps, evals)}",
        f"checkpoint_interval={max_steps}", "log_interval=2", *args.overrides, *extra])


def _gptkit_arm(args, data: Path, out: Path) -> dict:
    from gptkit.checkpoint import load_checkpoint
    from gptkit.train import finetune, train
    from gptkit.train.report import read_metrics

    lm_data, arm = out / "lm-data", out / "gptkit"
    shutil.rmtree(arm, ignore_errors=True)

    def probe_pretraining() -> float:
        train(_pretrain_config(arm / "probe-lm", lm_data, PROBE_STEPS))
        return _probe_seconds(arm / "probe-lm")

    pretrain_steps = _steps(args.minutes * args.pretrain, probe_pretraining)
    lm = train(_pretrain_config(arm / "lm", lm_data, pretrain_steps))
    lm_metrics = read_metrics(arm / "lm" / "metrics.jsonl")
    lm_val = [r["val_loss"] for r in lm_metrics if "val_loss" in r][-1]
    pretrain_minutes = lm_metrics[-1]["elapsed"] / 60  # its steps' time, as each arm's training time is counted

    def probe_finetuning() -> float:
        finetune(_finetune_config(args, arm / "probe-qa", lm, data, PROBE_STEPS))
        return _probe_seconds(arm / "probe-qa")

    qa_steps = _steps(args.minutes * (1 - args.pretrain), probe_finetuning)  # each phase's steps fill its share
    best = finetune(_finetune_config(args, arm / "qa", lm, data, qa_steps))
    history = [{"minutes": pretrain_minutes + r["elapsed"] / 60, "val_f1": r["val_f1"]}
               for r in read_metrics(arm / "qa" / "metrics.jsonl") if "val_f1" in r]
    ckpt = load_checkpoint(best)
    scores = _test_scores(ckpt.model, ckpt.tokenizer, data)
    return {"arm": "gptkit", "params": ckpt.model.num_params(), "steps": f"{pretrain_steps} LM + {qa_steps} QA",
            "lm_val_loss": lm_val, "training_minutes": history[-1]["minutes"], "history": history, **scores}


def _test_scores(model, tokenizer, data: Path, window: int = 0) -> dict:
    """EM and F1 on XQuAD-en (the SQuAD v1.1 metric), and the seconds it took; windows of `window` tokens."""
    import torch

    from gptkit.eval.qa import answer_questions
    from gptkit.runtime import fast_bf16

    task, test = _xquad(data, window)
    start = time.perf_counter()
    with torch.autocast("cpu", torch.bfloat16, enabled=fast_bf16(torch.device("cpu"))):
        answers = answer_questions(model.eval(), tokenizer, task, test, batch_size=64)
    return _scored(task, [a.text for a in answers], test, start)


def _xquad(data: Path, window: int = 0):
    """The qa task (windows of `window` tokens) and XQuAD-en's records."""
    from gptkit.config import QaSettings, TaskConfig
    from gptkit.data import Task, read_records

    task = Task.from_config(TaskConfig(format="qa", qa=QaSettings(window=window)))
    _, test, _ = read_records(data / "squad" / "test-xquad-en.json.gz", task)
    return task, test


def _scored(task, answers: list[str], test, start: float) -> dict:
    from gptkit.eval.tasks import score

    scores = score(task, answers, test)
    return {"exact": scores["exact"].score, "f1": scores["f1"].score, "questions": len(test),
            "decode_seconds": time.perf_counter() - start}


def _pretrained_arm(args, data: Path, out: Path) -> dict:
    """The base fully fine-tuned by `gptkit finetune` (a new span head), windows of FullRecipe.max_length."""
    from gptkit.checkpoint import load_checkpoint
    from gptkit.train import finetune
    from gptkit.train.report import read_metrics

    arm, recipe = out / "pretrained", FullRecipe()
    extra = [*gptkit_full_overrides(Path(args.base), recipe), f"task.qa.window={recipe.max_length}"]
    shutil.rmtree(arm, ignore_errors=True)
    finetune(_finetune_config(args, arm / "probe", args.base, data, PROBE_STEPS, [*extra, "select_examples=20"]))
    steps = _steps(args.minutes, lambda: _probe_seconds(arm / "probe"))
    best = finetune(_finetune_config(args, arm / "qa", args.base, data, steps, extra, PRETRAINED_EVALS))
    history = [{"minutes": r["elapsed"] / 60, "val_f1": r["val_f1"]}
               for r in read_metrics(arm / "qa" / "metrics.jsonl") if "val_f1" in r]
    ckpt = load_checkpoint(best)
    return {"arm": "pretrained", "params": ckpt.model.num_params(), "steps": f"{steps} QA",
            "training_minutes": history[-1]["minutes"], "history": history,
            **_test_scores(ckpt.model, ckpt.tokenizer, data, recipe.max_length)}


def _transformers_arm(args, data: Path, out: Path) -> dict:
    """The base as transformers' AutoModelForQuestionAnswering, fully fine-tuned by a plain loop, same recipe."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForQuestionAnswering

    recipe = FullRecipe()
    directory, tokenizer = hf_directory(Path(args.base), out / "transformers")
    torch.manual_seed(recipe.seed)
    # its QA classes keep the body under another prefix than the causal LM's, so from_pretrained would start
    # the body at random: the body comes over from the causal LM, the new head starts as transformers inits it
    causal = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model = AutoModelForQuestionAnswering.from_config(causal.config, dtype=torch.float32)
    model.base_model.load_state_dict(causal.base_model.state_dict())
    loop = PlainLoop(model, recipe.lr, recipe.min_lr, weight_decay=recipe.weight_decay, grad_clip=recipe.grad_clip)
    return _plain_arm("transformers", args, data, out, model, tokenizer, loop, recipe.max_length, PRETRAINED_EVALS)


def _zeroshot_arm(args, data: Path) -> dict:
    """The instruct model as it is, asked for a short answer copied from the context."""
    from gptkit.checkpoint import inspect_checkpoint

    task, test = _xquad(data)
    prompts = [f"Answer the question with a few words copied from the text.\n\nText: {r.fields['context']}\n\n"
               f"Question: {r.fields['question']}" for r in test]
    start = time.perf_counter()
    answers = [a.splitlines()[0].strip().rstrip(".") if a else a for a in zero_shot(Path(args.base), prompts, 32)]
    return {"arm": "zeroshot", "params": inspect_checkpoint(args.base)[2], "steps": "0", "training_minutes": 0.0,
            "history": [], **_scored(task, answers, test, start)}


class _SpanModel:
    """transformers' GPT2ForQuestionAnswering seen as gptkit's answer_questions expects: (B, T, 2) logits."""

    def __init__(self, model, block_size: int):
        from gptkit.config import ModelConfig

        self.model = model
        self.span_head = lambda logits: logits  # hidden_states already gives the start/end logits
        self.config = ModelConfig(block_size=block_size, n_layer=1, n_head=1, n_embd=8)
        self.training, self.device = False, next(model.parameters()).device

    def eval(self):
        self.model.eval()
        return self

    def train(self, mode: bool = True):
        self.model.train(mode)

    def hidden_states(self, ids, segments=None):
        import torch

        out = self.model(input_ids=ids)
        return torch.stack([out.start_logits, out.end_logits], dim=-1)


def _baseline_arm(args, data: Path, out: Path) -> dict:
    """GPT2ForQuestionAnswering of the squad-qa shape, from scratch, trained on the QA windows by a plain loop."""
    import torch
    from transformers import GPT2Config, GPT2ForQuestionAnswering

    from gptkit.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(out / "lm-data" / "tokenizer.json")
    m = _finetune_config(args, out / "baseline", "", data, 1).model  # the same [model] settings
    torch.manual_seed(1337)
    model = GPT2ForQuestionAnswering(GPT2Config(
        vocab_size=tokenizer.vocab_size, n_positions=m.block_size, n_embd=m.n_embd, n_layer=m.n_layer,
        n_head=m.n_head, resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=0.0,
        bos_token_id=tokenizer.eot_id, eos_token_id=tokenizer.eot_id))
    return _plain_arm("baseline", args, data, out, model, tokenizer, PlainLoop(model, lr=1e-3, min_lr=1e-4),
                      m.block_size, EVALS)


def _plain_arm(arm: str, args, data: Path, out: Path, model, tokenizer, loop, window: int, evals: int) -> dict:
    """A transformers QA model trained on the question windows (of `window` tokens) for the budget, kept by
    val F1 on the questions finetune holds out, scored on XQuAD-en."""
    import dataclasses

    import numpy as np
    import torch

    from gptkit.data import Task, read_records
    from gptkit.data.qa import question_windows
    from gptkit.eval.qa import answer_questions
    from gptkit.eval.tasks import score

    cfg = _finetune_config(args, out / arm, "", data, 1)  # the same task settings and split seed
    task = Task.from_config(cfg.task)
    task = dataclasses.replace(task, qa=dataclasses.replace(task.qa, window=window))
    task, records, _ = read_records(data / "squad" / "train.json.gz", task)
    order = np.random.default_rng(cfg.train.seed).permutation(len(records))  # the held-out split finetune makes
    held = set(order[:VAL_QUESTIONS].tolist())
    val = [records[i] for i in sorted(held)]
    train_records = [r for i, r in enumerate(records) if i not in held]
    qa = task.qa
    windows = [w for i, r in enumerate(train_records)
               for w in question_windows(r, tokenizer, window, qa.doc_stride, qa.max_question_tokens, i)]
    rng = np.random.default_rng(1337)

    def val_f1() -> float:
        with torch.no_grad(), loop.autocast():
            answers = answer_questions(_SpanModel(model, window), tokenizer, task, val, batch_size=64)
        model.train()
        return score(task, [a.text for a in answers], val)["f1"].score

    stream = _window_batches(windows, BATCH, rng)
    seconds_per_step, seconds = loop.probe(stream, PROBE_STEPS, skip=4)  # the first warm up the kernels
    steps = max(50, int(args.minutes * 60 / seconds_per_step)) - PROBE_STEPS
    warmup, best, best_state, history = min(100, steps // 10), -1.0, None, []
    model.train()
    for i in range(steps):
        start = time.perf_counter()
        loop.step(next(stream), loop.lr_at(i, steps, warmup))
        seconds += time.perf_counter() - start
        if (i + 1) % max(1, steps // evals) == 0 or i + 1 == steps:
            f1 = val_f1()
            history.append({"minutes": seconds / 60, "val_f1": f1})
            if f1 > best:
                best, best_state = f1, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    scores = _test_scores(_SpanModel(model, window), tokenizer, data, window)
    params = sum(p.numel() for p in model.parameters())
    return {"arm": arm, "params": params, "steps": f"{steps + PROBE_STEPS} QA", "training_minutes": seconds / 60,
            "history": history, **scores}


def _window_batches(windows, batch_size: int, rng):
    """Endless batches of shuffled windows for GPT2ForQuestionAnswering, right-padded with an attention mask."""
    import torch

    while True:
        perm = rng.permutation(len(windows))
        for at in range(0, len(perm) - batch_size + 1, batch_size):
            chunk = [windows[i] for i in perm[at : at + batch_size]]
            width = max(len(w.ids) for w in chunk)
            ids = torch.zeros(len(chunk), width, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            for row, w in enumerate(chunk):
                ids[row, : len(w.ids)] = torch.tensor(w.ids)
                mask[row, : len(w.ids)] = 1
            yield {"input_ids": ids, "attention_mask": mask, "start_positions": torch.tensor([w.start for w in chunk]),
                   "end_positions": torch.tensor([w.end for w in chunk])}


def _print_table(results: list[dict], args) -> None:
    print(f"\nXQuAD-en (1,190 questions), SQuAD v1.1 metric; {args.minutes:g} min of training per arm"
          f"{' (arms in parallel, one core each)' if args.parallel else ''}")
    print(f"{'arm':<12} {'params':>11} {'steps':>18} {'train min':>9} {'best val F1':>11} {'EM':>6} {'F1':>6}")
    for r in results:
        val = f"{max(h['val_f1'] for h in r['history']):.2f}" if r["history"] else "-"
        print(f"{r['arm']:<12} {r['params']:>11,} {r['steps']:>18} {r['training_minutes']:>9.1f} "
              f"{val:>11} {r['exact']:>6.2f} {r['f1']:>6.2f}")
    print("references on these questions (published SQuAD v1.1 predictions): logistic regression 34.5 / 45.9, "
          "Match-LSTM 61.1 / 72.7, BERT ensemble 74.9 / 86.3")


if __name__ == "__main__":
    main()
