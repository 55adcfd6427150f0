"""`gptkit` command line: parse flags, call the Python API, print. No logic a Python user cannot reach."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import traceback
import typing
from pathlib import Path

from .config import ModelConfig, RunConfig, load_config, presets
from .data import PrepareConfig
from .errors import GptkitError
from .grow import DepthMethod, DepthOrder
from .runtime import InferenceDtype

log = logging.getLogger("gptkit")


def _cmd_info(args) -> None:
    from .checkpoint import inspect_checkpoint

    config, meta, n_params = inspect_checkpoint(args.checkpoint)
    files = [f for f in Path(args.checkpoint).iterdir() if f.is_file()]
    rows = {"checkpoint": args.checkpoint, **vars(config)}
    n_pos = config.block_size * config.n_embd
    rows["parameters"] = f"{n_params:,} ({n_params - n_pos:,} without position embeddings)"
    rows["size"] = f"{sum(f.stat().st_size for f in files) / 2**20:.1f} MiB on disk"
    rows["files"] = ", ".join(sorted(f.name for f in files))
    rows.update({k: v for k, v in meta.items() if k != "run"})
    for key, value in rows.items():
        print(f"{key:<15} {value}")


def _cmd_generate(args) -> None:
    from .checkpoint import load_checkpoint
    from .generate import Sampling
    from .quantize import for_inference
    from .runtime import pick_device

    if min(args.num_samples, args.max_new_tokens, args.beams) < 1:
        raise GptkitError("--num-samples, --max-new-tokens and --beams must be at least 1")
    ckpt = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    if ckpt.tokenizer is None:
        raise GptkitError(f"{args.checkpoint} has no tokenizer.json, so text prompts cannot be encoded")
    model = for_inference(ckpt.model, args.dtype)
    sampling = Sampling(args.temperature, args.top_k, args.top_p, args.min_p, args.repetition_penalty)
    chat = _Chat(ckpt, args.system) if args.chat else None
    if not args.interactive:
        prompt = _read_prompt(args)
        _complete(model, ckpt.tokenizer, chat.prompt(prompt) if chat else prompt, sampling, args, echo=not chat)
        return
    print("interactive: type a prompt and press Enter; an empty line or Ctrl-D quits", file=sys.stderr)
    while prompt := _input("> "):
        try:
            text = _utf8(prompt, "the prompt")
            reply = _complete(model, ckpt.tokenizer, chat.prompt(text) if chat else text, sampling, args,
                              echo=not chat)
            if chat:
                chat.reply(reply)
        except GptkitError as e:  # e.g. a prompt too long: say so and keep going
            print(f"error: {e}", file=sys.stderr)


class _Chat:
    """A conversation rendered by the checkpoint's chat template (the one fine-tuning used)."""

    def __init__(self, ckpt, system: str | None):
        from .data import Task

        self.task = Task.from_dict({**ckpt.meta.get("task", {}), "format": "chat"})
        self.eos = ckpt.tokenizer.eot_token
        self.messages = [{"role": "system", "content": system}] if system else []

    def prompt(self, text: str) -> str:
        self.messages.append({"role": "user", "content": text})
        return self.task.render_chat(self.messages, add_generation_prompt=True, eos_token=self.eos)

    def reply(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})


def _read_prompt(args) -> str:
    if not args.prompt_file:
        return _utf8(args.prompt, "--prompt")
    return _read_text_file(Path(args.prompt_file), "--prompt-file")


