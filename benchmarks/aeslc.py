"""E-mail subject lines (AESLC): gptkit's summarizer against a lead baseline and a transformers baseline.

    python benchmarks/aeslc.py [--minutes 20] [--parallel] [--arms gptkit,baseline]
                               [--data ../shared/data/aeslc] [--out runs/bench-aeslc] [key=value ...]
    python benchmarks/aeslc.py --base runs/smollm2 --arms pretrained,peft,zeroshot --parallel [--limit 500]

Three systems write a subject line for each of the 1,960 dev e-mails, scored with
ROUGE-1/2/L (rouge-score, stemming) against the `subject` and against all references
(subject and the three annotators' ann0..ann2, best per e-mail):

- lead: no training; the body's first sentence, cut to its first 8 words.
- gptkit: `gptkit finetune --config aeslc-subject` (email_body -> subject) from
  scratch, 4 layers x 256, packed rows, loss on the subject only, Muon,
  checkpoint kept by val ROUGE-L (200 held-out training e-mails); decoded greedily
  and with 4 beams, no repeated 3-grams. key=value settings apply to it.
- baseline: transformers' GPT2LMHeadModel of the same shape on the same tokenized
  examples for the same time: a plain loop (32 examples per step padded to the
  longest, AdamW, cosine schedule), checkpoint kept by val ROUGE-L; greedy.

Both trained arms share one 8k BPE trained on the training e-mails. --parallel runs
the two arms at once, one core each.

From a pretrained base (--base: a gptkit checkpoint, e.g. SmolLM2-135M-Instruct from `gptkit import-gguf`):

- pretrained: gptkit finetune of the base with LoRA (benchmarks/pretrained.py's recipe), its tokenizer;
  otherwise the gptkit arm's task, selection and decoding.
- peft: transformers + PEFT, the same LoRA recipe on the same weights and examples, a plain loop; greedy.
- zeroshot: the base as it is, asked through its chat template to write a subject line; greedy.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from arms import PlainLoop, arm_parser, run_arms, run_own_arm, smoke_settings
from pretrained import LoraRecipe, gptkit_overrides, peft_model, zero_shot

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "aeslc"
EVALS = 8
VAL = 200  # the preset's val_examples
MAX_NEW_TOKENS = 24
CLIP = 2000  # characters of each e-mail body that any arm reads
PRESET = "aeslc-subject"  # email_body -> subject, 4 x 256, context 256, select by val ROUGE-L


def main() -> None:
    p = arm_parser(__doc__, 20.0, DATA, ROOT / "runs" / "bench-aeslc")
    p.add_argument("--limit", type=int, default=0, help="score the first N dev e-mails only (a quick check)")
    p.add_argument("--greedy-only", action="store_true", help="gptkit arm: skip the beam-search decoding of dev")
    p.add_argument("--base", help="a pretrained gptkit checkpoint for the pretrained, peft and zeroshot arms")
    args = p.parse_args()
    smoke_settings(args, "aeslc")
    if args.smoke and not args.arm and not args.base:
        import smoke

        args.base, args.arms = str(smoke.tiny_base(Path(args.out).parent)), "gptkit,baseline,pretrained,peft,zeroshot"
    if args.smoke:
        global VAL
        VAL = 10
        if not args.arm:
            args.overrides += ["model.block_size=96", "batch_size=4", "val_examples=10", "select_examples=10"]
    data = Path(args.data)
    if not (data / "train.jsonl.gz").is_file():
        sys.exit(f"skipped: AESLC not found at {data} (see ../shared/data/README.md)")
    out = Path(args.out)
    if run_own_arm(args, out, {"gptkit": lambda: _gptkit_arm(args, data, out),
                                "baseline": lambda: _baseline_arm(args, data, out),
                                "pretrained": lambda: _gptkit_arm(args, data, out, "pretrained",
                                                                  gptkit_overrides(Path(args.base))),
                                "peft": lambda: _peft_arm(args, data, out),
                                "zeroshot": lambda: _zeroshot_arm(args, data)}):
        return
    if {"pretrained", "peft", "zeroshot"} & set(args.arms.split(",")) and not args.base:
        sys.exit("the pretrained, peft and zeroshot arms need --base CHECKPOINT (e.g. from gptkit import-gguf)")
    out.mkdir(parents=True, exist_ok=True)
    data = _clipped(data, out)
    _shared_tokenizer(data, out)
    arms = args.arms.split(",")
    run_arms(__file__, arms, args.parallel, ["--minutes", str(args.minutes), "--data", str(data), "--out", str(out),
               "--limit", str(args.limit), *(["--greedy-only"] if args.greedy_only else []),
               *(["--base", args.base] if args.base else []), *args.overrides], args.smoke)
    results = [_lead_arm(data, args.limit)] + [json.loads((out / f"{arm}.json").read_text()) for arm in arms]
    _print_table(results, args)


def _clipped(data: Path, out: Path) -> Path:
    """The data set with each body cut to its first CLIP characters (about 500 tokens), for every arm: it leaves
    the from-scratch arms' 256-token inputs as they were and keeps a pretrained model's long window from
    turning a rare 20,000-character e-mail into a batch that does not fit in memory."""
    import gzip

    (out / "data").mkdir(exist_ok=True)
    for name in ("train.jsonl.gz", "dev.jsonl.gz"):
        with gzip.open(data / name, "rt", encoding="utf-8") as src, gzip.open(out / "data" / name, "wt",
                                                                              encoding="utf-8") as dst:
            for line in src:
                if line.strip():
                    row = json.loads(line)
                    row["email_body"] = (row.get("email_body") or "")[:CLIP]
                    dst.write(json.dumps(row) + "\n")
    return out / "data"


def _task():
    from gptkit.config import SummarizationSettings, TaskConfig
    from gptkit.data import Task

    settings = SummarizationSettings("email_body", "subject")
    return Task.from_config(TaskConfig(format="summarization", summarization=settings))


def _dev(data: Path, limit: int = 0):
    """The dev records and, per record, every reference (subject, ann0..ann2 where present); the first `limit`."""
    import gzip

    from gptkit.data import read_records

    _, records, _ = read_records(data / "dev.jsonl.gz", _task())
    rows = [json.loads(line) for line in gzip.open(data / "dev.jsonl.gz", "rt", encoding="utf-8") if line.strip()]
    rows = [r for r in rows if r.get("email_body", "").strip() and r.get("subject", "").strip()]
    every = [[r["subject"]] + [r[k] for k in ("ann0", "ann1", "ann2") if r.get(k, "").strip()] for r in rows]
    limit = limit or len(records)
    return records[:limit], every[:limit]


def _scores(predictions: list[str], every: list[list[str]]) -> dict:
    from gptkit.eval import rouge

    subject = rouge(predictions, [[refs[0] for refs in every]], ("rouge1", "rouge2", "rougeL"))
    width = max(map(len, every))
    sets = [[refs[i] if i < len(refs) else refs[0] for refs in every] for i in range(width)]
    multi = rouge(predictions, sets, ("rouge1", "rouge2", "rougeL"))
    return {"subject": {k: v.score for k, v in subject.items()}, "all": {k: v.score for k, v in multi.items()}}


def _shared_tokenizer(data: Path, out: Path) -> None:
    from gptkit.data import read_records
    from gptkit.tokenizer import Tokenizer

    task, records, _ = read_records(data / "train.jsonl.gz", _task())
    texts = (t for r in records for t in (task.prompt(r), task.reference(r)))
    Tokenizer.train_bpe(texts, 8192).save(out / "tokenizer.json")


def _lead_arm(data: Path, limit: int) -> dict:
    """The body's first sentence, cut to 8 words (a subject line is short)."""
    records, every = _dev(data, limit)
    predictions = []
    for r in records:
        first = re.split(r"(?<=[.!?])\s+|\n", r.fields["document"].strip(), maxsplit=1)[0]
        predictions.append(" ".join(first.split()[:8]))
    return {"arm": "lead", "params": 0, "steps": 0, "training_minutes": 0.0, "scores": {"greedy": _scores(
        predictions, every)}}


