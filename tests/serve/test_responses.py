"""Response shapes: echo, text offsets of completion logprobs, ids and usage in streamed chat."""

import json

import httpx
import pytest
import torch

from gptkit import load_checkpoint

KEY = {"Authorization": "Bearer sesame"}


def test_echo_with_logprobs_scores_the_prompt_tokens_first_and_offsets_run_on(served):
    ckpt = load_checkpoint(served.paths["lm"])
    ids = ckpt.tokenizer.encode("hello world")
    body = {"model": "lm", "prompt": "hello world", "max_tokens": 6, "temperature": 0, "echo": True, "logprobs": 1}
    out = httpx.post(served.url + "/v1/completions", json=body, headers=KEY, timeout=60).json()
    choice = out["choices"][0]
    assert choice["text"].startswith("hello world")
    lp = choice["logprobs"]
    offsets, tokens = lp["text_offset"], lp["tokens"]
    assert offsets[0] == 0 and offsets[len(ids)] == len("hello world")
    assert all(b - a == len(t) for a, b, t in zip(offsets, offsets[1:], tokens))
    with torch.no_grad():  # the prompt's own tokens, scored by the model: nothing predicts the first
        expected = torch.log_softmax(ckpt.model.eval()(torch.tensor([ids]))[0, :-1], -1)
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    got = lp["token_logprobs"][1 : len(ids)]
    assert got == pytest.approx([expected[i, t].item() for i, t in enumerate(ids[1:])], abs=1e-4)
    streamed = httpx.post(served.url + "/v1/completions", json={**body, "stream": True}, headers=KEY, timeout=60)
    first = json.loads(streamed.text.split("\n\n")[0].removeprefix("data: "))["choices"][0]
    assert first["text"] == "hello world" and first["logprobs"]["tokens"] == tokens[: len(ids)]


def test_a_streamed_chat_has_one_id_and_ends_with_usage_and_done(served):
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True,
            "stream_options": {"include_usage": True}}
    events = httpx.post(served.url + "/v1/chat/completions", json=body, headers=KEY, timeout=60).text.split("\n\n")
    data = [e.removeprefix("data: ") for e in events if e.startswith("data: ")]
    assert data[-1] == "[DONE]"


    chunks = [json.loads(d) for d in data[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["usage"]["completion_tokens"] >= 1 and chunks[-1]["choices"] == []
