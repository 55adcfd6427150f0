"""Hugging Face interop: `from_hf(dir)` and `to_hf(model, tokenizer, dir)`, for the gpt2, llama (Llama 2/3.x,
SmolLM2, TinyLlama), mistral, qwen2 and qwen3 families.

Each family is one mapping (`families.py`); this module reads and writes the
directory: config.json, the weights (safetensors, sharded or not; a
pytorch_model.bin only when it is plain tensors), the tokenizer with its special
tokens and chat template, and for exports a model card. Neither direction
needs transformers installed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import atomic_directory, read_version
from ..checkpoint import load_tensors
from ..config import ModelConfig
from ..errors import GptkitError
from ..files import writing
from ..model import GPT
from ..tokenizer import Tokenizer
from .card import model_card
from .families import FAMILIES, Family, Tensor, family_for, family_of_hf

__all__ = ["from_hf", "to_hf", "model_from_hf", "hf_state", "config_from_hf", "config_to_hf", "family_for",
           "FAMILIES", "Family"]

# Buffers some checkpoints carry (GPT-2's causal masks, rotary frequencies), not weights.
_IGNORED = re.compile(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$|\.rotary_emb\.inv_freq$")


def config_from_hf(hf: dict) -> ModelConfig:
    """ModelConfig from a transformers config.json dict; unsupported families and variants are errors."""
    return family_of_hf(hf).config_from_hf(hf)


def config_to_hf(config: ModelConfig, tokenizer: Tokenizer | None = None) -> dict:
    """The config.json of an export: the family that computes `config`, with the special tokens' ids."""
    hf = family_for(config).config_to_hf(config)
    eos = tokenizer.eot_id if tokenizer is not None and tokenizer.eot_id is not None else config.vocab_size - 1
    bos = tokenizer.bos_id if tokenizer is not None and tokenizer.bos_id is not None else eos
    return {**hf, "bos_token_id": bos, "eos_token_id": eos, "torch_dtype": "float32"}


def from_hf(path: str | Path) -> tuple[GPT, Tokenizer | None]:
    """Load a transformers checkpoint directory (e.g. a local copy of `gpt2` or SmolLM2), all from one version."""
    return read_version(path, _from_hf)


def _from_hf(path: Path) -> tuple[GPT, Tokenizer | None]:
    if not (path / "config.json").is_file():
        raise GptkitError(f"{path}: no config.json; expected a Hugging Face model directory")
    try:
        hf = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except ValueError as e:
        raise GptkitError(f"{path / 'config.json'}: corrupt JSON ({e})") from e
    family_of_hf(hf).config_from_hf(hf)  # an unsupported family or variant is named before reading weights
    model = model_from_hf(hf, _read_weights(path), path)
    has_tokenizer = (path / "tokenizer.json").is_file() or (path / "vocab.json").is_file()
    return model, Tokenizer.load(path) if has_tokenizer else None


def model_from_hf(hf: dict, theirs: dict[str, torch.Tensor], where: str | Path) -> GPT:
    """Our model from a transformers config dict and its tensors by their names (a directory's, or a GGUF
    file's renamed). `theirs` is consumed; `where` names the source in errors."""
    family = family_of_hf(hf)
    config = family.config_from_hf(hf)
    if family.model_type == "gpt2":  # the original upload names its tensors without `transformer.`
        theirs = {k if k.startswith(("transformer.", "lm_head.", "qa_outputs.")) else "transformer." + k: v
                  for k, v in theirs.items()}
    state = {}
    if "qa_outputs.weight" in theirs:  # a ...ForQuestionAnswering model: its start/end head is our span head
        config = dataclasses.replace(config, span_head=True)
        state = {f"span_head.{k}": theirs.pop(f"qa_outputs.{k}") for k in ("weight", "bias")}
    if config.tie_embeddings and "lm_head.weight" in theirs:
        head, embedding = theirs.pop("lm_head.weight"), theirs.get(family.tensors(config)[0].theirs[0])
        if embedding is not None and not torch.equal(head, embedding):
            raise GptkitError(f"{where}: lm_head.weight differs from the token embedding, but config.json says "
                              f"tie_word_embeddings; the checkpoint contradicts itself")
    for tensor in family.tensors(config):
        state[tensor.ours] = _gather(tensor, theirs, where, family)
    leftover = [k for k in theirs if not _IGNORED.search(k)]
    if leftover:
        raise GptkitError(f"{where}: unexpected tensors {', '.join(sorted(leftover)[:3])}")
    model = GPT(config)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as e:
        raise GptkitError(f"{where}: weights do not match config.json ({e})") from e
    return model


