"""Perplexity with a sliding window: every token scored once, equal to the plain loss where windows are disjoint."""

import math

import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig
from gptkit.eval import perplexity


@pytest.fixture
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32)).eval()


def _loss_sum(model, ids):
    x = torch.tensor(ids)
    with torch.no_grad():
        return model(x[None, :-1], x[None, 1:]).item() * (len(ids) - 1)


def test_a_text_within_the_context_scores_as_the_plain_loss(model):
    ids = torch.randint(0, 50, (12,)).tolist()
    score = perplexity(model, ids, n_bytes=24)
    assert score.tokens == 11 and score.nll == pytest.approx(_loss_sum(model, ids), rel=1e-6)
    assert score.ppl == pytest.approx(math.exp(score.nll / 11))
    assert score.bits_per_byte == pytest.approx(score.nll / math.log(2) / 24)


def test_disjoint_windows_sum_the_loss_of_each_window(model):
    ids = torch.randint(0, 50, (16 * 3 + 5,)).tolist()
    expected = sum(_loss_sum(model, ids[start:start + 17]) for start in range(0, len(ids) - 1, 16))
    score = perplexity(model, ids, stride=16)
    assert score.tokens == len(ids) - 1 and score.nll == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("stride", [1, 5, 8, 15])
def test_a_sliding_window_scores_each_token_once_with_its_context(model, stride):
    ids = torch.randint(0, 50, (40,)).tolist()
    x = torch.tensor(ids)
    with torch.no_grad():  # each target t, predicted from the window that first reaches it
        expected, scored_until = 0.0, 1
        for begin in range(0, len(ids) - 1, stride):
            end = min(begin + 17, len(ids))
            logp = torch.log_softmax(model(x[None, begin:end - 1])[0], -1)
            for t in range(scored_until, end):
                expected -= logp[t - begin - 1, ids[t]].item()
            scored_until = end
            if end == len(ids):
                break
    score = perplexity(model, ids, stride=stride)
    assert score.tokens == 39 and score.nll == pytest.approx(expected, rel=1e-5)
    assert score.nll != pytest.approx(perplexity(model, ids, stride=16).nll, rel=1e-6)  # more context, other score


def test_bad_requests_are_clear_errors(model):
    with pytest.raises(GptkitError, match="stride must be between 1 and the model's context"):
        perplexity(model, [1, 2, 3], stride=17)
    with pytest.raises(GptkitError, match="at least 2"):
        perplexity(model, [1])
