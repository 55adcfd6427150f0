
import pytest
import torch

from gptkit import GptkitError, Sampling, generate, stream
from gptkit.generate import (
    Decoding,
    Generator,
    Request,
    generate_batch,
)

PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12], [13], [14, 15, 16, 17, 18]]


def test_seeded_sampling_is_reproducible(tiny_model, device):
    tiny_model.to(device)
    sampling = Sampling(temperature=1.0, top_k=50, min_p=0.01, repetition_penalty=1.1)
    a = generate(tiny_model, [1, 2, 3], Decoding(20, **vars(sampling), seed=42))
    assert a == generate(tiny_model, [1, 2, 3], Decoding(20, **vars(sampling), seed=42))
    assert a != generate(tiny_model, [1, 2, 3], Decoding(20, **vars(sampling), seed=43))


def test_greedy_equals_argmax_of_full_recompute(tiny_model, device):
    tiny_model.to(device)
    ids = [7, 8, 9]
    new = generate(tiny_model, ids, Decoding(12, temperature=0))
    seq = list(ids)
    with torch.no_grad():
        for _ in range(12):
            seq.append(int(tiny_model(torch.tensor([seq], device=device))[0, -1].argmax()))
    assert new == seq[len(ids):]


@pytest.mark.parametrize("max_batch", [None, 2])
def test_batched_generation_equals_one_prompt_at_a_time(tiny_model, device, max_batch):
    """Prompts of different lengths, each stopping on its own; with max_batch 2, requests wait and join."""
    tiny_model.to(device)
    alone = [generate(tiny_model, p, Decoding(15, temperature=0)) for p in PROMPTS]
    stop = alone[1][4]  # makes at least one sequence stop early
    alone = [generate(tiny_model, p, Decoding(15, temperature=0, stop_ids=(stop,))) for p in PROMPTS]
    assert len({len(a) for a in alone}) > 1
    decoding = Decoding(15, temperature=0, stop_ids=(stop,))
    assert generate_batch(tiny_model, PROMPTS, decoding, max_batch=max_batch) == alone


def test_seeded_sampling_in_a_batch_equals_sampling_alone(tiny_model):
    sampling = Sampling(temperature=0.9, top_p=0.9)
    batch = generate_batch(tiny_model, PROMPTS, Decoding(10, **vars(sampling), seed=7))
    assert batch == [generate(tiny_model, p, Decoding(10, **vars(sampling), seed=7 + i)) for i, p in enumerate(PROMPTS)]


def test_requests_join_and_leave_a_running_batch(tiny_model):
    engine = Generator(tiny_model, max_batch=2, max_len=40)
    first = engine.submit(Request([1, 2, 3], Decoding(12, temperature=0)))
    for _ in range(3):
        engine.step()
    second = engine.submit(Request([9, 8], Decoding(6, temperature=0)))  # joins while the first runs
    third = engine.submit(Request([5], Decoding(20, temperature=0)))  # waits for a free slot
    engine.step()
    assert engine.waiting and third.tokens == []
    engine.cancel(first)  # leaves: its slot goes to the third
    assert first.finish_reason == "stop"
    engine.step()
    assert not engine.waiting and len(third.tokens) == 1  # admitted on the very next step
    while engine.busy:
        engine.step()
    assert second.tokens == generate(tiny_model, [9, 8], Decoding(6, temperature=0))
    assert second.finish_reason == "length"
    assert third.tokens == generate(tiny_model, [5], Decoding(20, temperature=0))
    assert first.tokens == generate(tiny_model, [1, 2, 3], Decoding(12, temperature=0))[: len(first.tokens)]


def test_stream_stops_after_a_stop_id(tiny_model):
    greedy = generate(tiny_model, [5], Decoding(10, temperature=0))
    stop = greedy[3]
    first = greedy.index(stop)
    assert list(stream(tiny_model, [5], Decoding(10, temperature=0, stop_ids=(stop,)))) == greedy[: first + 1]


def test_generation_past_the_context_window_slides_it(tiny_model, tiny_config):
    """The window (64) fills; each slide keeps the last 32 tokens, which a full recompute reproduces."""
    prompt, new, window, keep = [3, 1, 4, 1, 5], 150, tiny_config.block_size, tiny_config.block_size // 2
    ours = generate(tiny_model, prompt, Decoding(new, temperature=0))
    seq, start = list(prompt), 0
    with torch.no_grad():
        for _ in range(new):
            if len(seq) - 1 - start == window:  # the cache holds every token but the newest
                start = len(seq) - 1 - keep
            seq.append(int(tiny_model(torch.tensor([seq[start:]]))[0, -1].argmax()))
    assert ours == seq[len(prompt):]


