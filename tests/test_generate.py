import math

import pytest
import torch
import torch.nn as nn

from gptkit import GptkitError, ModelConfig, Sampling, generate, stream
from gptkit.generate import (
    GREEDY,
    Generator,
    Request,
    StopStrings,
    beam_search,
    filter_logits,
    generate_batch,
    next_token,
    penalize_repeats,
    stream_text,
)


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


def test_min_p_keeps_tokens_at_least_that_fraction_of_the_top_one():
    logits = _logits([0.05, 0.5, 0.2, 0.25])
    keep = lambda p: filter_logits(logits, Sampling(min_p=p)).isfinite()[0].tolist()
    assert keep(0.5) == [False, True, False, True]  # 0.25 >= 0.5 * 0.5
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


def test_seeded_sampling_is_reproducible(tiny_model, device):
    tiny_model.to(device)
    sampling = Sampling(temperature=1.0, top_k=50, min_p=0.01, repetition_penalty=1.1)
    a = generate(tiny_model, [1, 2, 3], 20, sampling, seed=42)
    assert a == generate(tiny_model, [1, 2, 3], 20, sampling, seed=42)
    assert a != generate(tiny_model, [1, 2, 3], 20, sampling, seed=43)


def test_greedy_equals_argmax_of_full_recompute(tiny_model, device):
    tiny_model.to(device)
    ids = [7, 8, 9]
    new = generate(tiny_model, ids, 12, GREEDY)
    seq = list(ids)
    with torch.no_grad():
        for _ in range(12):
            seq.append(int(tiny_model(torch.tensor([seq], device=device))[0, -1].argmax()))
    assert new == seq[len(ids):]


PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12], [13], [14, 15, 16, 17, 18]]


@pytest.mark.parametrize("max_batch", [None, 2])
def test_batched_generation_equals_one_prompt_at_a_time(tiny_model, device, max_batch):
    """Prompts of different lengths, each stopping on its own; with max_batch 2, requests wait and join."""
    tiny_model.to(device)
    alone = [generate(tiny_model, p, 15, GREEDY) for p in PROMPTS]
    stop = alone[1][4]  # makes at least one sequence stop early
    alone = [generate(tiny_model, p, 15, GREEDY, stop_ids=(stop,)) for p in PROMPTS]
    assert len({len(a) for a in alone}) > 1
    assert generate_batch(tiny_model, PROMPTS, 15, GREEDY, stop_ids=(stop,), max_batch=max_batch) == alone


def test_seeded_sampling_in_a_batch_equals_sampling_alone(tiny_model):
    sampling = Sampling(temperature=0.9, top_p=0.9)
    batch = generate_batch(tiny_model, PROMPTS, 10, sampling, seed=7)
    assert batch == [generate(tiny_model, p, 10, sampling, seed=7 + i) for i, p in enumerate(PROMPTS)]


def test_requests_join_and_leave_a_running_batch(tiny_model):
    engine = Generator(tiny_model, max_batch=2, max_len=40)
    first = engine.submit(Request([1, 2, 3], max_new_tokens=12))
    for _ in range(3):
        engine.step()
    second = engine.submit(Request([9, 8], max_new_tokens=6))  # joins while the first runs
    third = engine.submit(Request([5], max_new_tokens=20))  # waits for a free slot
    engine.step()
    assert engine.waiting and third.tokens == []
    engine.cancel(first)  # leaves: its slot goes to the third
    assert first.finish_reason == "stop"
    while engine.busy:
        engine.step()
    assert second.tokens == generate(tiny_model, [9, 8], 6, GREEDY) and second.finish_reason == "length"
    assert third.tokens == generate(tiny_model, [5], 20, GREEDY)
    assert first.tokens == generate(tiny_model, [1, 2, 3], 12, GREEDY)[: len(first.tokens)]


def test_stream_stops_after_a_stop_id(tiny_model):
    greedy = generate(tiny_model, [5], 10, GREEDY)
    stop = greedy[3]
    first = greedy.index(stop)
    assert list(stream(tiny_model, [5], 10, GREEDY, stop_ids=(stop,))) == greedy[: first + 1]


