import numpy as np
import pytest
import torch

from gptkit import GptkitError, Tokenizer
from gptkit.data import Batches, TokenShards, prepare
from tests.data.conftest import CONFIG


def test_truncated_shard_and_missing_manifest_are_clear_errors(tmp_path, corpus):
    prepare([str(corpus)], tmp_path / "out", CONFIG)
    shard = tmp_path / "out" / "val_000.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(GptkitError, match="truncated shard"):
        TokenShards(tmp_path / "out", "val")
    with pytest.raises(GptkitError, match="missing manifest.json"):
        TokenShards(tmp_path, "train")


def test_batches_are_shifted_windows_and_the_same_step_gives_the_same_batch(tmp_path, corpus):
    prepare([str(corpus)], tmp_path / "out", CONFIG)
    shards = TokenShards(tmp_path / "out", "train")
    batches = Batches(shards, batch_size=4, block_size=16, seed=3)
    x, y = batches.batch(0)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    expected = [batches.batch(step) for step in (2, 3, 4)]
    resumed = Batches(shards, batch_size=4, block_size=16, seed=3)  # a resumed run needs only the step
    for (ex, ey), (rx, ry) in zip(expected, (resumed.batch(step) for step in (2, 3, 4))):
        assert torch.equal(ex, rx) and torch.equal(ey, ry)
    assert not torch.equal(batches.batch(2)[0], batches.batch(3)[0])


def test_ranks_draw_distinct_streams(tmp_path, corpus):
    prepare([str(corpus)], tmp_path / "out", CONFIG)
    batches = Batches(TokenShards(tmp_path / "out", "train"), 4, 16, seed=0)
    assert not torch.equal(batches.batch(0, stream=0)[0], batches.batch(0, stream=1)[0])


def test_eval_windows_cover_the_split_without_overlap(tmp_path, corpus):
    prepare([str(corpus)], tmp_path / "out", CONFIG)
    val = TokenShards(tmp_path / "out", "val")
    windows = list(val.windows(32))
    assert len(windows) == (len(val) - 1) // 32
    flat = torch.cat([x for x, _ in windows])
    assert torch.equal(flat, torch.from_numpy(val.arrays[0][: len(flat)].astype(np.int64)))


def test_block_size_larger_than_data_is_a_clear_error(tmp_path, corpus):
    prepare([str(corpus)], tmp_path / "out", CONFIG)
    with pytest.raises(GptkitError, match="larger than the data"):
        Batches(TokenShards(tmp_path / "out", "val"), 4, 10**7)
    with pytest.raises(GptkitError, match="batch_size"):
        Batches(TokenShards(tmp_path / "out", "val"), 0, 8)


def test_batches_land_on_the_requested_device(tmp_path, corpus, device):
    prepare([str(corpus)], tmp_path / "out", CONFIG)
    x, y = Batches(TokenShards(tmp_path / "out", "train"), 2, 8, device=device).batch(0)
    assert x.device.type == y.device.type == device
    windows = np.lib.stride_tricks.sliding_window_view(TokenShards(tmp_path / "out", "train").arrays[0], 9)
    for row in torch.cat([x, y[:, -1:]], dim=1).cpu().numpy():  # each row is a real window of the shard
        assert (windows == row).all(axis=1).any()


def test_shards_from_another_tokenizer_are_rejected(tmp_path, corpus, bpe_tokenizer):
    prepare([str(corpus)], tmp_path / "out", CONFIG)
    with pytest.raises(GptkitError, match="another tokenizer"):
        TokenShards(tmp_path / "out", "train", tokenizer=bpe_tokenizer)
    TokenShards(tmp_path / "out", "train", tokenizer=Tokenizer.load(tmp_path / "out"))
