import math

import pytest
import torch

from gptkit import GptkitError, Sampling
from gptkit.generate import (
    GREEDY,
    filter_logits,
    next_token,
    penalize_repeats,
)


def _logits(probs):
    return torch.tensor([[math.log(p) for p in probs]])


def test_top_k_keeps_exactly_the_k_most_likely_tokens():
    kept = filter_logits(_logits([0.1, 0.4, 0.2, 0.3]), Sampling(top_k=2)).isfinite()[0].tolist()
    assert kept == [False, True, False, True]


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = _logits([0.1, 0.4, 0.2, 0.3])
    keep = lambda p: filter_logits(logits, Sampling(top_p=p)).isfinite()[0].tolist()
    # thresholds away from the cumulative sums (0.4, 0.7, 0.9, 1.0): float rounding cannot decide them
    assert keep(0.35) == [False, True, False, False]
    assert keep(0.45) == [False, True, False, True]  # 0.4 < 0.45, so the next one is needed
    assert keep(0.65) == [False, True, False, True]
    assert keep(0.75) == [False, True, True, True]
    assert keep(0.95) == [True, True, True, True]
    assert keep(1.0) == [True, True, True, True]


def test_min_p_keeps_tokens_at_least_that_fraction_of_the_top_one():
    logits = _logits([0.05, 0.5, 0.2, 0.25])
    keep = lambda p: filter_logits(logits, Sampling(min_p=p)).isfinite()[0].tolist()
    assert keep(0.45) == [False, True, False, True]  # 0.25 >= 0.225 > 0.2
    assert keep(0.39) == [False, True, True, True]  # 0.2 >= 0.195
    assert keep(0.09) == [True, True, True, True]  # 0.05 >= 0.045
    assert keep(0.11) == [False, True, True, True]  # 0.05 < 0.055


def test_temperature_sharpens_the_distribution():
    logits = _logits([0.2, 0.8])
    cold = filter_logits(logits, Sampling(temperature=0.5)).softmax(-1)[0, 1]
    assert cold > 0.8 and torch.isclose(cold, torch.tensor(0.64 / 0.68))


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_seen_tokens():
    logits = torch.tensor([[2.0, -1.0, 1.5, 0.5]])
    seen = torch.tensor([[True, True, False, False]])
    assert next_token(logits, GREEDY, seen=seen).item() == 0  # penalty 1: unchanged
    penalized = Sampling(temperature=0, repetition_penalty=2.0)
    assert next_token(logits, penalized, seen=seen).item() == 2  # 2.0 -> 1.0 < 1.5
    assert penalize_repeats(logits, seen, 2.0).tolist() == [[1.0, -2.0, 1.5, 0.5]]


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0}, {"top_p": 1.5},
                                    {"min_p": 2}, {"repetition_penalty": 0}])
def test_bad_sampling_settings_are_rejected(kwargs):
    with pytest.raises(GptkitError):
        Sampling(**kwargs)


@pytest.mark.parametrize("sampling", [
    Sampling(temperature=0.7), Sampling(top_k=5), Sampling(top_p=0.83), Sampling(min_p=0.07),
    Sampling(temperature=1.3, top_k=20, top_p=0.9, min_p=0.02),
], ids=["temperature", "top_k", "top_p", "min_p", "all"])
def test_filters_keep_what_transformers_logits_processors_keep(sampling):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    logits = torch.randn(4, 200) * 3
    processors = [transformers.TemperatureLogitsWarper(sampling.temperature)]
    if sampling.top_k:
        processors.append(transformers.TopKLogitsWarper(sampling.top_k))
    if sampling.top_p:
        processors.append(transformers.TopPLogitsWarper(sampling.top_p))
    if sampling.min_p:
        processors.append(transformers.MinPLogitsWarper(sampling.min_p))
    theirs = logits.clone()
    for process in processors:
        theirs = process(None, theirs)
    ours = filter_logits(logits, sampling)
    assert torch.equal(ours.isfinite(), theirs.isfinite())  # the same tokens survive
    torch.testing.assert_close(ours.softmax(-1), theirs.softmax(-1))


def test_repetition_penalty_matches_transformers():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    logits, history = torch.randn(2, 50) * 2, torch.randint(0, 50, (2, 12))
    seen = torch.zeros(2, 50, dtype=torch.bool).scatter(1, history, True)
    theirs = transformers.RepetitionPenaltyLogitsProcessor(1.3)(history, logits.clone())
    torch.testing.assert_close(penalize_repeats(logits, seen, 1.3), theirs)


def test_rows_sampled_together_get_what_each_gets_alone():
    from gptkit.generate.sampling import sample_rows

    torch.manual_seed(0)
    logits = torch.randn(7, 300) * 3
    settings = [Sampling(0.8, top_k=20), Sampling(0), Sampling(1.2, top_p=0.9, min_p=0.02), Sampling(1.0),
                Sampling(0.7, top_k=50, top_p=0.95, repetition_penalty=1.3), Sampling(0.9, logit_bias=((3, 5.0),)),
                Sampling(0, logit_bias=((7, 100.0),))]
    seen = [None, None, None, None, torch.rand(1, 300) < 0.2, None, None]
    for seed in range(20):
        gens = [torch.Generator().manual_seed(seed + i) for i in range(len(settings))]
        together = sample_rows(logits, settings, gens, seen)
        alone = [int(next_token(logits[i : i + 1], s, torch.Generator().manual_seed(seed + i), seen[i]))
                 for i, s in enumerate(settings)]
        assert together == alone


@pytest.mark.parametrize("sampling", [Sampling(1e-300), Sampling(5e-324), Sampling(9e-6), Sampling(1.0, top_p=1e-300),
                                      Sampling(2.0, top_p=5e-324), Sampling(2.0, min_p=1.0)])
def test_settings_that_round_to_nothing_in_float32_pick_the_likeliest_token(sampling):
    from gptkit.generate.sampling import sample_rows

    logits = torch.randn(3, 50) * 3
    for seed in range(5):
        gens = [torch.Generator().manual_seed(seed + i) for i in range(3)]
        assert sample_rows(logits, [sampling] * 3, gens, [None] * 3) == logits.argmax(-1).tolist()
        assert next_token(logits, sampling, gens[0]).tolist() == logits.argmax(-1).tolist()


def test_logit_bias_bans_or_forces_a_token():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    assert next_token(logits, Sampling(0, logit_bias=((0, -100.0),))).item() == 1
    assert next_token(logits, Sampling(0, logit_bias=((3, 100.0),))).item() == 3
    with pytest.raises(GptkitError, match="past the vocabulary"):
        next_token(logits, Sampling(0, logit_bias=((4, 1.0),)))
