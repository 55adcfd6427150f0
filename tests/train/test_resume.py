"""A run's checkpoints: the newest is the one resumed; weights of another shape or kind are refused clearly."""

import pytest
import torch

from gptkit import GPT, GptkitError
from gptkit.checkpoint import load_train_state
from gptkit.config import ModelConfig
from gptkit.runtime import Distributed
from gptkit.train import train
from gptkit.train.resume import latest_checkpoint, load_weights, restore_state
from tests.train.conftest import _run


def test_the_newest_checkpoint_is_resumed_with_its_counters(shards, tmp_path):
    train(_run(shards, tmp_path / "run", "max_steps=8", "checkpoint_interval=4"))
    newest = latest_checkpoint(tmp_path / "run")
    assert newest == tmp_path / "run" / "ckpt-000008"
    state = load_train_state(newest)
    model = GPT(ModelConfig(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=32))
    load_weights(newest, model, state, None)
    optimizer = torch.optim.AdamW(model.parameters())
    progress = restore_state({**state, "optimizer": optimizer.state_dict()}, model, optimizer, None, Distributed())
    assert progress.step == 8 and progress.tokens_seen == state["tokens_seen"] > 0
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_weights_of_another_shape_or_kind_are_refused_with_the_way_out(shards, tmp_path):
    train(_run(shards, tmp_path / "run", "max_steps=4", "checkpoint_interval=4"))
    newest = latest_checkpoint(tmp_path / "run")
    state = load_train_state(newest)
    wider = GPT(ModelConfig(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=64))
    with pytest.raises(GptkitError, match="holds a model of another shape.*use a new out_dir"):
        load_weights(newest, wider, state, None)
    with pytest.raises(GptkitError, match="saved by a run with LoRA adapters"):
        load_weights(newest, wider, {**state, "partial": "LoRA adapters"}, None)

