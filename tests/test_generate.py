import math

import pytest
import torch

from gptkit import GptkitError, Sampling, generate, stream
from gptkit.generate import filter_logits


def _logits(probs):
    return torch.tensor([[math.log(p) for p in probs]])


def test_top_k_keeps_exactly_the_k_most_likely_tokens():
    kept = filter_logits(_logits([0.1, 0.4, 0.2, 0.3]), Sampling(top_k=2)).isfinite()[0].tolist()
    assert kept == [False, True, False, True]


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = _logits([0.1, 0.4, 0.2, 0.3])
    keep = lambda p: filter_logits(logits, Sampling(top_p=p)).isfinite()[0].tolist()
    assert keep(0.4) == [False, True, False, False]
    assert keep(0.5) == [False, True, False, True]  # 0.4 < 0.5, so the next one is needed
    assert keep(0.7) == [False, True, False, True]
    assert keep(0.75) == [False, True, True, True]
    assert keep(1.0) == [True, True, True, True]


def test_temperature_sharpens_the_distribution():
    logits = _logits([0.2, 0.8])
    cold = filter_logits(logits, Sampling(temperature=0.5)).softmax(-1)[0, 1]
    assert cold > 0.8 and torch.isclose(cold, torch.tensor(0.64 / 0.68))


def test_seeded_sampling_is_reproducible(tiny_model, device):
    tiny_model.to(device)
    sampling = Sampling(temperature=1.0, top_k=50)
    a = generate(tiny_model, [1, 2, 3], 20, sampling, seed=42)
    assert a == generate(tiny_model, [1, 2, 3], 20, sampling, seed=42)
    assert a != generate(tiny_model, [1, 2, 3], 20, sampling, seed=43)


def test_greedy_equals_argmax_of_full_recompute(tiny_model, device):
    tiny_model.to(device)
    ids = [7, 8, 9]
    new = generate(tiny_model, ids, 12, Sampling(temperature=0))
    seq = list(ids)
    with torch.no_grad():
        for _ in range(12):
            seq.append(int(tiny_model(torch.tensor([seq], device=device))[0, -1].argmax()))
    assert new == seq[len(ids):]


def test_stream_stops_after_a_stop_id(tiny_model):
    greedy = generate(tiny_model, [5], 10, Sampling(temperature=0))
    stop = greedy[3]
    first = greedy.index(stop)
    assert list(stream(tiny_model, [5], 10, Sampling(temperature=0), stop_ids=(stop,))) == greedy[: first + 1]


def test_prompt_too_long_is_a_clear_error(tiny_model):
    with pytest.raises(GptkitError, match="exceeds the context window of 64"):
        generate(tiny_model, [1] * 60, 10)
    with pytest.raises(GptkitError, match="prompt is empty"):
        generate(tiny_model, [], 10)


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0}, {"top_p": 1.5}])
def test_bad_sampling_settings_are_rejected(kwargs):
    with pytest.raises(GptkitError):
        Sampling(**kwargs)
