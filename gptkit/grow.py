"""Growing a trained model into a larger one: the operators of progressive ("layered") training.

    bigger = grow_depth(model, n_layer=8, method="stack")      # G_stack: copies of the trained blocks
    bigger = grow_depth(model, n_layer=8, method="identity")   # new blocks that compute the identity
    wider = grow_width(model, factor=2)                        # Net2Net: the same function, twice as wide
    grown = grow_to(model, shape, "stack")                     # both, to a given ModelConfig

Each returns a `Growth`: the new model, and for every new parameter the old one
it was copied from (None for a fresh one), so a trainer can carry optimizer
state along with the weights (`carry_optimizer_state`). Embeddings, the final LayerNorm and the tied head
carry over. `identity` and `grow_width` are function-preserving: the grown model
gives the same logits. `stack` is not (it repeats computation), but starts from
trained weights everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from .config import ModelConfig
from .errors import GptkitError
from .model import GPT
from .validate import check_value

DepthMethod = Literal["stack", "identity"]
DepthOrder = Literal["repeat", "interleave"]


@dataclass
class Growth:
    model: GPT
    sources: dict[str, str | None]  # new parameter name -> the old parameter it copies, or None if fresh


def grow_depth(model: GPT, n_layer: int, method: DepthMethod = "stack", order: DepthOrder = "repeat",
               seed: int = 0) -> Growth:
    """`model` with n_layer blocks.

    stack: every new block is a copy of a trained one; `repeat` orders them as
    the whole stack again, [0..L-1, 0..L-1, ...], and `interleave` as each block
    in place, [0, 0, 1, 1, ...]. identity: the trained blocks keep their order and
    new blocks (freshly initialised, seeded) whose two output projections are zero
    go after them (`repeat`) or after each trained block in turn (`interleave`);
    a block with zero output projections adds nothing to the residual stream.
    """
    origins = _block_origins(model.config.n_layer, n_layer, method, order)
    grown = _fresh(model, model.config.grown(n_layer), seed)
    state = grown.state_dict()
    sources: dict[str, str | None] = {}
    for name in state:
        if not name.startswith("blocks."):
            sources[name] = name
            continue
        index, rest = name.removeprefix("blocks.").split(".", 1)
        origin = origins[int(index)]
        sources[name] = None if origin is None else f"blocks.{origin}.{rest}"
    with torch.no_grad():
        old_state = model.state_dict()
        for name, source in sources.items():
            if source is not None:
                state[name].copy_(old_state[source])
        for index, origin in enumerate(origins):
            if origin is None:  # a new identity block: it reads the stream but writes nothing into it yet
                for proj in grown.blocks[index].residual_writers():
                    proj.weight.zero_()
                    if proj.bias is not None:
                        proj.bias.zero_()
    return Growth(grown, sources)


def grow_width(model: GPT, factor: int, noise: float = 0.0, seed: int = 0) -> Growth:
    """`model` with n_embd, n_head (and the MLP) `factor` times as large, computing the same function.

    Net2Net with every unit copied `factor` times: the residual stream becomes
    `factor` copies of itself, so LayerNorm sees the same mean and variance; a
    layer that reads copies divides its weights by `factor`; heads are copied
    whole, so head_dim and the attention scale stay; the final LayerNorm is
    divided by `factor` because the tied head reads every copy. Copies get the
    same gradients and stay equal: `noise` (relative, e.g. 0.01) breaks that
    symmetry, at the price of exactness.
    """
    if not isinstance(factor, int) or factor < 2:
        raise GptkitError(f"grow_width: factor must be an integer >= 2, got {factor!r} (only whole copies of "
                          f"every unit keep LayerNorm, and so the function, unchanged)")
    c = model.config
    grown = _fresh(model, c.grown(width_factor=factor), seed)
    new_state, old_state, kinds = grown.state_dict(), model.state_dict(), _kinds(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in new_state.items():
            widened = _widen(kinds.get(name, ()), old_state[name], factor)
            if noise and tensor.dim() == 2:
                widened = widened + noise * widened.std() * torch.randn(widened.shape, generator=generator)
            tensor.copy_(widened)
    return Growth(grown, {name: None for name in new_state})  # new shapes: no state can be carried


def grow_to(model: GPT, shape: ModelConfig, method: DepthMethod = "stack", order: DepthOrder = "repeat",
            seed: int = 0) -> Growth:
    """`model` grown to `shape`'s n_layer (grow_depth), then to its n_embd (grow_width); the rest must match."""
    c = model.config
    factor, rest = divmod(shape.n_embd, c.n_embd)
    expected = c.grown(shape.n_layer, factor) if factor and not rest else c
    if shape != expected:
        differ = [f"{k}={v!r} (expected {getattr(expected, k)!r})" for k, v in vars(shape).items()
                  if v != getattr(expected, k)]
        raise GptkitError(f"grow_to: only n_layer and the width can change (n_embd a whole multiple, with n_head, "
                          f"n_kv_head and the MLP scaled alike); the new shape has {', '.join(differ)}")
    growth = Growth(model, {name: name for name in model.state_dict()})
    if shape.n_layer != c.n_layer:
        growth = grow_depth(model, shape.n_layer, method, order, seed)
    if factor > 1:
        growth = grow_width(growth.model, factor, seed=seed)
    return growth


