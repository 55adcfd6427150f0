"""What a training run leaves for people: metrics.jsonl, loss.png and report.md, and the counters behind them."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig, to_dict
from ..files import atomic_file, atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """How far a run has come; saved in every checkpoint, so it survives a resume."""

    step: int = 0
    tokens_seen: int = 0
    elapsed: float = 0.0  # seconds of training, summed over resumed segments
    best_val: float = float("inf")


class Throughput:
    """Tokens per second and model FLOPs utilisation over the steps since the last reading.

    Only the steps' own time counts: evaluations and checkpoints between them do not.
    """

    def __init__(self, flops_per_token: float, peak_flops: float):
        self.flops_per_token, self.peak_flops = flops_per_token, peak_flops
        self._seconds, self._tokens, self._flops = 0.0, 0, 0.0

    def add(self, tokens: int, seconds: float) -> None:
        self._tokens += tokens
        self._seconds += seconds
        self._flops += tokens * self.flops_per_token  # per step: the model's size may change between readings

    def read(self) -> dict:
        seconds = max(self._seconds, 1e-9)
        reading = {"tokens_per_s": self._tokens / seconds, "mfu": self._flops / seconds / self.peak_flops}
        self._seconds, self._tokens, self._flops = 0.0, 0, 0.0
        return reading


class MetricsLog:
    """Append-only JSON lines; on resume, lines after the checkpoint's step are dropped first.

    Rank 0 only writes; TensorBoard event files are written too when tensorboard is installed.
    """

    def __init__(self, path: Path, truncate_after: int = 0, enabled: bool = True):
        self.path, self.enabled = path, enabled
        self._tensorboard = None
        if not enabled:
            return
        kept = [line for line in _read_lines(path) if json.loads(line)["step"] <= truncate_after]
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "".join(kept))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(str(path.parent / "tensorboard"), purge_step=truncate_after + 1)
        except ImportError:
            pass

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tensorboard is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tensorboard.add_scalar(key, value, record["step"])
            self._tensorboard.flush()


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line + "\n" for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in _read_lines(Path(path))]


def write_report(out_dir: Path, run: RunConfig, num_params: int, progress: Progress, stopped_by: str | None,
                 precision: str = "") -> None:
    """report.md (config, size, throughput, losses, sample) and loss.png when matplotlib is there."""
    records = read_metrics(out_dir / "metrics.jsonl")
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    speed = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
    mfu = [r["mfu"] for r in records if "mfu" in r]
    samples = [r["sample"] for r in records if "sample" in r]
    growth = [r for r in records if "grow_stage" in r]
    plot = _plot(out_dir / "loss.png", train, val, growth)
    lines = [
        f"# Training report: {out_dir}", "",
        f"- parameters: {num_params:,}",
        f"- steps: {progress.step:,} of {run.train.max_steps:,}"
        + (f" (stopped by {stopped_by})" if stopped_by else ""),
        f"- tokens seen: {progress.tokens_seen:,}",
        f"- training time: {progress.elapsed / 60:.1f} min" + (f", {precision}" if precision else ""),
        f"- throughput: {sum(speed) / len(speed):,.0f} tokens/s, MFU {100 * sum(mfu) / len(mfu):.1f}%"
        if speed else "- throughput: n/a",
        f"- final train loss: {train[-1][1]:.4f}" if train else "- final train loss: n/a",
        f"- final val loss: {val[-1][1]:.4f}, best: {min(v for _, v in val):.4f}" if val else "- val loss: n/a",
        *(f"- final val {name}: {scores[-1]:.2f}, best: {max(scores):.2f}" for name, scores in _scores(records)),
        *(f"- grown at step {g['step']:,}: {g['n_layer']} layers x {g['n_embd']}, {g['params']:,} parameters "
          f"({g['elapsed'] / 60:.1f} min in)" for g in growth),
        "", "![loss curve](loss.png)" if plot else "(install matplotlib for loss.png)", "",
        "## Config", "", "```json", json.dumps(to_dict(run), indent=2), "```",
    ]
    if samples:
        lines += ["", "## Last sample", "", "```", samples[-1], "```"]
    atomic_write_text(out_dir / "report.md", "\n".join(lines) + "\n")


def _scores(records: list[dict]) -> list[tuple[str, list[float]]]:
    """Task scores measured at evaluations (e.g. val_bleu): higher is better."""
    names = sorted({k for r in records for k in r if k in ("val_bleu", "val_chrf")})
    return [(name.removeprefix("val_"), [r[name] for r in records if name in r]) for name in names]


def _plot(path: Path, train: list, val: list, growth: list[dict]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: no loss.png (pip install 'gptkit[train]')")
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val), label="val", marker="o")
    for i, g in enumerate(growth):  # a vertical line where the model grew
        ax.axvline(g["step"], color="grey", linestyle="--", linewidth=1, label="growth" if i == 0 else None)
        ax.annotate(f"{g['n_layer']}x{g['n_embd']}", (g["step"], 1), xycoords=("data", "axes fraction"),
                    xytext=(3, -12), textcoords="offset points", fontsize=8, color="grey")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)
    return True