def _config(args, out: Path, data: Path, max_steps: int, extra: list[str] = (), evals: int = EVALS):
    from gptkit.config import FinetuneConfig, load_config

    pretrained = any(o.startswith("init=") for o in extra)  # the base brings its own tokenizer and shape
    return load_config(FinetuneConfig, PRESET, [
        f"data={data}/train.jsonl.gz", *([] if pretrained else [f"tokenizer={out.parent / 'tokenizer.json'}"]),
        f"out_dir={out}", f"max_steps={max_steps}", f"warmup_steps={min(100, max_steps // 10)}", "device=cpu",
        f"eval_interval={max(1, max_steps // evals)}", f"checkpoint_interval={max_steps}", "log_interval=2",
        *(o for o in args.overrides if not (pretrained and o.startswith("model."))), *extra])


def _gptkit_arm(args, data: Path, out: Path, name: str = "gptkit", extra: list[str] = ()) -> dict:
    import shutil

    import torch

    from gptkit.checkpoint import load_checkpoint
    from gptkit.eval.tasks import predict
    from gptkit.generate import Decoding
    from gptkit.runtime import fast_bf16
    from gptkit.train import finetune
    from gptkit.train.report import read_metrics

    probe = out / f"{name}-probe"
    shutil.rmtree(probe, ignore_errors=True)
    finetune(_config(args, probe, data, 12, extra, evals=1))  # one evaluation, after the timed steps
    rows = [r for r in read_metrics(probe / "metrics.jsonl") if "tokens_per_s" in r]
    seconds_per_step = (rows[-1]["elapsed"] - rows[0]["elapsed"]) / (rows[-1]["step"] - rows[0]["step"])
    max_steps = max(50, int(args.minutes * 60 / seconds_per_step))
    shutil.rmtree(out / name, ignore_errors=True)
    best = finetune(_config(args, out / name, data, max_steps, extra))
    history = [{"minutes": r["elapsed"] / 60, "val_rougeL": r["val_rougeL"]}
               for r in read_metrics(out / name / "metrics.jsonl") if "val_rougeL" in r]
    ckpt = load_checkpoint(best)
    records, every = _dev(data, args.limit)
    result = {"arm": name, "params": ckpt.model.num_params(), "steps": max_steps,
              "training_minutes": history[-1]["minutes"], "history": history, "scores": {}}
    for name, beams, no_repeat in (("greedy", 1, 0), ("beam 4", 4, 3))[: 1 if args.greedy_only else 2]:
        start = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=fast_bf16(torch.device("cpu"))):
            decoding = Decoding(MAX_NEW_TOKENS, temperature=0, num_beams=beams, no_repeat_ngram=no_repeat)
            predictions = predict(ckpt.model.eval(), ckpt.tokenizer, _task(), records, decoding, batch_size=64)
        result["scores"][name] = {**_scores(predictions, every), "decode_seconds": time.perf_counter() - start}
        (out / f"{result['arm']}-{name.replace(' ', '')}.txt").write_text("\n".join(predictions) + "\n")
    return result


