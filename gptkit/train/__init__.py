"""Training: the loop (`loop`), one step and one evaluation (`step`), the schedule and optimizers
(`optim`), several processes (`distributed`), what a run leaves for people (`report`), and supervised
fine-tuning on task examples through the same loop (`finetune`).

    from gptkit.config import RunConfig, load_config
    from gptkit.train import train
    best = train(load_config(RunConfig, "tiny", ["data=data/pydocs", "out_dir=runs/tiny"]))
"""

from .finetune import finetune
from .loop import train
from .optim import MuonAdamW, build_optimizer, lr_at, orthogonalize
from .report import Progress, read_metrics
from .step import Precision, accumulate_gradients, apply_update, evaluate, evaluate_examples, train_step

__all__ = [
    "train", "finetune", "train_step", "accumulate_gradients", "apply_update", "evaluate", "evaluate_examples",
    "Precision", "build_optimizer", "lr_at", "MuonAdamW", "orthogonalize", "Progress", "read_metrics",
]
