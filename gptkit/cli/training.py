"""Commands that make data and models: prepare, train, finetune, demo."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import FinetuneConfig, RunConfig, load_config, presets
from ..data import PrepareConfig
from ..errors import GptkitError
from .common import choices
from .keys import add_keys_flag


def _cmd_prepare(args) -> None:
    import time

    from tqdm import tqdm

    from ..data import prepare
    from ..tokenizer import Tokenizer

    shortcuts = [f"{key}={json.dumps(getattr(args, key))}" for key in _PREPARE_SHORTCUTS
                 if getattr(args, key) is not None]
    config = load_config(PrepareConfig, args.config, shortcuts + args.overrides)
    tokenizer = Tokenizer.load(args.tokenizer_file) if args.tokenizer_file else None
    start = time.perf_counter()
    with tqdm(unit="B", unit_scale=True, desc="prepare", disable=True if args.quiet else None) as bar:
        def progress(bytes_read: int, tokens: int) -> None:
            bar.update(bytes_read - bar.n)
            bar.set_postfix(tokens=f"{tokens:,}", tok_per_s=f"{tokens / (time.perf_counter() - start):,.0f}")

        manifest = prepare(args.sources, args.out, config, tokenizer, on_progress=progress)
    for split, info in manifest["splits"].items():
        print(f"{split:<6} {info['documents']:>9,} documents {info['tokens']:>13,} tokens "
              f"in {len(info['shards'])} shard(s)")
    read = manifest["read"]
    print(f"read   {read['files']:,} file(s), {read['bytes'] / 1e6:,.1f} MB, {read['documents']:,} documents; "
          f"skipped {len(read['skipped_binary'])} binary file(s); "
          f"{read['invalid_utf8_documents']} document(s) with invalid UTF-8 repaired")
    print("clean  " + ", ".join(f"{k} {v:,}" for k, v in sorted(manifest["cleaning"].items())))
    print(f"vocab  {manifest['vocab_size']:,} tokens ({manifest['dtype']}) -> {args.out}")


def _cmd_train(args) -> None:
    if args.config is None:
        raise GptkitError(f"say what to train: --config with a preset ({', '.join(presets(RunConfig))}) or a TOML "
                          f"file")
    from ..train import train

    run = load_config(RunConfig, args.config, args.overrides)
    _train(run, args.quiet, lambda on_step: train(run, on_step))


def _cmd_finetune(args) -> None:
    config = load_config(FinetuneConfig, args.config, args.overrides)  # no --config: the defaults
    from ..train import finetune

    _train(config.run, args.quiet, lambda on_step: finetune(config, on_step))


def _cmd_demo(args) -> None:
    """Shard the built-in corpus, train a small model for a few minutes, sample from it."""
    from ..checkpoint import load_checkpoint
    from ..data import prepare
    from ..generate import Decoding, generate_text
    from ..train import train

    out = Path(args.out)
    run = load_config(RunConfig, "demo", [f"data={out / 'data'}", f"out_dir={out / 'train'}", *args.overrides])
    vocab = run.model.vocab_size
    print(f"1/3 prepare: clean builtin:python-docs, train a {vocab:,}-token byte-level BPE, write token shards")
    manifest = prepare(["builtin:python-docs"], out / "data", PrepareConfig(vocab_size=vocab))
    print(f"    {manifest['splits']['train']['tokens']:,} train and {manifest['splits']['val']['tokens']:,} "
          f"val tokens in {out / 'data'}")
    print(f"2/3 train: the demo preset, a few minutes on a CPU (metrics, loss.png, report.md in {out / 'train'})")
    _train(run, False, lambda on_step: train(run, on_step))
    ckpt = load_checkpoint(out / "train" / "best")
    print("3/3 generate: three samples (temperature 0.8, top-k 50)")
    for i, prompt in enumerate(["The assert statement", "A class definition", "Exceptions"]):
        text = generate_text(ckpt.model.eval(), ckpt.tokenizer, prompt, Decoding(60, 0.8, top_k=50, seed=i))
        print(f"--- {prompt}{text}")
    print(f"\nnext: gptkit generate {out / 'train' / 'best'} --prompt \"...\"")


def _train(run: RunConfig, quiet: bool, start) -> None:
    """Train (`start(on_step)`) with a progress bar on the main process; print where the best checkpoint is."""
    from tqdm import tqdm

    from ..runtime import is_main_process

    quiet = quiet or not is_main_process()
    with tqdm(total=run.train.max_steps, desc="train", unit="step", disable=True if quiet else None) as bar:
        def on_step(record: dict) -> None:
            if bar.n == 0 and record["step"] > 1:  # a resumed run: time left follows this run's own pace
                bar.reset()
                bar.initial = record["step"] - 1
            bar.n = record["step"]
            if "tokens_per_s" in record:
                bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:,.0f}",
                                mfu=f"{100 * record['mfu']:.1f}%", refresh=False)
                if bar.disable and not quiet:  # a log file or pipe: no bar there, so a line per log_interval
                    print(f"step {record['step']}/{run.train.max_steps}: loss {record['loss']:.4f}, "
                          f"{record['tokens_per_s']:,.0f} tok/s, mfu {100 * record['mfu']:.1f}%")
            if "grown" in record:
                g = record["grown"]
                bar.write(f"step {record['step']}: grew to {g['n_layer']} layers x {g['n_embd']} "
                          f"({g['params']:,} parameters)")
            if "val_loss" in record:
                scores = [f"ppl {record['val_ppl']:.1f}, {record['val_bpb']:.3f} bits/byte"] if "val_bpb" in record \
                    else [f"{k[4:]} {v:.2f}" for k, v in record.items() if k in ("val_bleu", "val_chrf")]
                bar.write(f"step {record['step']}: val loss {record['val_loss']:.4f}"
                          + (f" ({', '.join(scores)})" if scores else ""))
                if "sample" in record:
                    bar.write(record["sample"])
            bar.refresh()

        best = start(on_step)
    if is_main_process():
        print(f"best checkpoint: {best}  (report: {Path(run.train.out_dir) / 'report.md'})")


# prepare's flags that are shortcuts for config keys (dest = key); each defaults to the config's value
_PREPARE_SHORTCUTS = ("tokenizer", "vocab_size", "val_fraction", "seed", "shard_tokens", "text_field", "column",
                      "include", "exclude", "txt_documents", "min_chars", "nfc", "strip_control", "dedup_exact",
                      "dedup_near", "redact_pii", "remove_stopwords")


def add_parsers(sub) -> None:
    preset_help = f"a preset ({', '.join(presets(RunConfig))}) or a TOML file"
    _add_prepare(sub)

    p = sub.add_parser("train", help="train (or resume) a model on token shards",
                       usage="gptkit train --config NAME|FILE [key=value ...]",
                       epilog="key=value (or model.key / train.key) overrides the config, e.g. lr=1e-3 n_layer=4; "
                              "--keys lists every key with its default and meaning. Run again with the same "
                              "out_dir to resume; under torchrun it trains with DDP.")
    p.add_argument("--config", help=f"run config ([model] and [train]): {preset_help}")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_keys_flag(p, "gptkit.config.RunConfig")
    p.set_defaults(func=_cmd_train, takes_overrides=True)

    p = sub.add_parser("finetune", help="fine-tune on task examples (translation, QA, summarization, "
                                        "prompt/completion, Alpaca, chat)",
                       usage="gptkit finetune [--config NAME|FILE] [key=value ...]",
                       epilog="e.g. data=train.jsonl init=runs/base/best lora.rank=8; --keys lists every key. "
                              "Run again with the same out_dir to resume; under torchrun it trains with DDP.")
    p.add_argument("--config", help="fine-tuning config ([task], [lora], [train], [model]): a preset "
                                    f"({', '.join(presets(FinetuneConfig))}) or a TOML file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_keys_flag(p, "gptkit.config.FinetuneConfig")
    p.set_defaults(func=_cmd_finetune, takes_overrides=True)

    p = sub.add_parser("demo", help="the tour: shard a corpus, train a small model for a few minutes, sample",
                       usage="gptkit demo [--out DIR] [key=value ...]",
                       epilog="key=value overrides the demo preset, e.g. max_steps=50 for a quick look")
    p.add_argument("--out", default="runs/demo", help="where to write data, checkpoints and report")
    p.set_defaults(func=_cmd_demo, takes_overrides=True)


def _add_prepare(sub) -> None:
    from ..data import ReadOptions

    p = sub.add_parser("prepare", help="clean, tokenize and shard a corpus (files, directories, builtin:)",
                       usage="gptkit prepare SOURCE [SOURCE ...] --out DIR [--config FILE] [flags] [key=value ...]",
                       epilog="Flags are shortcuts for config keys; key=value sets any key of the prepare config "
                              "and its [read] and [clean] tables, e.g. near_threshold=0.7.")
    p.add_argument("sources", nargs="+", help="files, directories or builtin:python-docs (.gz accepted)")
    p.add_argument("--out", required=True, help="directory for shards, manifest.json and tokenizer.json")
    p.add_argument("--config", help="prepare config (TOML: top-level keys, [read], [clean])")
    p.add_argument("--tokenizer", dest="tokenizer_file", help="use this tokenizer.json instead of training one")
    p.add_argument("--tokenizer-type", dest="tokenizer", choices=choices(PrepareConfig, "tokenizer"),
                   help="what to train (default bpe)")
    p.add_argument("--vocab-size", type=int, help="BPE vocabulary size (default 8192)")
    p.add_argument("--val-fraction", type=float, help="share of documents in val (default 0.1)")
    p.add_argument("--seed", type=int, help="decides the train/val split")
    p.add_argument("--shard-tokens", type=int, help="tokens per shard file")
    p.add_argument("--text-field", help="JSONL field with the text (default text)")
    p.add_argument("--column", help="CSV/Parquet column with the text (default text)")
    p.add_argument("--include", action="append", help="glob for files in directories (repeatable)")
    p.add_argument("--exclude", action="append", help="glob for files to leave out, by name or path inside the "
                   "directory (repeatable)")
    p.add_argument("--txt-documents", choices=choices(ReadOptions, "txt_documents"),
                   help="how a .txt file splits into documents (default paragraph)")
    p.add_argument("--min-chars", type=int, help="drop documents shorter than this")
    p.add_argument("--no-nfc", dest="nfc", action="store_const", const=False, help="skip Unicode NFC normalisation")
    p.add_argument("--no-strip-control", dest="strip_control", action="store_const", const=False,
                   help="keep control characters")
    p.add_argument("--no-dedup", dest="dedup_exact", action="store_const", const=False,
                   help="keep exact duplicate documents")
    p.add_argument("--near-dedup", dest="dedup_near", action="store_const", const=True,
                   help="drop near duplicates (MinHash; extra 'data')")
    p.add_argument("--redact-pii", action="store_const", const=True, help="replace e-mails, phone numbers, IPs")
    p.add_argument("--remove-stopwords", action="store_const", const=True,
                   help="for retrieval indexes only, not for LM training")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_keys_flag(p, "gptkit.data.prepare.PrepareConfig")
    p.set_defaults(func=_cmd_prepare, takes_overrides=True)
