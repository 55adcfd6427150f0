"""LoRA: low-rank adapters on chosen projections, as a module transform (the model classes stay as they are).

    apply_lora(model, LoraConfig(rank=8, alpha=16))   # swaps the targets' nn.Linear; only adapters train
    save_adapters(model, "runs/adapter")              # adapter_config.json + adapter_model.safetensors (PEFT)
    load_adapters(model, "runs/adapter")              # onto a plain GPT of the same shape (or PEFT's files)
    merge_lora(model)                                 # fold the adapters into the weights: a plain GPT again

Each adapted projection computes y = W x + b + (alpha / r) B A x, with A (r, in)
random and B (out, r) zero at the start, so training starts from the base
model's function (Hu et al., 2021). The saved adapters use PEFT's names and
config, so `peft.PeftModel.from_pretrained` loads them on top of the model that
`gptkit export-hf` writes and computes the same logits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from .atomic import atomic_directory, read_version
from .config import LORA_TARGETS, LoraConfig
from .errors import GptkitError
from .hf import KEY_MAP
from .model import GPT

# our projection -> the module of transformers' GPT-2 that holds the same weight: the transposed (Conv1D) ones
TARGETS = {ours.removeprefix("blocks.{i}.").removesuffix(".weight"):
           theirs.removeprefix("h.{i}.").removesuffix(".weight") for ours, theirs, transposed in KEY_MAP if transposed}
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
assert tuple(TARGETS) == LORA_TARGETS, "config.LORA_TARGETS must name the projections hf.KEY_MAP maps"


class LoraLinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update (alpha / r) B A."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear and PEFT initialise A
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.T) @ self.lora_B.T * self.scale

    def merged(self) -> nn.Linear:
        with torch.no_grad():
            self.base.weight += self.scale * (self.lora_B @ self.lora_A).to(self.base.weight.dtype)
        return self.base.requires_grad_(True)


DEFAULT = LoraConfig(rank=8)


def apply_lora(model: GPT, config: LoraConfig = DEFAULT) -> GPT:
    """Freeze `model` and give each target projection of every block an adapter (in place; returns it)."""
    if config.rank < 1:
        raise GptkitError(f"LoRA needs rank >= 1, got {config.rank}")
    for target in config.targets:
        if isinstance(getattr(*_parent(model.blocks[0], target)), LoraLinear):
            raise GptkitError(f"{target} already has a LoRA adapter; merge_lora first to stack another")
    smallest = min(min(getattr(*_parent(block, t)).weight.shape) for block in model.blocks for t in config.targets)
    if config.rank > smallest:
        raise GptkitError(f"lora.rank {config.rank} is above the size of the layers it adapts (the smallest is "
                          f"{smallest} wide, where an adapter is already full rank): use a rank <= {smallest}")
    model.requires_grad_(False)
    for block in model.blocks:
        for target in config.targets:
            parent, name = _parent(block, target)
            setattr(parent, name, LoraLinear(getattr(parent, name), config.rank, config.alpha, config.dropout))
    model.lora_config = config
    return model


def merge_lora(model: GPT) -> GPT:
    """Fold every adapter into its weight (in place): a plain, fully trainable GPT that computes the same."""
    for block in model.blocks:
        for target in TARGETS:
            parent, name = _parent(block, target)
            if isinstance(getattr(parent, name), LoraLinear):
                setattr(parent, name, getattr(parent, name).merged())
    model.requires_grad_(True)
    model.__dict__.pop("lora_config", None)
    return model


def adapter_state(model: GPT) -> dict[str, torch.Tensor]:
    """The adapters' weights (what a LoRA run trains), by their names in the model's state dict."""
    return {k: v for k, v in model.state_dict().items() if ".lora_" in k}


def save_adapters(model: GPT, path: str | Path, base_model: str = "") -> Path:
    """The adapters alone, in PEFT's format (atomically): small, and loadable by peft.PeftModel."""
    config: LoraConfig | None = getattr(model, "lora_config", None)
    if config is None:
        raise GptkitError("the model has no LoRA adapters: apply_lora first")
    tensors = {}
    for i, block in enumerate(model.blocks):
        for target in config.targets:
            module = getattr(*_parent(block, target))
            for name in ("lora_A", "lora_B"):
                tensors[_peft_name(i, target, name)] = getattr(module, name).detach().float().cpu().contiguous()
    peft_config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model or None,
        "r": config.rank, "lora_alpha": config.alpha, "lora_dropout": config.dropout, "bias": "none",
        "target_modules": [TARGETS[t] for t in config.targets], "fan_in_fan_out": True,  # GPT-2's Conv1D
        "inference_mode": True, "modules_to_save": None,
    }
    path = Path(path)
    with atomic_directory(path, ours=lambda p: (p / CONFIG_FILE).is_file()) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(json.dumps(peft_config, indent=2) + "\n", encoding="utf-8")
    return path


def load_adapters(model: GPT, path: str | Path) -> GPT:
    """Apply the adapters saved at `path` (by save_adapters, or PEFT for a GPT-2 of this shape) to `model`."""
    path = Path(path)
    saved, tensors = read_version(path, _read_adapters)
    modules = {theirs: ours for ours, theirs in TARGETS.items()}
    targets = saved.get("target_modules") or []
    if saved.get("peft_type") != "LORA" or any(t not in modules for t in targets):
        raise GptkitError(f"{path}: not LoRA adapters on GPT-2 projections ({', '.join(TARGETS.values())})")
    config = LoraConfig(saved["r"], float(saved["lora_alpha"]), float(saved.get("lora_dropout", 0.0)),
                        tuple(modules[t] for t in targets))
    apply_lora(model, config)
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            for target in config.targets:
                module = getattr(*_parent(block, target))
                for name in ("lora_A", "lora_B"):
                    param, tensor = getattr(module, name), tensors.get(_peft_name(i, target, name))
                    if tensor is None or tensor.shape != param.shape:
                        raise GptkitError(f"{path}: {_peft_name(i, target, name)} is missing or not of shape "
                                          f"{tuple(param.shape)}: adapters for another model")
                    param.copy_(tensor)
    return model


def _read_adapters(path: Path) -> tuple[dict, dict]:
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise GptkitError(f"{path}: no {CONFIG_FILE} and {WEIGHTS_FILE}; give a directory that save_adapters wrote")
    return json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")), load_file(str(path / WEIGHTS_FILE))


def _peft_name(block: int, target: str, name: str) -> str:
    """PEFT's key for one adapter matrix of transformers' GPT2LMHeadModel."""
    return f"base_model.model.transformer.h.{block}.{TARGETS[target]}.{name}.weight"


def _parent(block: nn.Module, target: str) -> tuple[nn.Module, str]:
    owner, name = target.split(".")
    return getattr(block, owner), name