def _baseline_arm(args, data: Path, out: Path) -> dict:
    """GPT2LMHeadModel on the same examples, a plain loop (the multi30k benchmark's recipe and helpers)."""
    import torch
    from multi30k import BaselineRecipe
    from transformers import GPT2Config, GPT2LMHeadModel

    from gptkit.tokenizer import Tokenizer

    cfg, t = _config(args, out / "baseline", data, 1), BaselineRecipe()
    m = cfg.model
    tokenizer = Tokenizer.load(out / "tokenizer.json")
    torch.manual_seed(t.seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=m.block_size, n_embd=m.n_embd,
                                       n_layer=m.n_layer, n_head=m.n_head, resid_pdrop=m.dropout, embd_pdrop=m.dropout,
                                       attn_pdrop=0.0, bos_token_id=tokenizer.eot_id, eos_token_id=tokenizer.eot_id))
    loop = PlainLoop(model, t.lr, t.min_lr, (t.beta1, t.beta2), t.weight_decay, t.grad_clip)
    return _plain_arm("baseline", args, data, model, loop, tokenizer, m.block_size, t.batch_size, t.seed)


def _peft_arm(args, data: Path, out: Path) -> dict:
    """The base with transformers + PEFT LoRA adapters, the same recipe as gptkit's pretrained arm."""
    t = LoraRecipe()
    model, tokenizer, _ = peft_model(Path(args.base), out / "peft", t)
    loop = PlainLoop(model, t.lr, t.min_lr, (0.9, 0.95), t.weight_decay, t.grad_clip)
    return _plain_arm("peft", args, data, model, loop, tokenizer, t.max_length, t.batch_size, t.seed)


