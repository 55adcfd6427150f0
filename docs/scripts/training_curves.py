"""Draw docs/images/loss-landscape.png and docs/images/optimizers.png from small models trained here.

    python docs/scripts/training_curves.py [--steps 400] [--out docs/images]

Trains a 2-layer, 64-wide character model on gptkit's built-in Python docs twice, with AdamW and with
Muon, on the same batches, the same warm-up and cosine schedule and the same seed, and draws:

- optimizers.png: the loss of both runs on held-out text against the step;
- loss-landscape.png: the loss around the AdamW run's path, on the plane through its final weights
  spanned by the two principal directions of the path (Li et al., "Visualizing the Loss Landscape of
  Neural Nets", 2018), with the path drawn on it.

About 20 seconds on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from gptkit import GPT, ModelConfig, Tokenizer  # noqa: E402
from gptkit.config import TrainConfig  # noqa: E402
from gptkit.data.corpus import read_documents  # noqa: E402
from gptkit.train.optim import build_optimizer, lr_at  # noqa: E402

BLOCK, BATCH = 64, 16


def corpus() -> tuple[torch.Tensor, torch.Tensor, int]:
    text = "\n".join(read_documents(["builtin:python-docs"]))[:400_000]
    tokenizer = Tokenizer.train_char([text])
    ids = torch.tensor(tokenizer.encode(text))
    split = int(len(ids) * 0.9)
    return ids[:split], ids[split:], tokenizer.vocab_size


def windows(ids: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, len(ids) - BLOCK - 1, (n,), generator=generator)
    return torch.stack([ids[s : s + BLOCK + 1] for s in starts])


@torch.no_grad()
def loss_on(model: GPT, batch: torch.Tensor) -> float:
    return model(batch[:, :-1], batch[:, 1:]).item()


def train(optimizer_name: str, steps: int, train_ids, val_batch, vocab: int, lr: float):
    """Loss on the held-out batch every 10 steps, and the weights at each of those steps."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=vocab, block_size=BLOCK, n_layer=2, n_head=4, n_embd=64, dropout=0.0))
    config = TrainConfig(optimizer=optimizer_name, lr=lr, min_lr=lr / 10, muon_lr=0.02, max_steps=steps,
                         warmup_steps=steps // 20, weight_decay=0.0)
    optimizer = build_optimizer(model, config, torch.device("cpu"))
    batches = torch.Generator().manual_seed(1)  # both runs see the same batches
    curve, path = [], []
    for step in range(steps + 1):
        if step % 10 == 0:
            curve.append((step, loss_on(model.eval(), val_batch)))
            path.append(torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone())
        if step == steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config) * group["lr_scale"]
        batch = windows(train_ids, BATCH, batches)
        loss = model.train()(batch[:, :-1], batch[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"{optimizer_name}: held-out loss {curve[0][1]:.3f} -> {curve[-1][1]:.3f} in {steps} steps")
    return model, curve, torch.stack(path)


def landscape(model: GPT, path: torch.Tensor, batch: torch.Tensor, size: int = 25):
    """The loss on a grid over the plane of the path's two principal directions, and the path's coordinates."""
    final = path[-1]
    offsets = path - final
    _, _, v = torch.pca_lowrank(offsets, q=2, center=False)
    coords = offsets @ v  # (points, 2): the path in the plane (v's columns are orthonormal)
    span = coords.abs().max(dim=0).values * 1.3
    xs = torch.linspace(-span[0], span[0], size)
    ys = torch.linspace(-span[1], span[1], size)
    grid = torch.empty(size, size)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            torch.nn.utils.vector_to_parameters(final + x * v[:, 0] + y * v[:, 1], model.parameters())
            grid[i, j] = loss_on(model.eval(), batch)
    torch.nn.utils.vector_to_parameters(final, model.parameters())
    return xs, ys, grid, coords


def draw(curves: dict, surface, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=150)
    for name, curve in curves.items():
        ax.plot(*zip(*curve), label=name)
    ax.set(xlabel="step", ylabel="held-out loss (nats per character)", ylim=(None, curves["AdamW"][0][1] + 0.2),
           title="2 x 64 character model on the Python docs, same batches")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "optimizers.png")

    xs, ys, grid, coords = surface
    fig, ax = plt.subplots(figsize=(5.4, 4.4), dpi=150)
    levels = torch.quantile(grid.flatten(), torch.linspace(0, 1, 16)).unique().numpy()
    contour = ax.contourf(xs.numpy(), ys.numpy(), grid.numpy(), levels=levels, cmap="viridis")
    fig.colorbar(contour, label="loss")
    ax.plot(coords[:, 0].numpy(), coords[:, 1].numpy(), "w.-", markersize=3, label="AdamW's path (every 10 steps)")
    ax.plot(*coords[0].numpy(), "wo", markersize=7)
    ax.plot(*coords[-1].numpy(), "w*", markersize=11)
    ax.set(xlabel="1st principal direction of the path", ylabel="2nd principal direction",
           title="The loss around the training path")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "loss-landscape.png")
    print(f"wrote {out / 'optimizers.png'} and {out / 'loss-landscape.png'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "images")
    args = p.parse_args()
    train_ids, val_ids, vocab = corpus()
    val_batch = windows(val_ids, 64, torch.Generator().manual_seed(2))
    model, adamw, path = train("adamw", args.steps, train_ids, val_batch, vocab, lr=3e-3)
    _, muon, _ = train("muon", args.steps, train_ids, val_batch, vocab, lr=3e-3)
    surface = landscape(model, path, val_batch)
    args.out.mkdir(parents=True, exist_ok=True)
    draw({"AdamW": adamw, "Muon (hidden matrices) + AdamW": muon}, surface, args.out)


if __name__ == "__main__":
    main()
