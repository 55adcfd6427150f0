"""The OpenAI-compatible API, through the official `openai` client against a real server."""

import base64
import concurrent.futures

import numpy as np
import pytest

from gptkit import Decoding, load_checkpoint
from gptkit.generate import generate, generate_text


def test_models_are_listed_with_their_kind(client):
    kinds = {m.id: m.kind for m in client.models.list().data}
    assert kinds == {"lm": "lm", "chat": "chat", "enc": "encoder"}


def test_a_greedy_completion_is_the_libraries_greedy_text(client, served):
    out = client.completions.create(model="lm", prompt="hello world", max_tokens=12, temperature=0)
    ckpt = load_checkpoint(served.paths["lm"])
    expected = generate_text(ckpt.model.eval(), ckpt.tokenizer, "hello world", Decoding(12, temperature=0))
    assert out.choices[0].text == expected
    assert out.usage.prompt_tokens == len(ckpt.tokenizer.encode("hello world"))
    ids = generate(ckpt.model, ckpt.tokenizer.encode("hello world"),
                   Decoding(12, temperature=0, stop_ids=(ckpt.tokenizer.eot_id,)))
    assert out.usage.completion_tokens == len(ids)
    assert out.choices[0].finish_reason == ("length" if len(ids) == 12 else "stop")
    assert out.id.startswith("cmpl-") and out.object == "text_completion"


def test_streamed_text_joins_to_the_whole_text_and_ends_with_usage(client):
    whole = client.completions.create(model="lm", prompt="a cat", max_tokens=10, temperature=0).choices[0].text
    chunks = list(client.completions.create(model="lm", prompt="a cat", max_tokens=10, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole
    assert chunks[-1].usage.completion_tokens >= 1 and not chunks[-1].choices
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("length", "stop")


def test_seeded_samples_repeat_and_n_choices_differ_by_seed(client):
    def sample(**kw):
        out = client.completions.create(model="lm", prompt="the", max_tokens=12, temperature=1.0, seed=7, **kw)
        return [c.text for c in sorted(out.choices, key=lambda c: c.index)]

    first, again = sample(n=3), sample(n=3)
    assert first == again and len(first) == 3 and len(set(first)) > 1
    assert sample()[0] == first[0]  # choice 0 of n is the single sample with the same seed


def test_a_stop_string_ends_the_text_and_is_not_shown(client):
    whole = client.completions.create(model="lm", prompt="hello", max_tokens=20, temperature=0).choices[0].text
    stop = whole[3:5]
    out = client.completions.create(model="lm", prompt="hello", max_tokens=20, temperature=0, stop=[stop])
    assert out.choices[0].text == whole[: whole.index(stop)] and out.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model="lm", prompt="hello", max_tokens=20, temperature=0, stop=stop,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed) == whole[: whole.index(stop)]


def test_logprobs_are_the_models_and_the_top_alternative_is_the_greedy_choice(client):
    out = client.completions.create(model="lm", prompt="hello", max_tokens=5, temperature=0, logprobs=3)
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 5
    for logprob, top in zip(lp.token_logprobs, lp.top_logprobs):  # greedy: the chosen token is the likeliest
        assert 1 <= len(top) <= 3 and all(v <= logprob + 1e-5 for v in top.values()) and logprob <= 0
    chat = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                                          temperature=0, logprobs=True, top_logprobs=2)
    content = chat.choices[0].logprobs.content
    assert content and all(len(t.top_logprobs) == 2 and t.top_logprobs[0].logprob == pytest.approx(t.logprob)
                           for t in content)


def test_chat_renders_the_checkpoints_template(client, served):
    from gptkit.generate import Chat

    out = client.chat.completions.create(model="chat", messages=[{"role": "system", "content": "Be brief."},
                                                                 {"role": "user", "content": "hello"}],
                                         max_tokens=8, temperature=0)
    ckpt = load_checkpoint(served.paths["chat"])
    chat = Chat.of_checkpoint(ckpt, system="Be brief.")
    expected = generate_text(ckpt.model.eval(), ckpt.tokenizer, chat.prompt("hello"), Decoding(8, temperature=0))
    assert out.choices[0].message.content == expected and out.choices[0].message.role == "assistant"


def test_concurrent_greedy_requests_get_the_tokens_of_one_at_a_time(client):
    prompts = ["hello world", "a", "numbers 1 2 3 and", "the lazy", "cat sat on the mat", "x"]
    lengths = [5, 17, 9, 30, 3, 12]
    alone = [client.completions.create(model="lm", prompt=p, max_tokens=n, temperature=0).choices[0].text
             for p, n in zip(prompts, lengths)]

    def one(i):
        if i % 2:  # half of them stream while the others run
            stream = client.completions.create(model="lm", prompt=prompts[i], max_tokens=lengths[i], temperature=0,
                                               stream=True)
            return "".join(c.choices[0].text for c in stream)
        return client.completions.create(model="lm", prompt=prompts[i], max_tokens=lengths[i],
                                         temperature=0).choices[0].text

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        together = list(pool.map(one, range(len(prompts))))
    assert together == alone


def test_embeddings_are_the_encoders_vectors_as_floats_or_base64(client, served):
    from gptkit.search.embed import load_encoder

    texts = ["a cat sat", "the quick brown fox"]
    out = client.embeddings.create(model="enc", input=texts)
    expected = load_encoder(served.paths["enc"], dtype="fp32").embed(texts)
    got = np.array([d.embedding for d in sorted(out.data, key=lambda d: d.index)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    raw = client.embeddings.create(model="enc", input="a cat sat", encoding_format="base64")
    vector = np.frombuffer(base64.b64decode(raw.data[0].embedding), dtype=np.float32)
    np.testing.assert_allclose(vector, expected[0], atol=1e-5)


def test_a_repeated_long_prompt_reuses_its_prefix_and_gets_the_same_tokens(client, served):
    from .test_metrics import _metric

    prompt = "the quick brown fox jumps over the lazy dog and " * 5  # past one 64-token block
    ckpt = load_checkpoint(served.paths["lm"])
    assert len(ckpt.tokenizer.encode(prompt)) > 64
    expected = generate_text(ckpt.model.eval(), ckpt.tokenizer, prompt, Decoding(8, temperature=0))
    before = _metric(served, "gptkit_prefix_cache_hit_tokens_total", model="lm")
    texts = [client.completions.create(model="lm", prompt=prompt, max_tokens=8, temperature=0).choices[0].text
             for _ in range(2)]
    assert texts == [expected, expected]
    assert _metric(served, "gptkit_prefix_cache_hit_tokens_total", model="lm") >= before + 64


def test_a_list_of_prompts_gets_n_choices_each_in_order(client):
    prompts = ["hello world", "a cat sat"]
    out = client.completions.create(model="lm", prompt=prompts, max_tokens=6, temperature=0, n=2)
    alone = [client.completions.create(model="lm", prompt=p, max_tokens=6, temperature=0).choices[0].text
             for p in prompts]
    texts = [c.text for c in sorted(out.choices, key=lambda c: c.index)]
    assert texts == [alone[0], alone[0], alone[1], alone[1]]
