"""Training on several processes: wrapping the model for DDP or FSDP2, gathering and restoring state.

Everything here is a no-op (or the plain single-process path) when the run has
one process, so the loop calls it unconditionally. The process group itself is
joined in `runtime.init_distributed`, the only place that reads torchrun's
environment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from ..config import TrainConfig
from ..model import GPT
from ..runtime import Distributed

log = logging.getLogger(__name__)


def wrap_model(model: GPT, cfg: TrainConfig, dist: Distributed, device: torch.device,
               entry: Callable[[GPT], torch.nn.Module] | None = None) -> torch.nn.Module:
    """The module the loop calls: the model (or `entry(model)`, e.g. a SpanReader), compiled and/or wrapped
    for DDP or FSDP2 as configured."""
    wrapped: torch.nn.Module = model if entry is None else entry(model)
    if dist.world_size > 1 and cfg.fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        wrapped = fully_shard(wrapped)
    elif dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(wrapped, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        try:
            wrapped = torch.compile(wrapped)
        except Exception as e:  # compilation support varies by platform
            log.warning("torch.compile failed (%s); training without it", e)
    return wrapped


def is_fsdp(model: torch.nn.Module) -> bool:
    return any(type(m).__name__.startswith("FSDP") for m in model.modules())


def gather_state(model: GPT, optimizer: torch.optim.Optimizer, dist: Distributed,
                 every_rank: bool = False) -> tuple[dict, dict]:
    """Full (unsharded) model and optimizer state dicts; every rank must call it under FSDP.

    Under FSDP only rank 0 receives them (in CPU memory), unless `every_rank`.
    """
    if dist.world_size > 1 and is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=not every_rank)
        return get_state_dict(model, optimizer, options=options)
    return model.state_dict(), optimizer.state_dict()


def load_optimizer_state(model: GPT, optimizer: torch.optim.Optimizer, state: dict, dist: Distributed) -> None:
    """Load a full optimizer state dict (as `gather_state` returns it), sharding it under FSDP."""
    if dist.world_size > 1 and is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(state)


def optimizer_state_by_name(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> dict:
    """A full optimizer state dict (as `gather_state` returns it) as {parameter name: its state}."""
    names = _parameter_names(model, optimizer)
    return {key if isinstance(key, str) else names[key]: value for key, value in state["state"].items()}


def load_optimizer_state_by_name(model: torch.nn.Module, optimizer: torch.optim.Optimizer, named: dict,
                                 dist: Distributed) -> None:
    """Load {parameter name: state} (parameters left out start fresh), sharding it under FSDP."""
    names = _parameter_names(model, optimizer)
    groups = optimizer.state_dict()["param_groups"]
    if dist.world_size > 1 and is_fsdp(model):  # the full state dict of torch.distributed.checkpoint: by name
        start = 0
        for group in groups:
            group["params"], start = names[start:start + len(group["params"])], start + len(group["params"])
        load_optimizer_state(model, optimizer, {"state": named, "param_groups": groups}, dist)
    else:
        index = {name: i for i, name in enumerate(names)}
        optimizer.load_state_dict({"state": {index[n]: s for n, s in named.items()}, "param_groups": groups})


def _parameter_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The names of the optimizer's parameters, in the order its state dict numbers them."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def plain_model(model: GPT, state: dict) -> GPT:
    """`model` itself, or under FSDP (sharded parameters) a CPU copy holding the gathered state."""
    if not is_fsdp(model):
        return model
    copy = GPT(model.config)
    copy.load_state_dict(state)
    return copy


def barrier(dist: Distributed) -> None:
    if dist.world_size > 1:
        torch.distributed.barrier()


def agree(dist: Distributed, device: torch.device, *flags: bool) -> tuple[bool, ...]:
    """Each flag true on any rank becomes true on all, so every rank stops at the same step."""
    if dist.world_size == 1:
        return flags
    t = torch.tensor([float(f) for f in flags], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def sum_over_ranks(total: torch.Tensor, dist: Distributed) -> None:
    """Sum a tensor over ranks, in place."""
    if dist.world_size > 1:
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
