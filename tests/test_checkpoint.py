import json

import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig, load_checkpoint, save_checkpoint
from gptkit.checkpoint import load_train_state, read_config


def test_checkpoint_roundtrip_preserves_weights_tokenizer_and_meta(tmp_path, tiny_model, bpe_tokenizer):
    save_checkpoint(tmp_path / "ck", tiny_model, bpe_tokenizer, extra={"step": 7})
    ckpt = load_checkpoint(tmp_path / "ck")
    assert ckpt.model.config == tiny_model.config
    for (name, a), (_, b) in zip(tiny_model.state_dict().items(), ckpt.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert ckpt.meta == {"step": 7}
    assert ckpt.tokenizer.encode("hello world") == bpe_tokenizer.encode("hello world")
    data = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert data["schema_version"] == 1 and data["model"]["n_layer"] == 2


def _entries(directory):
    return {p.name for p in directory.iterdir()}


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, tiny_model):
    save_checkpoint(tmp_path / "ck", tiny_model, extra={"step": 1})

    class Exploding:
        def save(self, path):
            raise RuntimeError("disk full")

    with pytest.raises(GptkitError, match="cannot write .*ck: disk full"):  # a failed write names the checkpoint
        save_checkpoint(tmp_path / "ck", tiny_model, Exploding(), extra={"step": 2})
    assert load_checkpoint(tmp_path / "ck").meta == {"step": 1}
    assert _entries(tmp_path) == {"ck", (tmp_path / "ck").resolve().name}  # the link and its version, nothing else


def test_overwriting_a_checkpoint_replaces_it_whole(tmp_path, tiny_model, bpe_tokenizer):
    save_checkpoint(tmp_path / "ck", tiny_model, bpe_tokenizer)
    save_checkpoint(tmp_path / "ck", tiny_model)  # no tokenizer this time
    assert not (tmp_path / "ck" / "tokenizer.json").exists()
    assert _entries(tmp_path) == {"ck", (tmp_path / "ck").resolve().name}


def test_truncated_weights_are_a_clear_error(tmp_path, tiny_model):
    path = save_checkpoint(tmp_path / "ck", tiny_model)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(GptkitError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_garbage_weights_are_a_clear_error(tmp_path, tiny_model):
    path = save_checkpoint(tmp_path / "ck", tiny_model)
    (path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(GptkitError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_config_that_does_not_match_weights_is_a_clear_error(tmp_path, tiny_model):
    path = save_checkpoint(tmp_path / "ck", tiny_model)
    data = json.loads((path / "config.json").read_text())
    data["model"]["n_embd"] = 64
    (path / "config.json").write_text(json.dumps(data))
    with pytest.raises(GptkitError, match="does not match config.json: shape mismatch wte.weight"):
        load_checkpoint(path)
    data["model"]["n_embd"], data["model"]["n_layer"] = 32, 3
    (path / "config.json").write_text(json.dumps(data))
    with pytest.raises(GptkitError, match="missing tensors blocks.2"):
        load_checkpoint(path)


@pytest.mark.parametrize("content, message", [
    ("{not json", "corrupt JSON"),
    ('{"model": {}}', "schema_version"),
    ('{"schema_version": 1, "model": {"n_layers": 2}}', "unknown key"),
])
def test_bad_config_json_is_a_clear_error(tmp_path, tiny_model, content, message):
    path = save_checkpoint(tmp_path / "ck", tiny_model)
    (path / "config.json").write_text(content)
    with pytest.raises(GptkitError, match=message):
        load_checkpoint(path)


def test_missing_pieces_are_clear_errors(tmp_path, tiny_model):
    with pytest.raises(GptkitError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope")
    path = save_checkpoint(tmp_path / "ck", tiny_model)
    (path / "model.safetensors").unlink()
    with pytest.raises(GptkitError, match="missing model.safetensors"):
        load_checkpoint(path)
    (path / "config.json").unlink()
    with pytest.raises(GptkitError, match="missing config.json"):
        read_config(path)


def test_load_onto_requested_device(tmp_path, device):
    model = GPT(ModelConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8))
    path = save_checkpoint(tmp_path / "ck", model)
    loaded = load_checkpoint(path, device=device).model
    assert {p.device.type for p in loaded.parameters()} == {device}


class _RunsCode:
    """A pickle payload: unpickling it would call os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_train_state_that_would_run_code_is_refused_without_running_it(tmp_path, tiny_model):
    path = save_checkpoint(tmp_path / "ck", tiny_model, train_state={"step": 1})
    torch.save({"step": 1, "evil": _RunsCode(tmp_path / "pwned")}, path / "train_state.pt")
    with pytest.raises(GptkitError) as refused:
        load_train_state(path)
    assert "would run code when loaded, and gptkit does not run them" in str(refused.value)
    assert "weights_only=False" not in str(refused.value)
    assert not (tmp_path / "pwned").exists()
