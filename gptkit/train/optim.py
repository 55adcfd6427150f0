"""Optimisation: the learning-rate schedule, the optimizer's parameter groups, and Muon.

`lr_at(step, cfg)` is the schedule (linear warmup, then cosine, warmup-stable-decay
or constant); `build_optimizer` puts weight matrices, everything else and, with
optimizer=muon, the hidden matrices into groups whose `lr_scale` ties them to it.

Muon (Jordan et al., 2024) replaces each matrix's momentum by the nearest
semi-orthogonal matrix (a few Newton-Schulz iterations), so every direction of
the update moves at the same rate; on small models it reaches a given loss in
markedly fewer steps than AdamW. Embeddings, the (tied) head, biases and
LayerNorm gains are not hidden matrices and keep AdamW.

The update is scaled to AdamW's typical RMS (0.2 * sqrt(max(rows, cols)), as
in Moonshot's Muon-is-scalable), so `muon_lr` sits near AdamW learning rates.
PyTorch's own torch.optim.Muon orthogonalises in bf16, which CPUs without
AMX/AVX512-BF16 emulate ~10x slower than fp32; here the dtype is a choice.
"""

from __future__ import annotations

import math

import torch

from ..config import TrainConfig
from ..model import GPT
from ..runtime import fast_bf16


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimiser step `step` (0-based): linear warmup, then the schedule.

    With grow_warmup_steps, the steps after each growth ramp up to it again, linearly.
    """
    grown_at = [start for start in (stage.step(cfg.max_steps) for stage in cfg.grow) if start <= step]
    if grown_at and cfg.grow_warmup_steps:
        return _scheduled(step, cfg) * min(1.0, (step - grown_at[-1] + 1) / cfg.grow_warmup_steps)
    return _scheduled(step, cfg)


def _scheduled(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "wsd":  # stable at lr, then linear decay over the last decay_fraction of steps
        decay_start = cfg.max_steps - int(cfg.decay_fraction * cfg.max_steps)
        if step < decay_start:
            return cfg.lr
        progress = (step - decay_start) / max(1, cfg.max_steps - decay_start)
        return cfg.lr - (cfg.lr - cfg.min_lr) * min(1.0, progress)
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def build_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with weight decay on weight matrices only (not biases, norms, or embeddings unless asked).

    optimizer=muon: the blocks' weight matrices get Muon at muon_lr instead, a Linear that fuses several roles
    (q/k/v, SwiGLU's gate/up) orthogonalised role by role, as if they were separate matrices. Each group's
    `lr_scale` is its peak lr over cfg.lr, so one schedule drives every group.
    """
    decay, no_decay, hidden = [], [], []
    role_rows = _role_rows(model)
    embeddings = {id(p) for module in model.embeddings() for p in module.parameters()}
    in_blocks = {id(p) for p in model.blocks.parameters()}  # not an embedding or an output head
    for p in model.parameters():
        if not p.requires_grad:
            continue
        is_embedding, is_hidden = id(p) in embeddings, id(p) in in_blocks
        if cfg.optimizer == "muon" and p.dim() == 2 and is_hidden:
            hidden.append(p)
        else:
            (decay if p.dim() >= 2 and (cfg.decay_embeddings or not is_embedding) else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay, "lr_scale": 1.0},
              {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0}]
    if cfg.optimizer == "muon":
        groups.append({"params": hidden, "weight_decay": cfg.weight_decay, "lr_scale": cfg.muon_lr / cfg.lr,
                       "muon": True, "splits": [role_rows.get(id(p)) for p in hidden]})
        ns_dtype = "bf16" if fast_bf16(device) else "fp32"
        return MuonAdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), ns_dtype=ns_dtype)
    fused = device.type == "cuda"  # fused kernels on GPU; foreach (the default) on CPU
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused)



def _role_rows(model: GPT) -> dict[int, list[int]]:
    """id(weight) -> the row count of each role, for the Linears that hold several (fused q/k/v, gate/up)."""
    rows: dict[int, list[int]] = {}
    for block in model.blocks:
        for p in block.projections():
            weight = getattr(p.linear, "weight", None)  # a LoRA-wrapped Linear is frozen: not optimised
            if p.rows is not None and weight is not None:
                rows.setdefault(id(weight), []).append(p.rows.stop - p.rows.start)
    return rows


# quintic Newton-Schulz coefficients that push singular values towards 1 quickly (Keller Jordan)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Approximately U V^T for g = U S V^T (singular values end up roughly in [0.7, 1.2])."""
    x = g.to(dtype)
    x = x / (x.norm() + 1e-7)
    wide = x.shape[0] <= x.shape[1]
    if not wide:
        x = x.T  # iterate on the smaller Gram matrix
    a, b, c = NS_COEFFICIENTS
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.T).to(g.dtype)


class MuonAdamW(torch.optim.Optimizer):
    """Param groups with muon=True get Muon (Nesterov momentum, orthogonalised); the others AdamW.

    Both use decoupled weight decay (the group's weight_decay times its lr).
    ns_dtype ("fp32" or "bf16") is the precision of the Newton-Schulz iterations.
    """

    def __init__(self, groups, lr: float = 1e-3, betas=(0.9, 0.95), eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.95, ns_steps: int = 5, ns_dtype: str = "fp32"):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum=momentum, muon=False,
                        ns_steps=ns_steps, ns_dtype=ns_dtype)
        super().__init__(groups, defaults)
        for group in self.param_groups:
            if group["muon"] and any(p.dim() != 2 for p in group["params"]):
                raise ValueError("Muon groups may hold 2-D weight matrices only")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                if group["muon"]:
                    self._muon(p, group, self.state[p], (group.get("splits") or [None] * (i + 1))[i])
                else:
                    self._adamw(p, group, self.state[p])
        return loss

    def _muon(self, p: torch.Tensor, group: dict, state: dict, splits: list[int] | None) -> None:
        if not state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf = state["momentum_buffer"]
        buf.mul_(group["momentum"]).add_(p.grad)
        update = p.grad.add(buf, alpha=group["momentum"])  # Nesterov
        dtype = torch.bfloat16 if group["ns_dtype"] == "bf16" else torch.float32
        for rows, part in zip(update.split(splits or [len(update)]), p.split(splits or [len(p)])):
            # each role its own orthogonal update, scaled to AdamW's update size for its shape (Moonshot)
            part.add_(orthogonalize(rows, group["ns_steps"], dtype), alpha=-group["lr"] * 0.2 * max(rows.shape) ** 0.5)

    def _adamw(self, p: torch.Tensor, group: dict, state: dict) -> None:
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        state["exp_avg"].lerp_(p.grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        denom = (state["exp_avg_sq"] / (1 - beta2 ** state["step"])).sqrt_().add_(group["eps"])
        p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1 - beta1 ** state["step"]))