def _gather(tensor: Tensor, theirs: dict[str, torch.Tensor], where: str | Path, family: Family) -> torch.Tensor:
    parts = []
    for name in tensor.theirs:
        if name not in theirs:
            raise GptkitError(f"{where}: weights lack {name!r}; is this a {family.model_type} checkpoint?")
        t = theirs.pop(name)
        parts.append(t.t() if tensor.transposed else t)
    return torch.cat(parts).contiguous() if len(parts) > 1 else parts[0].contiguous()


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        if (path / "model.safetensors").is_file():
            return load_file(str(path / "model.safetensors"))
        index = path / "model.safetensors.index.json"
        if index.is_file():  # sharded: the index names the file of every tensor
            files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            return {k: v for name in files for k, v in load_file(str(path / name)).items()}
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise GptkitError(f"{path}: corrupt or truncated safetensors weights ({e})") from e
    if (path / "pytorch_model.bin").is_file():
        return load_tensors(path / "pytorch_model.bin", "convert the model to model.safetensors with a tool you "
                            "trust, or get a safetensors copy")
    raise GptkitError(f"{path}: no model.safetensors (or its shards) or pytorch_model.bin")


def to_hf(model: GPT, tokenizer: Tokenizer | None, path: str | Path, chat_template: str | None = None,
          about: dict | None = None) -> Path:
    """Write a directory that transformers' Auto classes (and vLLM) load, atomically: the model in the family
    that computes it, the tokenizer (if given) with its special tokens and `chat_template` (default: the
    tokenizer's own), and a model card (README.md) from `about` (a checkpoint's config.json: data, training).

    An existing export is replaced; any other existing directory with files in it is an error.
    """
    path, config = Path(path), model.config
    family = family_for(config)
    hf = config_to_hf(config, tokenizer)
    state = hf_state(model)
    if model.span_head is not None:  # exported as ...ForQuestionAnswering (which has no LM head)
        if family.model_type != "gpt2":
            raise GptkitError("a span head exports with GPT-2's block only (GPT2ForQuestionAnswering)")
        hf["architectures"] = ["GPT2ForQuestionAnswering"]
        head = model.span_head.state_dict()
        state.update({f"qa_outputs.{k}": v.detach().cpu().contiguous() for k, v in head.items()})
    with atomic_directory(path, ours=_is_export) as version, writing(path):
        save_file(state, str(version / "model.safetensors"), metadata={"format": "pt"})
        (version / "config.json").write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")
        (version / "generation_config.json").write_text(json.dumps(
            {"bos_token_id": hf["bos_token_id"], "eos_token_id": hf["eos_token_id"]}, indent=2) + "\n")
        if tokenizer is not None:
            _write_tokenizer(tokenizer, version, config.block_size, family, chat_template)
        (version / "README.md").write_text(model_card(model, family.architecture, tokenizer, about or {}),
                                           encoding="utf-8")
    return path


def hf_state(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights under transformers' names in the family that computes it (no span head)."""
    config, ours = model.config, model.state_dict()
    family = family_for(config)
    state = {}
    for tensor in family.tensors(config):
        state.update(_scatter(tensor, ours[tensor.ours].detach().cpu(), config))
    return state


def _scatter(tensor: Tensor, ours: torch.Tensor, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Our parameter as their tensors: split where we fuse (q/k/v by heads, gate/up in halves)."""
    if len(tensor.theirs) == 3:
        q, kv = config.n_head * config.head_size, config.kv_heads * config.head_size
        parts = ours.split([q, kv, kv])
    elif len(tensor.theirs) == 2:
        parts = ours.chunk(2)
    else:
        parts = (ours,)
    return {name: (t.t() if tensor.transposed else t).contiguous() for name, t in zip(tensor.theirs, parts)}


def _is_export(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type") in FAMILIES
    except (OSError, ValueError, AttributeError):
        return False


def _write_tokenizer(tokenizer: Tokenizer, path: Path, max_length: int, family: Family,
                     chat_template: str | None) -> None:
    tokenizer.save(path / "tokenizer.json")
    settings = {**tokenizer.settings(), "model_max_length": max_length, "add_prefix_space": False}
    if chat_template or tokenizer.chat_template:
        settings["chat_template"] = chat_template or tokenizer.chat_template
    if family.model_type == "gpt2":  # GPT-2's slow tokenizer reads vocab.json + merges.txt
        tokenizer.backend.model.save(str(path))
        eot = tokenizer.eot_token
        settings.update(tokenizer_class="GPT2Tokenizer", bos_token=settings.get("bos_token", eot), unk_token=eot)
    (path / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