def _plain_arm(arm: str, args, data: Path, model, loop, tokenizer, block_size: int, batch_size: int,
               seed: int) -> dict:
    """Train a transformers model for the budget on the task's examples, keep the best val ROUGE-L, score dev."""
    import numpy as np
    from multi30k import _hf_greedy, _padded

    from gptkit.data import read_records
    from gptkit.eval import rouge

    task, dtype = _task(), loop.dtype
    _, records, _ = read_records(data / "train.jsonl.gz", task)
    split_seed = _config(args, Path(args.out) / arm, data, 1).train.seed
    order = np.random.default_rng(split_seed).permutation(len(records))  # the held-out split finetune makes
    held = set(order[:VAL].tolist())
    val = [records[i] for i in sorted(held)]
    # an Example holds block_size + 1 ids (inputs and shifted targets); transformers reads all of them as inputs
    examples = task.examples([r for i, r in enumerate(records) if i not in held], tokenizer, block_size - 1)
    rng = np.random.default_rng(seed)

    def batches():
        while True:
            perm = rng.permutation(len(examples))
            for at in range(0, len(perm) - batch_size + 1, batch_size):
                yield _padded([examples[i] for i in perm[at : at + batch_size]])

    stream = batches()
    seconds_per_step, seconds = loop.probe(stream, 12, skip=4)  # the first warm up the kernels
    steps = max(50, int(args.minutes * 60 / seconds_per_step)) - 12
    warmup, best, best_state, history = min(100, steps // 10), -1.0, None, []
    for i in range(steps):
        start = time.perf_counter()
        loop.step(next(stream), loop.lr_at(i, steps, warmup))
        seconds += time.perf_counter() - start
        if (i + 1) % max(1, steps // EVALS) == 0 or i + 1 == steps:
            predictions = _hf_greedy(model, tokenizer, task, val, MAX_NEW_TOKENS, dtype)
            score = rouge(predictions, [[task.reference(r) for r in val]], ("rougeL",))["rougeL"].score
            history.append({"minutes": seconds / 60, "val_rougeL": score})
            if score > best:
                best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    dev, every = _dev(data, args.limit)
    start = time.perf_counter()
    predictions = _hf_greedy(model, tokenizer, task, dev, MAX_NEW_TOKENS, dtype)
    return {"arm": arm, "params": sum(p.numel() for p in model.parameters()), "steps": steps + 12,
            "training_minutes": seconds / 60, "history": history,
            "scores": {"greedy": {**_scores(predictions, every), "decode_seconds": time.perf_counter() - start}}}


def _zeroshot_arm(args, data: Path) -> dict:
    """The base model as it is, asked for a subject line through its chat template."""
    from gptkit.checkpoint import inspect_checkpoint

    records, every = _dev(data, args.limit)
    prompts = [f"Write a subject line of a few words for this e-mail.\n\n{r.fields['document'][:2000]}"
               for r in records]
    start = time.perf_counter()
    predictions = [p.splitlines()[0].removeprefix("Subject:").strip() if p else p
                   for p in zero_shot(Path(args.base), prompts, MAX_NEW_TOKENS)]
    return {"arm": "zeroshot", "params": inspect_checkpoint(args.base)[2], "steps": 0, "training_minutes": 0.0,
            "scores": {"greedy": {**_scores(predictions, every), "decode_seconds": time.perf_counter() - start}}}


def _print_table(results: list[dict], args) -> None:
    print(f"\nAESLC dev ({args.limit or 1960:,} e-mails), ROUGE F1 x 100 (rouge-score, stemming); "
          f"{args.minutes:g} min of training per trained arm{' (in parallel, one core each)' if args.parallel else ''}")
    print(f"{'system':<18} {'params':>10} {'steps':>6} {'min':>5}   {'R-1':>5} {'R-2':>5} {'R-L':>5}"
          f"   all refs: {'R-1':>5} {'R-2':>5} {'R-L':>5}")
    for r in results:
        for name, s in r["scores"].items():
            one, every = s["subject"], s["all"]
            print(f"{r['arm'] + ' ' + name:<18} {r['params']:>10,} {r['steps']:>6} {r['training_minutes']:>5.1f}   "
                  f"{one['rouge1']:>5.2f} {one['rouge2']:>5.2f} {one['rougeL']:>5.2f}   "
                  f"          {every['rouge1']:>5.2f} {every['rouge2']:>5.2f} {every['rougeL']:>5.2f}")
    print("PEGASUS-large on AESLC test (published): 37.7 / 21.1 / 36.5")


if __name__ == "__main__":
    main()
