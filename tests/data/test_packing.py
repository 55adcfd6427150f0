import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig
from gptkit.data import Example, ExampleBatches


def _examples(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(4, 20, (1,), generator=g))
        ids = torch.randint(1, 50, (length,), generator=g).tolist()
        prompt = length // 2
        out.append(Example(ids, [False] * prompt + [True] * (length - prompt)))
    return out


def test_each_epoch_visits_every_example_once_and_rows_fit():
    examples = _examples()
    batches = ExampleBatches(examples, batch_size=4, block_size=32, seed=3)
    rows = batches.rows(0)
    assert sorted(i for row in rows for i in row) == list(range(len(examples)))
    assert all(sum(len(examples[i].ids) - 1 for i in row) <= 32 for row in rows)
    assert len(rows) < len(examples)  # several examples share a row
    assert rows != batches.rows(1)  # a new order every epoch


def test_batches_are_a_pure_function_of_step_and_stream():
    a = ExampleBatches(_examples(), batch_size=3, block_size=32, seed=1, streams=2)
    b = ExampleBatches(_examples(), batch_size=3, block_size=32, seed=1, streams=2)
    for step, stream in ((0, 0), (7, 1), (30, 0)):  # step 30 is past the first epoch
        assert all(torch.equal(x, y) for x, y in zip(a.batch(step, stream), b.batch(step, stream)))
    x0, _, _ = a.batch(2, 0)
    x1, _, _ = a.batch(2, 1)
    assert not torch.equal(x0[0], x1[0])  # streams never share rows


def test_labels_are_minus_one_off_target_and_segments_mark_examples():
    examples = _examples(6)
    batches = ExampleBatches(examples, batch_size=1, block_size=64, shuffle=False)
    x, y, segments = batches.collate([[0, 1]])
    n0 = len(examples[0].ids) - 1
    assert x[0, :n0].tolist() == examples[0].ids[:-1]
    expected = [t if keep else -1 for t, keep in zip(examples[0].ids[1:], examples[0].targets[1:])]
    assert y[0, :n0].tolist() == expected
    assert segments[0, :n0].eq(0).all() and segments[0, n0: n0 + len(examples[1].ids) - 1].eq(1).all()


def test_packed_rows_compute_what_each_example_computes_alone():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=16)).eval()
    examples = _examples(8)
    batches = ExampleBatches(examples, batch_size=2, block_size=64, shuffle=False)
    rows = batches.rows(0)[:2]
    x, y, segments = batches.collate(rows)
    packed = model(x, segments=segments)
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            alone = model(torch.tensor([examples[i].ids[:-1]]))[0]
            torch.testing.assert_close(packed[r, at: at + len(alone)], alone, atol=1e-5, rtol=1e-5)
            at += len(alone)
    # and the loss of the packed batch is the mean over target tokens of the examples alone
    losses = [model(torch.tensor([e.ids[:-1]]), torch.tensor([[t if k else -1 for t, k in
                                                              zip(e.ids[1:], e.targets[1:])]]), ) for e in examples]
    counts = [sum(e.targets[1:]) for e in examples]
    chosen = [i for row in rows for i in row]
    expected = sum(losses[i] * counts[i] for i in chosen) / sum(counts[i] for i in chosen)
    torch.testing.assert_close(model(x, y, segments=segments), expected, atol=1e-5, rtol=1e-5)


def test_padded_rows_hold_one_example_and_no_segments():
    batches = ExampleBatches(_examples(), batch_size=4, block_size=32, pack=False)
    x, y, segments = batches.batch(0)
    assert segments is None and len(batches.rows(0)) == 40 and x.shape[0] == 4


def test_examples_longer_than_the_block_are_refused():
    with pytest.raises(GptkitError, match="does not fit block_size 8"):
        ExampleBatches(_examples(), batch_size=2, block_size=8)