def carry_optimizer_state(state: dict[str, dict], sources: dict[str, str | None]) -> dict[str, dict]:
    """Per-parameter optimizer state for the grown model, keyed by parameter name like `state`.

    A copied parameter gets a copy of its source's state (Adam's moments, Muon's momentum), so the
    moments match the copied tensors; a fresh parameter gets none, and the optimizer starts it anew.
    """
    return {name: {key: value.clone() if isinstance(value, torch.Tensor) else value
                   for key, value in state[source].items()}
            for name, source in sources.items() if source is not None and source in state}


def _kinds(model: GPT) -> dict[str, tuple]:
    """How each parameter widens, by its role: ("embedding",), ("head",), ("final_norm",), ("per_head",),
    or ("fused", sizes) for a Linear whose outputs are several roles; absent: a plain tiled parameter."""
    kinds: dict[int, tuple] = {id(m.weight): ("embedding",) for m in model.embeddings()}
    if not model.config.tie_embeddings:
        kinds[id(model.lm_head.weight)] = ("head",)
    else:  # the tied head sums over every copy of the stream: the final norm divides by the copies
        kinds.update({id(p): ("final_norm",) for p in model.final_norm().parameters()})
    for block in model.blocks:
        kinds.update({id(p): ("per_head",) for norm in block.attn.head_norms() for p in norm.parameters()})
        fused: dict[int, list[nn.Linear | int]] = {}
        for projection in block.projections():
            if projection.rows is not None:
                fused.setdefault(id(projection.linear), [projection.linear]).append(
                    projection.rows.stop - projection.rows.start)
        for linear, *sizes in fused.values():
            kinds.update({id(p): ("fused", tuple(sizes)) for p in linear.parameters()})
    return {name: kinds[id(p)] for name, p in model.named_parameters() if id(p) in kinds}


def _widen(kind: tuple, old: torch.Tensor, factor: int) -> torch.Tensor:
    """One parameter, widened: outputs tiled, inputs tiled and divided by `factor`."""
    if kind == ("final_norm",):
        return old.repeat(factor) / factor
    if kind == ("per_head",):
        return old  # a norm over each head's own dimensions: heads keep their size
    if kind and kind[0] == "fused":
        parts = old.split(kind[1], dim=0)  # heads (or MLP units) are tiled within each role
        tiled = torch.cat([t.repeat(factor, *([1] * (t.dim() - 1))) for t in parts])
        return tiled.repeat(1, factor) / factor if old.dim() == 2 else tiled
    if kind == ("embedding",):
        return old.repeat(1, factor)  # each embedding is the old one, copied
    if old.dim() == 1:
        return old.repeat(factor)  # biases and norm weights of tiled outputs
    if kind == ("head",):
        return old.repeat(1, factor) / factor  # an untied head reads every copy of the stream
    return old.repeat(factor, factor) / factor  # (out, in): outputs tiled, inputs tiled and shared


def _fresh(model: GPT, config, seed: int) -> GPT:
    """A freshly initialised (seeded) model of the new shape on the old one's device and dtype."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        grown = GPT(config)
    return grown.to(device=model.device, dtype=model.dtype).train(model.training)


def _block_origins(old: int, new: int, method: str, order: str) -> list[int | None]:
    """For each new block, the trained block it copies (None: a new identity block)."""
    check_value("grow_depth", "method", method, DepthMethod)
    check_value("grow_depth", "order", order, DepthOrder)
    if new <= old:
        raise GptkitError(f"grow_depth: n_layer must be larger than the model's {old}, got {new}")
    if method == "stack":
        return [i % old if order == "repeat" else i * old // new for i in range(new)]
    return list(range(old)) + [None] * (new - old) if order == "repeat" else _interleaved(old, new)


def _interleaved(old: int, new: int) -> list[int | None]:
    """Trained blocks in order, with the new (None) ones spread evenly after them."""
    origins: list[int | None] = []
    for i in range(old):
        origins.append(i)
        origins += [None] * ((i + 1) * (new - old) // old - i * (new - old) // old)
    return origins
