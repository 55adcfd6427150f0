"""LoRA: low-rank adapters on chosen projection roles, as a module transform (the model classes stay as they are).

    apply_lora(model, LoraConfig(rank=8, alpha=16))   # swaps the targets' nn.Linear; only adapters train
    save_adapters(model, "runs/adapter")              # adapter_config.json + adapter_model.safetensors (PEFT)
    load_adapters(model, "runs/adapter")              # onto a plain GPT of the same shape (or PEFT's files)
    merge_lora(model)                                 # fold the adapters into the weights: a plain GPT again

Each adapted role computes y = W x + b + (alpha / r) B A x, with A (r, in)
random and B (out, r) zero at the start, so training starts from the base
model's function (Hu et al., 2021). Targets are roles (q, k, v, o, gate, up,
down): where one Linear holds several roles (our fused q/k/v and gate/up), each
targeted role gets its own A and B on its own rows, exactly as if the weights were
separate. The saved adapters use PEFT's names for the model's Hugging Face family,
so `peft.PeftModel.from_pretrained` loads them on top of the model that
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
from .config import LoraConfig
from .errors import GptkitError
from .hf import Family, family_for
from .model import GPT

CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"


class LoraLinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update (alpha / r) B_i A_i for each adapted role i.

    The roles' A stack into one (n r, in) matrix and their B into one (out, n r) matrix whose
    block i is kept to role i's rows by a fixed mask: one pair of matmuls serves every role.
    """

    def __init__(self, base: nn.Linear, roles: list[tuple[str, slice | None]], rank: int, alpha: float,
                 dropout: float = 0.0):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.roles, self.rank = [role for role, _ in roles], rank
        self.rows = [rows or slice(0, base.out_features) for _, rows in roles]
        n, device = len(roles), base.weight.device
        self.lora_A = nn.Parameter(torch.empty(n * rank, base.in_features, device=device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, n * rank, device=device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear and PEFT initialise A
        mask = torch.zeros(base.out_features, n * rank, device=device)
        for i, rows in enumerate(self.rows):
            mask[rows, i * rank : (i + 1) * rank] = 1
        self.register_buffer("mask", None if bool(mask.all()) else mask, persistent=False)
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def update(self) -> torch.Tensor:
        """B, with each role's block on its own rows only: (out, n r)."""
        return self.lora_B if self.mask is None else self.lora_B * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.T) @ self.update().T * self.scale

    def role(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Role i's own adapter: A_i (r, in) and B_i (its rows, r)."""
        cols = slice(i * self.rank, (i + 1) * self.rank)
        return self.lora_A[cols], self.lora_B[self.rows[i], cols]

    def merged(self) -> nn.Linear:
        with torch.no_grad():
            self.base.weight += self.scale * (self.update() @ self.lora_A).to(self.base.weight.dtype)
        return self.base.requires_grad_(True)


DEFAULT = LoraConfig(rank=8)


def _targets(block: nn.Module, roles: tuple[str, ...]) -> list[tuple[nn.Module, str, list[tuple[str, slice | None]]]]:
    """The block's Linears that hold targeted roles: (parent, attribute, [(role, rows)])."""
    linears: dict[int, tuple[nn.Module, str, list]] = {}
    for p in block.projections():
        if p.role in roles:
            linears.setdefault(id(p.linear), (p.parent, p.name, []))[2].append((p.role, p.rows))
    return list(linears.values())


def apply_lora(model: GPT, config: LoraConfig = DEFAULT, ranks: dict[str, tuple[int, float]] | None = None) -> GPT:
    """Freeze `model` and give each target role of every block an adapter (in place; returns it).

    `ranks` maps a role to its own (rank, alpha), where adapters loaded from PEFT differ per module.
    """
    if config.rank < 1:
        raise GptkitError(f"LoRA needs rank >= 1, got {config.rank}")
    targets = _targets(model.blocks[0], config.targets)
    if not targets:
        raise GptkitError(f"this model has no {', '.join(config.targets)} projections to adapt: its blocks have "
                          f"{', '.join(p.role for p in model.blocks[0].projections())}")
    if any(isinstance(getattr(parent, name), LoraLinear) for parent, name, _ in targets):
        raise GptkitError("the model already has LoRA adapters; merge_lora first to stack another")
    smallest = min(min(getattr(parent, name).in_features, rows.stop - rows.start if rows else
                       getattr(parent, name).out_features) for parent, name, roles in targets for _, rows in roles)
    if config.rank > smallest:
        raise GptkitError(f"lora.rank {config.rank} is above the size of the layers it adapts (the smallest is "
                          f"{smallest} wide, where an adapter is already full rank): use a rank <= {smallest}")
    model.requires_grad_(False)
    for block in model.blocks:
        for parent, name, roles in _targets(block, config.targets):
            rank, alpha = (ranks or {}).get(roles[0][0], (config.rank, config.alpha))
            setattr(parent, name, LoraLinear(getattr(parent, name), roles, rank, alpha, config.dropout))
    model.lora_config = config
    return model


def merge_lora(model: GPT) -> GPT:
    """Fold every adapter into its weight (in place): a plain, fully trainable GPT that computes the same."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoraLinear):
                setattr(module, name, child.merged())
    model.requires_grad_(True)
    model.__dict__.pop("lora_config", None)
    return model


def adapter_state(model: GPT) -> dict[str, torch.Tensor]:
    """The adapters' weights (what a LoRA run trains), by their names in the model's state dict."""
    return {k: v for k, v in model.state_dict().items() if ".lora_" in k}


def _adapters(block: nn.Module) -> list[LoraLinear]:
    return [m for m in block.modules() if isinstance(m, LoraLinear)]


def save_adapters(model: GPT, path: str | Path, base_model: str = "") -> Path:
    """The adapters alone, in PEFT's format for the model's Hugging Face family (atomically): small, and
    loadable by peft.PeftModel on the model `export-hf` writes."""
    config: LoraConfig | None = getattr(model, "lora_config", None)
    if config is None:
        raise GptkitError("the model has no LoRA adapters: apply_lora first")
    family = family_for(model.config)
    tensors, ranks = {}, {}
    for i, block in enumerate(model.blocks):
        for adapter in _adapters(block):
            for module, (a, b) in _peft_pairs(adapter, family).items():
                tensors[_peft_name(family, i, module, "A")] = a.detach().float().cpu().contiguous()
                tensors[_peft_name(family, i, module, "B")] = b.detach().float().cpu().contiguous()
                ranks[module] = (a.shape[0], adapter.scale * a.shape[0])
    peft_config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model or None,
        "r": config.rank, "lora_alpha": config.alpha, "lora_dropout": config.dropout, "bias": "none",
        "target_modules": sorted(ranks), "fan_in_fan_out": family.fan_in_fan_out,
        "rank_pattern": {m: r for m, (r, _) in ranks.items() if r != config.rank},
        "alpha_pattern": {m: a for m, (r, a) in ranks.items() if r != config.rank},
        "inference_mode": True, "modules_to_save": None,
    }
    path = Path(path)
    with atomic_directory(path, ours=lambda p: (p / CONFIG_FILE).is_file()) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(json.dumps(peft_config, indent=2) + "\n", encoding="utf-8")
    return path


def _peft_pairs(adapter: LoraLinear, family: Family) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Their module -> (A, B): one per role, or, where they fuse the roles too (GPT-2's c_attn), the whole
    stack (rank n r, B zero off each role's block)."""
    if all(family.fused_in_theirs(role) for role in adapter.roles):
        return {family.peft_module(adapter.roles[0]): (adapter.lora_A, adapter.update())}
    return {family.peft_module(role): adapter.role(i) for i, role in enumerate(adapter.roles)}


def load_adapters(model: GPT, path: str | Path) -> GPT:
    """Apply the adapters saved at `path` (by save_adapters, or PEFT for this model's family) to `model`."""
    path = Path(path)
    saved, tensors = read_version(path, _read_adapters)
    family = family_for(model.config)
    module_of = {p.role: family.peft_module(p.role) for p in model.blocks[0].projections()}
    modules = saved.get("target_modules") or []
    if saved.get("peft_type") != "LORA" or set(modules) - set(module_of.values()):
        raise GptkitError(f"{path}: not LoRA adapters on this model's projections "
                          f"({', '.join(sorted(set(module_of.values())))})")
    targets = tuple(role for role, module in module_of.items() if module in modules)
    rank, alpha = saved["r"], float(saved["lora_alpha"])
    ranks = {role: (saved.get("rank_pattern", {}).get(module_of[role], rank),
                    saved.get("alpha_pattern", {}).get(module_of[role], alpha)) for role in targets}
    ranks.update(_stacked_roles(model, family, targets, tensors, ranks))
    apply_lora(model, LoraConfig(rank, alpha, float(saved.get("lora_dropout", 0.0)), targets), ranks)
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            for adapter in _adapters(block):
                _fill(adapter, i, tensors, family, path)
    return model


def _stacked_roles(model: GPT, family: Family, targets: tuple[str, ...], tensors: dict,
                   ranks: dict[str, tuple[int, float]]) -> dict[str, tuple[int, float]]:
    """Roles that their fused module holds as a stack of one adapter per role (what save_adapters writes:
    rank n r, B zero off each role's block): each role gets back its own rank r."""
    roles = [p for p in model.blocks[0].projections() if p.role in targets and family.fused_in_theirs(p.role)]
    if not roles:
        return {}
    (stack_rank, stack_alpha), n = ranks[roles[0].role], len(roles)
    if stack_rank % n:
        return {}
    r = stack_rank // n
    for i in range(len(model.blocks)):
        b = tensors.get(_peft_name(family, i, family.peft_module(roles[0].role), "B"))
        if b is None or any(b[p.rows, j * r : (j + 1) * r].abs().sum() != b[p.rows].abs().sum()
                            for j, p in enumerate(roles)):
            return {}
    return {p.role: (r, stack_alpha / n) for p in roles}


def _fill(adapter: LoraLinear, block: int, tensors: dict, family: Family, path: Path) -> None:
    """Copy their A and B into each role's block of the adapter."""
    r = adapter.rank
    for j, role in enumerate(adapter.roles):
        module = family.peft_module(role)
        names = [_peft_name(family, block, module, m) for m in "AB"]
        a, b = (tensors.get(name) for name in names)
        rows = adapter.rows[j]
        if a is not None and b is not None and family.fused_in_theirs(role):
            b = b[rows]  # their B covers the fused Linear's every row
            if a.shape[0] == r * len(adapter.roles) != r:  # a stack of one adapter per role: this role's own
                a, b = a[j * r : (j + 1) * r], b[:, j * r : (j + 1) * r]
        want = ((r, adapter.base.in_features), (rows.stop - rows.start, r))
        if a is None or b is None or (tuple(a.shape), tuple(b.shape)) != want:
            raise GptkitError(f"{path}: {names[0]} is missing or not of shape {want[0]}: adapters for another model")
        adapter.lora_A[j * r : (j + 1) * r] = a
        adapter.lora_B[rows, j * r : (j + 1) * r] = b


def _read_adapters(path: Path) -> tuple[dict, dict]:
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise GptkitError(f"{path}: no {CONFIG_FILE} and {WEIGHTS_FILE}; give a directory that save_adapters wrote")
    return json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")), load_file(str(path / WEIGHTS_FILE))


def _peft_name(family: Family, block: int, module: str, matrix: str) -> str:
    """PEFT's key for one adapter matrix of the family's transformers model."""
    return f"base_model.model.{family.block_prefix.format(i=block)}.{module}.lora_{matrix}.weight"
