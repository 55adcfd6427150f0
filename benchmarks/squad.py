"""Extractive QA on SQuAD v1.1 data, scored on XQuAD-en: gptkit against a transformers baseline, same budget.

    python benchmarks/squad.py [--minutes 60] [--pretrain 0.4] [--parallel] [--arms gptkit,baseline]
                               [--data ../shared/data] [--out runs/bench-squad] [key=value ...]

Both arms train a 4-layer, 256-wide GPT-2 from scratch within the same wall-clock
budget, read each context in the same windows (question first, then up to 256
tokens of context, windows sharing 128 tokens, gptkit.data.qa), keep the checkpoint
with the best F1 on 300 held-out training questions, and are scored on XQuAD-en
(1,190 questions) with the SQuAD v1.1 metric, answers picked by the same best-span
search (at most 30 tokens).

- gptkit: `--pretrain` of the budget is language-model pretraining (`gptkit train`)
  on the training contexts and WikiText-2 valid; the rest `gptkit finetune` with
  task.format=qa, task.answer=extract (a span head; start/end loss over the
  context positions only), Muon. key=value settings apply to the fine-tuning.
- baseline: transformers' GPT2ForQuestionAnswering of the same shape and dropout,
  trained on the QA windows alone by a plain loop: AdamW with a cosine schedule,
  16 windows per step, bf16 autocast where the CPU is fast at it.

Both arms share one 8k byte-level BPE trained on the pretraining text. Each arm's
step counts come from timing its first steps. --parallel runs the arms at once, one
core each; otherwise one after the other with all cores.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
EVALS = 8  # evaluations (val F1) per arm
SHAPE = ["model.n_layer=4", "model.n_head=4", "model.n_embd=256", "model.block_size=256", "model.dropout=0.1",
         "model.attn_dropout=0"]
BATCH = 16  # windows (or pretraining rows) per step: a 1-core CPU does about one such step a second
PROBE_STEPS = 12
VAL_QUESTIONS = 300


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0, help="training budget per arm")
    p.add_argument("--pretrain", type=float, default=0.4, help="gptkit arm: share of the budget for pretraining")
    p.add_argument("--arms", default="gptkit,baseline")
    p.add_argument("--parallel", action="store_true", help="run the arms at once, one core each")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-squad"))
    p.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm in this process
    p.add_argument("overrides", nargs="*", help="key=value settings of the gptkit arm's fine-tuning")
    args = p.parse_args()
    data = Path(args.data)
    if not (data / "squad" / "train.json.gz").is_file():
        sys.exit(f"skipped: SQuAD data not found at {data}/squad (see ../shared/data/README.md)")
    out = Path(args.out)
    if args.arm:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
        result = (_gptkit_arm if args.arm == "gptkit" else _baseline_arm)(args, data, out)
        (out / f"{args.arm}.json").write_text(json.dumps(result, indent=2) + "\n")
        return
    out.mkdir(parents=True, exist_ok=True)
    _pretraining_data(data, out)
    arms = args.arms.split(",")
    threads = "1" if args.parallel else str(os.cpu_count())
    command = [sys.executable, __file__, "--minutes", str(args.minutes), "--pretrain", str(args.pretrain),
               "--data", str(data), "--out", str(out), *args.overrides]
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    procs = []
    for arm in arms:
        procs.append(subprocess.Popen(command + ["--arm", arm], env=env))
        if not args.parallel:
            procs[-1].wait()
    for proc in procs:
        if proc.wait():
            sys.exit(f"an arm failed (exit {proc.returncode})")
    _print_table([json.loads((out / f"{arm}.json").read_text()) for arm in arms], args)


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


def _eval_interval(max_steps: int, evals: int) -> int:
    """Steps between evaluations: `evals` in a run, one at the end of a timing probe."""
    return max_steps if max_steps <= PROBE_STEPS else max(1, max_steps // evals)


def _finetune_config(args, out: Path, init: Path | str, data: Path, max_steps: int):
    from gptkit.config import FinetuneConfig, load_config

    return load_config(FinetuneConfig, None, [
        *SHAPE, f"data={data}/squad/train.json.gz", f"init={init}", f"out_dir={out}",
        "format=qa", "answer=extract", "doc_stride=128", f"val_examples={VAL_QUESTIONS}", "select=f1",
        f"select_examples={VAL_QUESTIONS}", f"max_steps={max_steps}", f"batch_size={BATCH}", "optimizer=muon",
        "lr=1e-3", "min_lr=1e-4", "muon_lr=0.01", f"warmup_steps={min(50, max_steps // 10)}", "device=cpu",
        f"eval_interval={_eval_interval(max_steps, EVALS)}", f"checkpoint_interval={max_steps}", "log_interval=2",
        "sample_tokens=0", *args.overrides])


def _gptkit_arm(args, data: Path, out: Path) -> dict:
    from gptkit.checkpoint import load_checkpoint
    from gptkit.train import finetune, train
    from gptkit.train.report import read_metrics

    lm_data, arm = out / "lm-data", out / "gptkit"
    shutil.rmtree(arm, ignore_errors=True)
    start = time.perf_counter()

    def probe_pretraining() -> float:
        train(_pretrain_config(arm / "probe-lm", lm_data, PROBE_STEPS))
        return _probe_seconds(arm / "probe-lm")

    pretrain_steps = _steps(args.minutes * args.pretrain, probe_pretraining)
    lm = train(_pretrain_config(arm / "lm", lm_data, pretrain_steps))
    lm_val = [r["val_loss"] for r in read_metrics(arm / "lm" / "metrics.jsonl") if "val_loss" in r][-1]
    pretrain_minutes = (time.perf_counter() - start) / 60

    def probe_finetuning() -> float:
        finetune(_finetune_config(args, arm / "probe-qa", lm, data, PROBE_STEPS))
        return _probe_seconds(arm / "probe-qa")

    qa_steps = _steps(args.minutes - pretrain_minutes, probe_finetuning)
    best = finetune(_finetune_config(args, arm / "qa", lm, data, qa_steps))
    history = [{"minutes": pretrain_minutes + r["elapsed"] / 60, "val_f1": r["val_f1"]}
               for r in read_metrics(arm / "qa" / "metrics.jsonl") if "val_f1" in r]
    ckpt = load_checkpoint(best)
    scores = _test_scores(ckpt.model, ckpt.tokenizer, data)
    return {"arm": "gptkit", "params": ckpt.model.num_params(), "steps": f"{pretrain_steps} LM + {qa_steps} QA",
            "lm_val_loss": lm_val, "training_minutes": history[-1]["minutes"], "history": history, **scores}


def _test_scores(model, tokenizer, data: Path) -> dict:
    """EM and F1 on XQuAD-en (the SQuAD v1.1 metric), and the seconds it took."""
    import torch

    from gptkit.config import TaskConfig
    from gptkit.data import Task, read_records
    from gptkit.eval.qa import answer_questions
    from gptkit.eval.tasks import score
    from gptkit.runtime import fast_bf16

    task = Task.from_config(TaskConfig(format="qa", answer="extract"))
    _, test, _ = read_records(data / "squad" / "test-xquad-en.json.gz", task)
    start = time.perf_counter()
    with torch.autocast("cpu", torch.bfloat16, enabled=fast_bf16(torch.device("cpu"))):
        answers = answer_questions(model.eval(), tokenizer, task, test, batch_size=64)
    scores = score(task, [a.text for a in answers], test)
    return {"exact": scores["exact"].score, "f1": scores["f1"].score, "questions": len(test),
            "decode_seconds": time.perf_counter() - start}


class _SpanModel:
    """transformers' GPT2ForQuestionAnswering seen as gptkit's answer_questions expects: (B, T, 2) logits."""

    def __init__(self, model, block_size: int):
        from gptkit.config import ModelConfig

        self.model, self.span_head = model, True
        self.config = ModelConfig(block_size=block_size, n_layer=1, n_head=1, n_embd=8)
        self.training, self.device = False, next(model.parameters()).device

    def eval(self):
        self.model.eval()
        return self

    def train(self, mode: bool = True):
        self.model.train(mode)

    def __call__(self, ids):
        out = self.model(input_ids=ids)
        import torch

        return torch.stack([out.start_logits, out.end_logits], dim=-1)


def _baseline_arm(args, data: Path, out: Path) -> dict:
    """GPT2ForQuestionAnswering trained on the QA windows by a plain loop."""
    import numpy as np
    import torch
    from transformers import GPT2Config, GPT2ForQuestionAnswering

    from gptkit.data import Task, read_records
    from gptkit.data.qa import question_windows
    from gptkit.eval.qa import answer_questions
    from gptkit.eval.tasks import score
    from gptkit.runtime import fast_bf16
    from gptkit.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(out / "lm-data" / "tokenizer.json")
    cfg = _finetune_config(args, out / "baseline", "", data, 1)  # the same task and [model] settings
    m = cfg.model
    task, records, _ = read_records(data / "squad" / "train.json.gz", Task.from_config(cfg.task))
    order = np.random.default_rng(cfg.train.seed).permutation(len(records))  # the held-out split finetune makes
    held = set(order[:VAL_QUESTIONS].tolist())
    val = [records[i] for i in sorted(held)]
    train_records = [r for i, r in enumerate(records) if i not in held]
    windows = [w for i, r in enumerate(train_records)
               for w in question_windows(r, tokenizer, m.block_size, task.doc_stride, task.max_question_tokens, i)]
    torch.manual_seed(1337)
    model = GPT2ForQuestionAnswering(GPT2Config(
        vocab_size=tokenizer.vocab_size, n_positions=m.block_size, n_embd=m.n_embd, n_layer=m.n_layer,
        n_head=m.n_head, resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=0.0,
        bos_token_id=tokenizer.eot_id, eos_token_id=tokenizer.eot_id))
    dtype = torch.bfloat16 if fast_bf16(torch.device("cpu")) else torch.float32
    lr, min_lr, batch_size = 1e-3, 1e-4, BATCH
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    rng = np.random.default_rng(1337)

    def step(batch, at_lr):
        for group in optimizer.param_groups:
            group["lr"] = at_lr
        with torch.autocast("cpu", dtype, enabled=dtype != torch.float32):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def val_f1() -> float:
        with torch.no_grad(), torch.autocast("cpu", dtype, enabled=dtype != torch.float32):
            answers = answer_questions(_SpanModel(model, m.block_size), tokenizer, task, val, batch_size=64)
        model.train()
        return score(task, [a.text for a in answers], val)["f1"].score

    stream, timed = _window_batches(windows, batch_size, rng), []
    for _ in range(PROBE_STEPS):  # timing steps count as training
        start = time.perf_counter()
        step(next(stream), lr * 0.1)
        timed.append(time.perf_counter() - start)
    steps = max(50, int(args.minutes * 60 / (sum(timed[4:]) / len(timed[4:])))) - PROBE_STEPS
    warmup, best, best_state, seconds, history = min(100, steps // 10), -1.0, None, sum(timed), []
    model.train()
    for i in range(steps):
        start = time.perf_counter()
        progress = max(0.0, (i - warmup) / max(1, steps - warmup))
        cosine = min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))
        at_lr = lr * (i + 1) / warmup if i < warmup else cosine
        step(next(stream), at_lr)
        seconds += time.perf_counter() - start
        if (i + 1) % max(1, steps // EVALS) == 0 or i + 1 == steps:
            f1 = val_f1()
            history.append({"minutes": seconds / 60, "val_f1": f1})
            if f1 > best:
                best, best_state = f1, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    scores = _test_scores(_SpanModel(model, m.block_size), tokenizer, data)
    params = sum(p.numel() for p in model.parameters())
    return {"arm": "baseline", "params": params, "steps": f"{steps + PROBE_STEPS} QA",
            "training_minutes": seconds / 60, "history": history, **scores}


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
    print(f"{'arm':<10} {'params':>10} {'steps':>18} {'train min':>9} {'best val F1':>11} {'EM':>6} {'F1':>6}")
    for r in results:
        print(f"{r['arm']:<10} {r['params']:>10,} {r['steps']:>18} {r['training_minutes']:>9.1f} "
              f"{max(h['val_f1'] for h in r['history']):>11.2f} {r['exact']:>6.2f} {r['f1']:>6.2f}")
    print("references on these questions (published SQuAD v1.1 predictions): logistic regression 34.5 / 45.9, "
          "Match-LSTM 61.1 / 72.7, BERT ensemble 74.9 / 86.3")


if __name__ == "__main__":
    main()