def test_generation_past_the_context_window_slides_it(tiny_model, tiny_config):
    """The window (64) fills; each slide keeps the last 32 tokens, which a full recompute reproduces."""
    prompt, new, window, keep = [3, 1, 4, 1, 5], 150, tiny_config.block_size, tiny_config.block_size // 2
    ours = generate(tiny_model, prompt, new, GREEDY)
    seq, start = list(prompt), 0
    with torch.no_grad():
        for _ in range(new):
            if len(seq) - 1 - start == window:  # the cache holds every token but the newest
                start = len(seq) - 1 - keep
            seq.append(int(tiny_model(torch.tensor([seq[start:]]))[0, -1].argmax()))
    assert ours == seq[len(prompt):]


def test_prompt_too_long_is_a_clear_error_or_truncated_on_request(tiny_model):
    with pytest.raises(GptkitError, match="prompt of 70 tokens exceeds the context window of 64"):
        generate(tiny_model, [1] * 70, 10)
    long_prompt = list(range(10, 80))
    assert generate(tiny_model, long_prompt, 5, GREEDY, truncate_prompt=True) == generate(
        tiny_model, long_prompt[-64:], 5, GREEDY)
    with pytest.raises(GptkitError, match="prompt is empty"):
        generate(tiny_model, [], 10)


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0}, {"top_p": 1.5},
                                    {"min_p": 2}, {"repetition_penalty": 0}])
def test_bad_sampling_settings_are_rejected(kwargs):
    with pytest.raises(GptkitError):
        Sampling(**kwargs)


def test_stop_strings_cut_text_split_across_pieces():
    cutter = StopStrings(["\n\n", "END"])
    assert cutter.feed("Hello E") == ("Hello ", False)  # "E" may start "END": held back
    assert cutter.feed("ND of it") == ("", True)
    cutter = StopStrings(["END"])
    assert cutter.feed("an E") == ("an ", False)
    assert cutter.feed("lephant") == ("Elephant", False)
    assert cutter.feed(" EN") == (" ", False)
    assert cutter.flush() == "EN"
    assert StopStrings(["ab"]).feed("xxabyyab") == ("xx", True)


def test_stream_text_stops_at_a_stop_string(tiny_model, bpe_tokenizer):
    free = "".join(stream_text(tiny_model, bpe_tokenizer, "The quick", 30, GREEDY))
    assert len(free) > 6
    stop = free[3:6]
    cut = "".join(stream_text(tiny_model, bpe_tokenizer, "The quick", 30, GREEDY, stop=[stop]))
    assert cut == free[: free.index(stop)]


class Bigram(nn.Module):
    """A hand-made model: the next token depends only on the last one, through a fixed table."""

    def __init__(self, table):
        super().__init__()
        vocab = len(table)
        self.config = ModelConfig(vocab_size=vocab, block_size=16, n_layer=1, n_head=1, n_embd=vocab)
        self.wte = nn.Embedding(vocab, vocab)
        self.wte.weight.data = torch.tensor(table).log()

    @property
    def device(self):
        return self.wte.weight.device

    def hidden_states(self, idx, cache=None, slots=None, lengths=None):
        if cache is not None:  # the model contract: idx is appended to those cache slots
            cache.advance(cache.plan(*idx.shape, slots, idx.device), lengths)
        return self.wte(idx)  # the row of log-probabilities after each token

    def logits(self, hidden):
        return hidden


def test_beam_search_finds_the_best_sequence_where_greedy_does_not():
    A, B, C, D, END = range(5)
    model = Bigram([
        [0.01, 0.55, 0.42, 0.01, 0.01],  # after A: B looks best...
        [0.26, 0.25, 0.25, 0.01, 0.23],  # ...but after B nothing is likely
        [0.01, 0.01, 0.01, 0.02, 0.95],  # after C: END, almost surely
        [0.2] * 5,
        [0.2] * 5,
    ])
    assert generate(model, [A], 2, GREEDY) == [B, A]  # p = 0.55 * 0.26 = 0.143
    best = beam_search(model, [A], 2, num_beams=2, stop_ids=(END,))[0]
    assert best.tokens == [C, END]  # p = 0.42 * 0.95 = 0.399
    assert best.score == pytest.approx(math.log(0.42 * 0.95) / 2)  # length penalty 1: mean log-prob
    assert beam_search(model, [A], 2, num_beams=1, stop_ids=(END,))[0].tokens == [B, A]  # width 1 is greedy
