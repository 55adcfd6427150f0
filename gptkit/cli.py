"""`gptkit` command line: argument parsing and error printing over the Python API."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from .errors import GptkitError

log = logging.getLogger("gptkit")


def _cmd_info(args) -> None:
    from .checkpoint import read_config, weight_shapes

    config, meta = read_config(args.checkpoint)
    n_params = sum(math.prod(shape) for shape in weight_shapes(args.checkpoint).values())
    files = [f for f in Path(args.checkpoint).iterdir() if f.is_file()]
    rows = {"checkpoint": args.checkpoint, **vars(config)}
    n_pos = config.block_size * config.n_embd
    rows["parameters"] = f"{n_params:,} ({n_params - n_pos:,} without position embeddings)"
    rows["size"] = f"{sum(f.stat().st_size for f in files) / 2**20:.1f} MiB on disk"
    rows["files"] = ", ".join(sorted(f.name for f in files))
    rows.update(meta)
    for key, value in rows.items():
        print(f"{key:<15} {value}")


def _cmd_generate(args) -> None:
    from .checkpoint import load_checkpoint
    from .generate import Sampling, stream
    from .runtime import pick_device

    ckpt = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    if ckpt.tokenizer is None:
        raise GptkitError(f"{args.checkpoint} has no tokenizer.json, so text prompts cannot be encoded")
    if args.prompt_file:
        if not Path(args.prompt_file).is_file():
            raise GptkitError(f"prompt file not found: {args.prompt_file}")
        prompt = Path(args.prompt_file).read_text(encoding="utf-8")
    else:
        prompt = args.prompt
    tok = ckpt.tokenizer
    ids = tok.encode(prompt) if prompt else [tok.eot_id]
    sampling = Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    stop = (tok.eot_id,) if tok.eot_id is not None else ()
    ckpt.model.eval()
    for i in range(args.num_samples):
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        sys.stdout.write(prompt)
        new: list[int] = []
        printed = ""
        seed = None if args.seed is None else args.seed + i
        for token in stream(ckpt.model, ids, args.max_new_tokens, sampling, stop, seed):
            if token in stop:
                break
            new.append(token)
            # decode the whole continuation: a character may span several byte-level tokens
            text = tok.decode(new)
            if not text.endswith("\ufffd"):
                sys.stdout.write(text[len(printed):])
                sys.stdout.flush()
                printed = text
        sys.stdout.write(tok.decode(new)[len(printed):] + "\n")


def _cmd_init(args) -> None:
    import torch

    from .checkpoint import save_checkpoint
    from .config import ModelConfig, load_config
    from .model import GPT
    from .tokenizer import Tokenizer

    config = load_config(ModelConfig, args.config, args.overrides)
    tokenizer = Tokenizer.load(args.tokenizer) if args.tokenizer else None
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise GptkitError(
            f"tokenizer has {tokenizer.vocab_size} tokens but vocab_size is {config.vocab_size}: "
            f"pass vocab_size={tokenizer.vocab_size}"
        )
    torch.manual_seed(args.seed)
    save_checkpoint(args.out, GPT(config), tokenizer)
    print(f"wrote randomly initialised model to {args.out}")


def _cmd_import_hf(args) -> None:
    from .checkpoint import save_checkpoint
    from .hf import from_hf

    model, tokenizer = from_hf(args.source)
    save_checkpoint(args.out, model, tokenizer, extra={"source": str(args.source)})
    print(f"converted {args.source} -> {args.out} ({model.num_params():,} parameters)")


def _cmd_export_hf(args) -> None:
    from .checkpoint import load_checkpoint
    from .hf import to_hf

    ckpt = load_checkpoint(args.checkpoint)
    to_hf(ckpt.model, ckpt.tokenizer, args.out)
    print(f"wrote a transformers GPT-2 directory to {args.out}")


def _cmd_demo(args) -> None:
    """Train a BPE tokenizer on the built-in corpus, build a tiny model, save, describe, generate."""
    import torch

    from .checkpoint import save_checkpoint
    from .config import ModelConfig
    from .data import read_documents
    from .generate import Sampling, generate
    from .model import GPT
    from .tokenizer import Tokenizer

    out = Path(args.out)
    print("training a 2,048-token byte-level BPE on builtin:python-docs ...")
    tokenizer = Tokenizer.train_bpe(read_documents("builtin:python-docs"), vocab_size=2048)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, block_size=128, n_layer=2, n_head=4, n_embd=64)
    torch.manual_seed(0)
    model = GPT(config)
    save_checkpoint(out, model, tokenizer)
    _cmd_info(argparse.Namespace(checkpoint=out))
    prompt = "The assert statement"
    ids = generate(model.eval(), tokenizer.encode(prompt), 40, Sampling(temperature=0.8), seed=0)
    print(f"\nsample (untrained weights until `gptkit train` lands):\n{prompt}{tokenizer.decode(ids)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gptkit", description="Build, train and use GPT-2-style models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="describe a checkpoint: config, parameters, size")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("generate", help="generate text from a checkpoint (streams to stdout)")
    p.add_argument("checkpoint", help="checkpoint directory")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--prompt", default="", help="prompt text (default: start from end-of-text)")
    source.add_argument("--prompt-file", help="read the prompt from this file")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8, help="0 for greedy decoding")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("init", help="write a randomly initialised checkpoint from a model config",
                       usage="gptkit init OUT [--config FILE] [--tokenizer PATH] [key=value ...]",
                       epilog="key=value pairs override the config file, e.g. n_layer=4 dropout=0.1")
    p.add_argument("out", help="checkpoint directory to write")
    p.add_argument("--config", help="model config file (TOML), e.g. configs/tiny.toml")
    p.add_argument("--tokenizer", help="tokenizer.json (or a directory with one) to bundle")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_init, takes_overrides=True)

    p = sub.add_parser("import-hf", help="convert a Hugging Face GPT-2 directory to a gptkit checkpoint")
    p.add_argument("source", help="directory with config.json and model.safetensors (or pytorch_model.bin)")
    p.add_argument("out", help="checkpoint directory to write")
    p.set_defaults(func=_cmd_import_hf)

    p = sub.add_parser("export-hf", help="write a checkpoint as a Hugging Face GPT-2 directory")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("out", help="directory to write (loadable by transformers' Auto classes)")
    p.set_defaults(func=_cmd_export_hf)

    p = sub.add_parser("demo", help="the quick tour: tokenizer, model, checkpoint, generation")
    p.add_argument("--out", default="runs/demo", help="where to write the checkpoint")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `key=value` config overrides may appear anywhere after the subcommand
    args, extra = parser.parse_known_args(argv)
    args.overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    if len(args.overrides) != len(extra) or (extra and not getattr(args, "takes_overrides", False)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        args.func(args)
    except GptkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `gptkit generate ... | head`
        return 0
    return 0
