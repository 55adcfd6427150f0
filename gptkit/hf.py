"""Hugging Face GPT-2 interop: `from_hf(dir)` and `to_hf(model, tokenizer, dir)`.

One table maps our parameter names to transformers' `GPT2LMHeadModel` names.
GPT-2 stores its Linear layers as `Conv1D` with the weight transposed, (in, out),
hence the transpose flag. Neither direction needs transformers installed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .atomic import atomic_directory, read_version
from .checkpoint import load_tensors
from .config import ModelConfig
from .errors import GptkitError
from .files import writing
from .model import GPT
from .tokenizer import Tokenizer

# (our name, Hugging Face name, transposed); {i} is the block index.
KEY_MAP = [
    ("wte.weight", "wte.weight", False),
    ("wpe.weight", "wpe.weight", False),
    ("blocks.{i}.ln_1.weight", "h.{i}.ln_1.weight", False),
    ("blocks.{i}.ln_1.bias", "h.{i}.ln_1.bias", False),
    ("blocks.{i}.attn.qkv.weight", "h.{i}.attn.c_attn.weight", True),
    ("blocks.{i}.attn.qkv.bias", "h.{i}.attn.c_attn.bias", False),
    ("blocks.{i}.attn.proj.weight", "h.{i}.attn.c_proj.weight", True),
    ("blocks.{i}.attn.proj.bias", "h.{i}.attn.c_proj.bias", False),
    ("blocks.{i}.ln_2.weight", "h.{i}.ln_2.weight", False),
    ("blocks.{i}.ln_2.bias", "h.{i}.ln_2.bias", False),
    ("blocks.{i}.mlp.fc.weight", "h.{i}.mlp.c_fc.weight", True),
    ("blocks.{i}.mlp.fc.bias", "h.{i}.mlp.c_fc.bias", False),
    ("blocks.{i}.mlp.proj.weight", "h.{i}.mlp.c_proj.weight", True),
    ("blocks.{i}.mlp.proj.bias", "h.{i}.mlp.c_proj.bias", False),
    ("ln_f.weight", "ln_f.weight", False),
    ("ln_f.bias", "ln_f.bias", False),
]
_HF_PREFIX = "transformer."
# Buffers that older GPT-2 checkpoints carry (causal masks), not weights.
_HF_IGNORED = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")
_GELU_TANH = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"}


def _name_pairs(n_layer: int):
    """Yield (ours, theirs, transposed) for every parameter of an n_layer model."""
    for ours, theirs, transposed in KEY_MAP:
        layers = range(n_layer) if "{i}" in ours else [None]
        for i in layers:
            yield ours.format(i=i), theirs.format(i=i), transposed


def config_from_hf(hf: dict) -> ModelConfig:
    """ModelConfig from a transformers GPT-2 config.json dict; unsupported variants are errors."""
    if hf.get("model_type") != "gpt2":
        raise GptkitError(f"model_type {hf.get('model_type')!r} is not supported: only 'gpt2' checkpoints load")
    n_embd = hf.get("n_embd", 768)
    unsupported = []
    if hf.get("activation_function", "gelu_new") not in _GELU_TANH:
        unsupported.append(f"activation_function={hf['activation_function']!r}")
    if hf.get("n_inner") not in (None, 4 * n_embd):
        unsupported.append(f"n_inner={hf['n_inner']}")
    if hf.get("scale_attn_by_inverse_layer_idx", False) or not hf.get("scale_attn_weights", True):
        unsupported.append("non-standard attention scaling")
    if not hf.get("tie_word_embeddings", True):
        unsupported.append("untied LM head")
    if unsupported:
        raise GptkitError(f"this GPT-2 variant is not supported: {', '.join(unsupported)}")
    resid, attn = float(hf.get("resid_pdrop", 0.0)), float(hf.get("attn_pdrop", 0.0))
    return ModelConfig(
        vocab_size=hf.get("vocab_size", 50257), block_size=hf.get("n_positions", 1024),
        n_layer=hf.get("n_layer", 12), n_head=hf.get("n_head", 12), n_embd=n_embd,
        dropout=resid, attn_dropout=None if attn == resid else attn, bias=True,
        layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
    )


def config_to_hf(config: ModelConfig, tokenizer: Tokenizer | None) -> dict:
    if not config.bias:
        raise GptkitError("GPT-2 in transformers always has biases: a bias=false model cannot be exported")
    eot = tokenizer.eot_id if tokenizer is not None and tokenizer.eot_id is not None else config.vocab_size - 1
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": config.vocab_size, "n_positions": config.block_size, "n_embd": config.n_embd,
        "n_layer": config.n_layer, "n_head": config.n_head, "n_inner": None,
        "activation_function": "gelu_new", "layer_norm_epsilon": config.layer_norm_eps,
        "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.attention_dropout,
        "initializer_range": 0.02, "scale_attn_weights": True, "tie_word_embeddings": True,
        "use_cache": True, "bos_token_id": eot, "eos_token_id": eot, "torch_dtype": "float32",
    }


def _read_hf_weights(path: Path) -> dict[str, torch.Tensor]:
    if (path / "model.safetensors").is_file():
        try:
            return load_file(str(path / "model.safetensors"))
        except (SafetensorError, OSError) as e:
            raise GptkitError(f"{path / 'model.safetensors'}: corrupt or truncated ({e})") from e
    if (path / "pytorch_model.bin").is_file():
        return load_tensors(path / "pytorch_model.bin", "convert the model to model.safetensors with a tool you "
                            "trust, or get a safetensors copy")
    raise GptkitError(f"{path}: no model.safetensors or pytorch_model.bin")


def from_hf(path: str | Path) -> tuple[GPT, Tokenizer | None]:
    """Load a transformers GPT-2 checkpoint directory (e.g. a local copy of `gpt2`), all from one version."""
    return read_version(path, _from_hf)


def _from_hf(path: Path) -> tuple[GPT, Tokenizer | None]:
    if not (path / "config.json").is_file():
        raise GptkitError(f"{path}: no config.json; expected a Hugging Face GPT-2 model directory")
    try:
        config = config_from_hf(json.loads((path / "config.json").read_text(encoding="utf-8")))
    except ValueError as e:
        raise GptkitError(f"{path / 'config.json'}: corrupt JSON ({e})") from e
    theirs = {k.removeprefix(_HF_PREFIX): v for k, v in _read_hf_weights(path).items()}
    state = {}
    if "qa_outputs.weight" in theirs:  # GPT2ForQuestionAnswering: its start/end head is our span head
        config = dataclasses.replace(config, span_head=True)
        state = {f"span_head.{k}": theirs.pop(f"qa_outputs.{k}") for k in ("weight", "bias")}
    head = theirs.pop("lm_head.weight", None)
    if head is not None and not torch.equal(head, theirs.get("wte.weight", head)):
        raise GptkitError(f"{path}: lm_head.weight differs from wte.weight; untied heads are not supported")
    for ours, name, transposed in _name_pairs(config.n_layer):
        if name not in theirs:
            raise GptkitError(f"{path}: weights lack {name!r}; is this a GPT-2 checkpoint?")
        t = theirs.pop(name)
        state[ours] = t.t().contiguous() if transposed else t
    leftover = [k for k in theirs if not _HF_IGNORED.match(k)]
    if leftover:
        raise GptkitError(f"{path}: unexpected tensors {', '.join(sorted(leftover)[:3])}")
    model = GPT(config)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as e:
        raise GptkitError(f"{path}: weights do not match config.json ({e})") from e
    has_tokenizer = (path / "tokenizer.json").is_file() or (path / "vocab.json").is_file()
    return model, Tokenizer.load(path) if has_tokenizer else None


def to_hf(model: GPT, tokenizer: Tokenizer | None, path: str | Path) -> Path:
    """Write a directory that transformers' Auto classes load (model, and tokenizer if given), atomically.

    An existing export is replaced; any other existing directory with files in it is an error.
    """
    path = Path(path)
    config = config_to_hf(model.config, tokenizer)
    ours = model.state_dict()
    state = {}
    for name, theirs, transposed in _name_pairs(model.config.n_layer):
        t = ours[name].detach().cpu()
        state[_HF_PREFIX + theirs] = (t.t() if transposed else t).contiguous()
    if model.span_head is not None:  # exported as GPT2ForQuestionAnswering (which has no LM head)
        config["architectures"] = ["GPT2ForQuestionAnswering"]
        head = model.span_head.state_dict()
        state.update({f"qa_outputs.{k}": v.detach().cpu().contiguous() for k, v in head.items()})
    with atomic_directory(path, ours=_is_gpt2_export) as version, writing(path):
        save_file(state, str(version / "model.safetensors"), metadata={"format": "pt"})
        (version / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (version / "generation_config.json").write_text(json.dumps(
            {"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"]}, indent=2) + "\n")
        if tokenizer is not None:
            _write_hf_tokenizer(tokenizer, version, model.config.block_size)
    return path


def _is_gpt2_export(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type") == "gpt2"
    except (OSError, ValueError, AttributeError):
        return False


def _write_hf_tokenizer(tokenizer: Tokenizer, path: Path, max_length: int) -> None:
    tokenizer.save(path / "tokenizer.json")
    tokenizer.backend.model.save(str(path))  # vocab.json + merges.txt for the slow tokenizer
    eot = tokenizer.eot_token
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "model_max_length": max_length,
        "bos_token": eot, "eos_token": eot, "unk_token": eot,
    }, indent=2) + "\n", encoding="utf-8")