def _read_text_file(path: Path, flag: str) -> str:
    """A UTF-8 text file named by `flag`; a directory, a missing file or other bytes are one-line errors."""
    if path.is_dir():
        raise GptkitError(f"{flag} {path} is a directory; give a text file")
    if not path.is_file():
        raise GptkitError(f"{flag} {path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise GptkitError(f"{path} is not UTF-8 text (byte {e.start}); give a text file") from e


def _utf8(text: str, what: str) -> str:
    """Text from the command line; bytes that are not UTF-8 arrive as lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise GptkitError(f"{what} is not valid UTF-8 (at character {e.start})") from e
    return text


def _input(prompt: str) -> str:
    try:
        return input(prompt)
    except (EOFError, KeyboardInterrupt):
        return ""


def _complete(model, tokenizer, prompt: str, sampling, args, echo: bool = True) -> str:
    """Print the prompt (if echo) and its continuation(s): the best beam, or num_samples streamed samples.

    Returns the (last) continuation."""
    from .generate import beam_search_text, stream_text

    shown = prompt if echo else ""
    if args.beams > 1:
        text = beam_search_text(model, tokenizer, prompt, args.max_new_tokens, args.beams, args.length_penalty)
        print(shown + text)
        return text
    pieces = []
    for i in range(args.num_samples):
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        sys.stdout.write(shown)
        seed = None if args.seed is None else args.seed + i
        pieces = []
        for piece in stream_text(model, tokenizer, prompt, args.max_new_tokens, sampling, args.stop, seed,
                                 args.truncate):
            pieces.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    return "".join(pieces)


def _cmd_init(args) -> None:
    import torch

    from .checkpoint import save_checkpoint
    from .model import GPT
    from .tokenizer import Tokenizer

    model_keys = list(typing.get_type_hints(ModelConfig))
    for item in args.overrides:
        key = item.partition("=")[0].strip().removeprefix("model.")
        if key not in model_keys:
            raise GptkitError(f"init takes model settings only; {key!r} is not one ({', '.join(model_keys)})")
    config = load_config(RunConfig, args.config, args.overrides).model
    tokenizer = Tokenizer.load(args.tokenizer) if args.tokenizer else None
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise GptkitError(
            f"tokenizer has {tokenizer.vocab_size} tokens but vocab_size is {config.vocab_size}: "
            f"pass vocab_size={tokenizer.vocab_size}"
        )
    _check_output(args.out, args.force)
    torch.manual_seed(args.seed)
    save_checkpoint(args.out, GPT(config), tokenizer)
    print(f"wrote randomly initialised model to {args.out}")


def _cmd_import_hf(args) -> None:
    from .checkpoint import save_checkpoint
    from .hf import from_hf

    _check_output(args.out, args.force, args.source)
    model, tokenizer = from_hf(args.source)
    save_checkpoint(args.out, model, tokenizer, extra={"source": str(args.source)})
    print(f"converted {args.source} -> {args.out} ({model.num_params():,} parameters)")


def _cmd_export_hf(args) -> None:
    from .checkpoint import load_checkpoint
    from .hf import to_hf

    _check_output(args.out, args.force, args.checkpoint)
    ckpt = load_checkpoint(args.checkpoint)
    to_hf(ckpt.model, ckpt.tokenizer, args.out)
    print(f"wrote a transformers GPT-2 directory to {args.out}")


def _cmd_eval(args) -> None:
    if (args.text is None) == (args.task is None):
        raise GptkitError("say what to evaluate on: --text FILE (perplexity) or --task FILE (a task's scores)")
    if args.task is not None:
        _eval_task(args)
        return
    from .checkpoint import load_checkpoint
    from .eval import perplexity
    from .runtime import pick_device

    path = Path(args.text)
    text = _read_text_file(path, "--text")
    ckpt = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    if ckpt.tokenizer is None:
        raise GptkitError(f"{args.checkpoint} has no tokenizer.json, so the text cannot be encoded")
    ids = [i for piece in ckpt.tokenizer.encode_long(text) for i in piece]
    score = perplexity(ckpt.model.eval(), ids, args.stride, len(text.encode("utf-8")))
    result = {"checkpoint": str(args.checkpoint), "text": str(path), "tokens": score.tokens,
              "bytes": score.n_bytes, "window": score.window, "stride": score.stride,
              "nats_per_token": score.nats_per_token, "perplexity": score.ppl, "bits_per_byte": score.bits_per_byte}
    print(f"{path}: perplexity {score.ppl:.3f}, {score.bits_per_byte:.4f} bits/byte, "
          f"{score.nats_per_token:.4f} nats/token over {score.tokens:,} tokens (window {score.window}, "
          f"stride {score.stride})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def _task_checkpoint(args):
    """A fine-tuned checkpoint (with its task), ready for inference."""
    from .checkpoint import load_checkpoint
    from .data import Task
    from .quantize import for_inference
    from .runtime import pick_device

    ckpt = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    if ckpt.tokenizer is None or "task" not in ckpt.meta:
        raise GptkitError(f"{args.checkpoint} is not a fine-tuned checkpoint (no task or tokenizer): make one with "
                          f"`gptkit finetune`")
    args.max_new_tokens = args.max_new_tokens or ckpt.model.config.block_size // 2
    if min(args.beams, args.batch_size, args.max_new_tokens) < 1:
        raise GptkitError("--beams, --batch-size and --max-new-tokens must be at least 1")
    return for_inference(ckpt.model, args.dtype), ckpt.tokenizer, Task.from_dict(ckpt.meta["task"])


def _predict(model, tokenizer, task, records, args) -> list[str]:
    """Predictions for records, with a progress bar on stderr."""
    from tqdm import tqdm

    from .eval.tasks import predict

    quiet = len(records) <= args.batch_size
    with tqdm(total=len(records), desc=task.format, unit="ex", file=sys.stderr, disable=quiet) as bar:
        return predict(model, tokenizer, task, records, args.max_new_tokens, num_beams=args.beams,
                       length_penalty=args.length_penalty, batch_size=args.batch_size,
                       on_done=lambda n: bar.update(n - bar.n))


def _eval_task(args) -> None:
    from .data import read_records
    from .eval.tasks import score, write_results

    model, tokenizer, task = _task_checkpoint(args)
    _, records, stats = read_records(args.task, task)
    records = records[: args.limit] if args.limit else records
    predictions = _predict(model, tokenizer, task, records, args)
    scores = score(task, predictions, records)
    for s in scores.values():
        print(f"{args.task}: {s}")
    if args.out:
        meta = {"checkpoint": str(args.checkpoint), "data": str(args.task), "beams": args.beams,
                "malformed_skipped": stats.malformed}
        print(f"predictions and scores: {write_results(args.out, task, records, predictions, scores, meta)}")


def _cmd_translate(args) -> None:
    from .data import Record

    model, tokenizer, task = _task_checkpoint(args)
    if task.format != "translation":
        raise GptkitError(f"{args.checkpoint} was fine-tuned on {task.format} examples, not translation")
    if (args.input is None) == (not args.text):
        raise GptkitError("give the text to translate, or --input FILE (one sentence per line)")
    lines = _read_text_file(Path(args.input), "--input").splitlines() if args.input else args.text
    records = [Record({"source": _utf8(line, "the text").strip(), "target": ""}) for line in lines]
    for text in _predict(model, tokenizer, task, records, args):
        print(text)


def _cmd_finetune(args) -> None:
    from .config import FinetuneConfig

    config = load_config(FinetuneConfig, args.config, args.overrides)  # no --config: the defaults
    from .train import finetune

    _train(config.run, args.quiet, lambda on_step: finetune(config, on_step))


def _cmd_grow(args) -> None:
    from .checkpoint import load_checkpoint, save_checkpoint
    from .grow import grow_to

    if args.n_layer is None and args.width_factor is None:
        raise GptkitError("say how to grow: --n-layer N (deeper) and/or --width-factor K (wider)")
    if args.width_factor is not None and args.width_factor < 2:
        raise GptkitError(f"--width-factor must be 2 or more, got {args.width_factor}")
    _check_output(args.out, args.force, args.checkpoint)
    ckpt = load_checkpoint(args.checkpoint)
    c, factor = ckpt.model.config, args.width_factor or 1
    if args.n_layer is not None and args.n_layer <= c.n_layer:
        raise GptkitError(f"--n-layer must be larger than the checkpoint's {c.n_layer}, got {args.n_layer}")
    grown = grow_to(ckpt.model, c.grown(args.n_layer, factor), args.method, args.order).model
    save_checkpoint(args.out, grown, ckpt.tokenizer, extra={"grown_from": str(args.checkpoint)})
    c = grown.config
    print(f"wrote {args.out}: {c.n_layer} layers x {c.n_embd}, {grown.num_params():,} parameters")


def _check_output(out: str, force: bool, source: str | None = None) -> None:
    """An existing output is replaced only with --force, and never when it is the command's own input."""
    out_path = Path(out)
    if source is not None and out_path.resolve() == Path(source).resolve():
        raise GptkitError(f"{out} is the input of this command; write the output somewhere else")
    if (out_path.exists() or out_path.is_symlink()) and not force:
        raise GptkitError(f"{out} already exists; pass --force to replace it")


def _cmd_demo(args) -> None:
    """Shard the built-in corpus, train a small model for a few minutes, sample from it."""
    from .checkpoint import load_checkpoint
    from .data import prepare
    from .generate import Sampling, generate_text

    out = Path(args.out)
    run = load_config(RunConfig, "demo", [f"data={out / 'data'}", f"out_dir={out / 'train'}", *args.overrides])
    vocab = run.model.vocab_size
    print(f"1/3 prepare: clean builtin:python-docs, train a {vocab:,}-token byte-level BPE, write token shards")
    manifest = prepare(["builtin:python-docs"], out / "data", PrepareConfig(vocab_size=vocab))
    print(f"    {manifest['splits']['train']['tokens']:,} train and {manifest['splits']['val']['tokens']:,} "
          f"val tokens in {out / 'data'}")
    print(f"2/3 train: the demo preset, a few minutes on a CPU (metrics, loss.png, report.md in {out / 'train'})")
    _train(run, quiet=False)
    ckpt = load_checkpoint(out / "train" / "best")
    print("3/3 generate: three samples (temperature 0.8, top-k 50)")
    for i, prompt in enumerate(["The assert statement", "A class definition", "Exceptions"]):
        text = generate_text(ckpt.model.eval(), ckpt.tokenizer, prompt, 60, Sampling(0.8, top_k=50), seed=i)
        print(f"--- {prompt}{text}")
    print(f"\nnext: gptkit generate {out / 'train' / 'best'} --prompt \"...\"")


def _cmd_prepare(args) -> None:
    import time

    from tqdm import tqdm

    from .data import prepare
    from .tokenizer import Tokenizer

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
        raise GptkitError(f"say what to train: --config with a preset ({', '.join(presets())}) or a TOML file")
    from .train import train

    run = load_config(RunConfig, args.config, args.overrides)
    _train(run, args.quiet, lambda on_step: train(run, on_step))


def _train(run: RunConfig, quiet: bool, start) -> None:
    """Train (`start(on_step)`) with a progress bar on the main process; print where the best checkpoint is."""
    from tqdm import tqdm

    from .runtime import is_main_process

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


def _choices(cls: type, name: str) -> list[str]:
    """The allowed values of a Literal config field, for --help."""
    return list(typing.get_args(typing.get_type_hints(cls)[name]))


# prepare's flags that are shortcuts for config keys (dest = key); each defaults to the config's value
_PREPARE_SHORTCUTS = ("tokenizer", "vocab_size", "val_fraction", "seed", "shard_tokens", "text_field", "column",
                      "include", "txt_documents", "min_chars", "nfc", "strip_control", "dedup_exact", "dedup_near",
                      "redact_pii", "remove_stopwords")


def _add_prepare(sub) -> None:
    from .data import ReadOptions

    p = sub.add_parser("prepare", help="clean, tokenize and shard a corpus (files, directories, builtin:)",
                       usage="gptkit prepare SOURCE [SOURCE ...] --out DIR [--config FILE] [flags] [key=value ...]",
                       epilog="Flags are shortcuts for config keys; key=value sets any key of the prepare config "
                              "and its [read] and [clean] tables, e.g. near_threshold=0.7.")
    p.add_argument("sources", nargs="+", help="files, directories or builtin:python-docs (.gz accepted)")
    p.add_argument("--out", required=True, help="directory for shards, manifest.json and tokenizer.json")
    p.add_argument("--config", help="prepare config (TOML: top-level keys, [read], [clean])")
    p.add_argument("--tokenizer", dest="tokenizer_file", help="use this tokenizer.json instead of training one")
    p.add_argument("--tokenizer-type", dest="tokenizer", choices=_choices(PrepareConfig, "tokenizer"),
                   help="what to train (default bpe)")
    p.add_argument("--vocab-size", type=int, help="BPE vocabulary size (default 8192)")
    p.add_argument("--val-fraction", type=float, help="share of documents in val (default 0.1)")
    p.add_argument("--seed", type=int, help="decides the train/val split")
    p.add_argument("--shard-tokens", type=int, help="tokens per shard file")
    p.add_argument("--text-field", help="JSONL field with the text (default text)")
    p.add_argument("--column", help="CSV/Parquet column with the text (default text)")
    p.add_argument("--include", action="append", help="glob for files in directories (repeatable)")
    p.add_argument("--txt-documents", choices=_choices(ReadOptions, "txt_documents"),
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
    p.set_defaults(func=_cmd_prepare, takes_overrides=True)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate text from a checkpoint (streams to stdout)")
    p.add_argument("checkpoint", help="checkpoint directory")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--prompt", default="", help="prompt text (default: start from end-of-text)")
    source.add_argument("--prompt-file", help="read the prompt from this file")
    source.add_argument("-i", "--interactive", action="store_true", help="keep reading prompts from stdin")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8, help="0 for greedy decoding")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--min-p", type=float, default=None)
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats (1.2 is usual)")
    p.add_argument("--stop", action="append", default=[], help="stop at this text (not printed); repeatable")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    p.add_argument("--beams", type=int, default=1, help="beam search with this many beams (prints the best)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam search: > 0 favours longer outputs")
    p.add_argument("--truncate", action="store_true", help="keep the end of a prompt longer than the context")
    p.add_argument("--chat", action="store_true",
                   help="the prompt is a user message, rendered by the checkpoint's chat template")
    p.add_argument("--system", help="--chat: a system message to start the conversation with")
    p.add_argument("--dtype", default="auto", choices=typing.get_args(InferenceDtype),
                   help="weights: auto (bf16 where fast, else fp32), int8 is the fastest on a CPU")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.set_defaults(func=_cmd_generate)


def _add_decoding(p) -> None:
    p.add_argument("--beams", type=int, default=1, help="beam search with this many beams (1: greedy)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam search: > 0 favours longer outputs")
    p.add_argument("--batch-size", type=int, default=32, help="sentences decoded together (greedy)")
    p.add_argument("--max-new-tokens", type=int, help="default: half the context window")
    p.add_argument("--dtype", default="auto", choices=typing.get_args(InferenceDtype))
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gptkit", description="Build, train and use GPT-2-style models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    preset_help = f"a preset ({', '.join(presets())}) or a TOML file"

    p = sub.add_parser("info", help="describe a checkpoint: config, parameters, size")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.set_defaults(func=_cmd_info)

    _add_generate(sub)

    p = sub.add_parser("init", help="write a randomly initialised checkpoint from a model config",
                       usage="gptkit init OUT [--config NAME|FILE] [--tokenizer PATH] [key=value ...]",
                       epilog="key=value pairs override the config, e.g. n_layer=4 dropout=0.1")
    p.add_argument("out", help="checkpoint directory to write")
    p.add_argument("--config", help=f"run config whose [model] is used: {preset_help}")
    p.add_argument("--tokenizer", help="tokenizer.json (or a directory with one) to bundle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace OUT if it is an existing checkpoint")
    p.set_defaults(func=_cmd_init, takes_overrides=True)

    p = sub.add_parser("import-hf", help="convert a Hugging Face GPT-2 directory to a gptkit checkpoint")
    p.add_argument("source", help="directory with config.json and model.safetensors (or pytorch_model.bin)")
    p.add_argument("out", help="checkpoint directory to write")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an existing checkpoint")
    p.set_defaults(func=_cmd_import_hf)

    p = sub.add_parser("export-hf", help="write a checkpoint as a Hugging Face GPT-2 directory")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("out", help="directory to write (loadable by transformers' Auto classes)")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an earlier export")
    p.set_defaults(func=_cmd_export_hf)

    _add_prepare(sub)

    p = sub.add_parser("eval", help="perplexity of a checkpoint on a text, or a fine-tuned one's task scores",
                       usage="gptkit eval CKPT (--text FILE [--stride N] | --task FILE [--beams N]) [--out PATH]",
                       epilog="--text: a sliding window, each token scored once with at least window - stride tokens "
                              "of context; --out is a JSON file. --task: the checkpoint's task on these examples "
                              "(e.g. sacreBLEU BLEU and chrF for translation); --out is a directory for "
                              "predictions.jsonl and scores.json")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--text", help="UTF-8 text file to score")
    p.add_argument("--stride", type=int, help="tokens between window starts (default: the model's context)")
    p.add_argument("--task", help="examples in the checkpoint's task format (JSONL, or an aligned path with {lang})")
    p.add_argument("--limit", type=int, default=0, help="--task: the first N examples only")
    _add_decoding(p)
    p.add_argument("--out", help="where to write the results")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("translate", help="translate text with a fine-tuned translation checkpoint",
                       usage="gptkit translate CKPT (TEXT ... | --input FILE) [--beams N] [--batch-size B]")
    p.add_argument("checkpoint", help="checkpoint directory (from gptkit finetune)")
    p.add_argument("text", nargs="*", help="sentences to translate (quote each one)")
    p.add_argument("--input", help="a UTF-8 file: one sentence per line, one translation per output line")
    _add_decoding(p)
    p.set_defaults(func=_cmd_translate)

    p = sub.add_parser("grow", help="grow a checkpoint into a deeper or wider model (progressive training)",
                       epilog="identity and width growth keep the model's outputs; stack copies trained blocks")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("out", help="checkpoint directory to write")
    p.add_argument("--n-layer", type=int, help="grow to this many blocks")
    p.add_argument("--method", default="stack", choices=typing.get_args(DepthMethod),
                   help="stack: copies of the trained blocks; identity: new blocks that start as the identity")
    p.add_argument("--order", default="repeat", choices=typing.get_args(DepthOrder),
                   help="repeat: [1..L, 1..L] (stack) or new blocks last (identity); interleave: [1, 1, 2, 2, ...]")
    p.add_argument("--width-factor", type=int, help="grow n_embd and n_head this many times (Net2Net)")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an existing checkpoint")
    p.set_defaults(func=_cmd_grow)

    p = sub.add_parser("train", help="train (or resume) a model on token shards",
                       usage="gptkit train --config NAME|FILE [key=value ...]",
                       epilog="key=value (or model.key / train.key) overrides the config, e.g. lr=1e-3 n_layer=4. "
                              "Run again with the same out_dir to resume; under torchrun it trains with DDP.")
    p.add_argument("--config", help=f"run config ([model] and [train]): {preset_help}")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train, takes_overrides=True)

    p = sub.add_parser("finetune", help="fine-tune on task examples (translation, prompt/completion, Alpaca, chat)",
                       usage="gptkit finetune [--config NAME|FILE] [key=value ...]",
                       epilog="e.g. data=train.jsonl init=runs/base/best lora.rank=8. Run again with the same "
                              "out_dir to resume; under torchrun it trains with DDP.")
    p.add_argument("--config", help=f"fine-tuning config ([task], [lora], [train], [model]): {preset_help}")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_finetune, takes_overrides=True)

    p = sub.add_parser("demo", help="the tour: shard a corpus, train a small model for a few minutes, sample",
                       usage="gptkit demo [--out DIR] [key=value ...]",
                       epilog="key=value overrides the demo preset, e.g. max_steps=50 for a quick look")
    p.add_argument("--out", default="runs/demo", help="where to write data, checkpoints and report")
    p.set_defaults(func=_cmd_demo, takes_overrides=True)
    return parser


def _terminated(signum, frame):
    print("terminated", file=sys.stderr)
    _terminated.received = signum  # C code (e.g. a module import) can swallow the exception below
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C does, so half-written outputs are removed


_terminated.received = None


def main(argv: list[str] | None = None) -> int:
    """Run a command; exit status 0 done, 2 a user or environment fault, 130 Ctrl-C, 143 SIGTERM."""
    parser = build_parser()
    # `key=value` config overrides may appear anywhere after the subcommand
    args, extra = parser.parse_known_args(argv)
    args.overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    if len(args.overrides) != len(extra) or (extra and not getattr(args, "takes_overrides", False)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", force=True)
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread (e.g. called from a worker): leave signals alone
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args) -> int:
    try:
        args.func(args)
        if _terminated.received:  # the stop was swallowed and the command finished: its output is whole
            return 128 + _terminated.received
    except GptkitError as e:
        if args.verbose and e.__cause__ is not None:  # what went wrong underneath, for a bug report
            traceback.print_exception(e.__cause__)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `gptkit generate ... | head`
        return 0
    except OSError as e:  # the environment: a full disk, no permission, a read-only place
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    return 0