def test_prompt_too_long_is_a_clear_error_or_truncated_on_request(tiny_model):
    with pytest.raises(GptkitError, match="prompt of 70 tokens exceeds the context window of 64"):
        generate(tiny_model, [1] * 70, Decoding(10))
    long_prompt = list(range(10, 80))
    assert generate(tiny_model, long_prompt, Decoding(5, temperature=0, truncate_prompt=True)) == generate(
        tiny_model, long_prompt[-64:], Decoding(5, temperature=0))
    with pytest.raises(GptkitError, match="prompt is empty"):
        generate(tiny_model, [], Decoding(10))


def _run(engine, requests):
    for request in requests:
        engine.submit(request)
    while engine.busy:
        engine.step()
    return [r.tokens for r in requests]


def test_prompts_read_in_chunks_give_the_tokens_of_one_pass(tiny_model):
    prompts = [list(range(1, 30)), list(range(40, 47)), list(range(50, 71))]
    greedy = Decoding(10, temperature=0)
    whole = _run(Generator(tiny_model, 3), [Request(p, greedy) for p in prompts])
    chunked = _run(Generator(tiny_model, 3, prefill_chunk=8, prefill_budget=8), [Request(p, greedy) for p in prompts])
    assert chunked == whole == [generate(tiny_model, p, greedy) for p in prompts]


def test_running_sequences_get_a_token_every_step_while_a_long_prompt_is_read(tiny_model):
    engine = Generator(tiny_model, 2, prefill_chunk=4, prefill_budget=4)
    running = engine.submit(Request([1, 2], Decoding(12, temperature=0)))
    engine.step()
    long = engine.submit(Request(list(range(3, 23)), Decoding(3, temperature=0)))  # 20 tokens: 5 chunks
    for _ in range(5):
        got = engine.step()
        assert running in [r for r, _ in got]  # never stalled by the newcomer
    assert len(long.tokens) == 1 and len(running.tokens) == 6


def test_logprobs_are_the_models_log_softmax_with_the_top_alternatives(tiny_model):
    prompt = [5, 6, 7]
    request = Request(prompt, Decoding(4, temperature=0), logprobs=3)
    tokens = _run(Generator(tiny_model, 1), [request])[0]
    with torch.no_grad():
        logits = tiny_model(torch.tensor([prompt + tokens[:-1]]))[0, len(prompt) - 1 :]
    expected = torch.log_softmax(logits.float(), -1)
    for i, (token, lp) in enumerate(zip(tokens, request.token_logprobs)):
        assert lp.logprob == pytest.approx(float(expected[i, token]), abs=1e-4)
        assert [t for t, _ in lp.top] == expected[i].topk(3).indices.tolist() and lp.top[0][0] == token


def test_a_cancelled_request_says_so_and_frees_its_slot(tiny_model):
    engine = Generator(tiny_model, 1)
    request = engine.submit(Request([1, 2, 3], Decoding(50, temperature=0)))
    engine.step()
    engine.cancel(request, "cancelled")
    assert request.finish_reason == "cancelled" and not engine.busy


def test_a_sequence_that_fills_its_slot_ends_with_length_when_asked(tiny_model):
    engine = Generator(tiny_model, 2, max_len=10, at_window="stop")
    short = engine.submit(Request([1, 2, 3, 4], Decoding(50, temperature=0)))
    full = engine.submit(Request(list(range(1, 11)), Decoding(5, temperature=0)))  # fills its slot at once
    while engine.busy:
        engine.step()
    assert short.finish_reason == full.finish_reason == "length"
    assert len(short.tokens) == 10 - 4 + 1 and len(full.tokens) == 1  # the last token read a full window
    roomy = generate(tiny_model, [1, 2, 3, 4], Decoding(12, temperature=0))  # a window of 16: no end
    assert short.tokens == roomy[: len(short.tokens)]


def _recomputed(model, prompt: list[int], n: int) -> list[int]:
    """Greedy tokens by running the whole sequence through the model at every step (no cache)."""
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    return seq[len(prompt):]


@pytest.mark.parametrize("max_batch", [1, 8])
def test_the_engine_under_churn_gives_the_tokens_of_full_recompute(tiny_model, max_batch):
    torch.manual_seed(0)
    lengths, news = [3, 17, 1, 9, 30, 5, 12, 2, 21, 7], [12, 4, 20, 9, 3, 15, 6, 18, 10, 8]
    prompts = [torch.randint(0, 320, (n,)).tolist() for n in lengths]
    engine = Generator(tiny_model, max_batch, prefill_chunk=8, prefill_budget=16)
    requests, step = [], 0
    while len(requests) < len(prompts) or engine.busy:  # a new request every other step: slots join and leave
        if len(requests) < len(prompts) and step % 2 == 0:
            i = len(requests)
            requests.append(engine.submit(Request(prompts[i], Decoding(news[i], temperature=0))))
        engine.step()
        step += 1
    assert [r.tokens for r in requests] == [_recomputed(tiny_model, p, n) for p, n in zip(prompts, news)]
