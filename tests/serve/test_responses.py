"""Response shapes: echo, text offsets of completion logprobs, ids and usage in streamed chat."""

import json

import httpx

KEY = {"Authorization": "Bearer sesame"}


def test_echo_puts_the_prompt_first_and_offsets_count_from_its_end(served):
    body = {"model": "lm", "prompt": "hello world", "max_tokens": 6, "temperature": 0, "echo": True, "logprobs": 1}
    out = httpx.post(served.url + "/v1/completions", json=body, headers=KEY, timeout=60).json()
    choice = out["choices"][0]
    assert choice["text"].startswith("hello world")
    offsets, tokens = choice["logprobs"]["text_offset"], choice["logprobs"]["tokens"]
    assert offsets[0] == len("hello world") and all(b - a == len(t) for a, b, t in zip(offsets, offsets[1:], tokens))
    streamed = httpx.post(served.url + "/v1/completions", json={**body, "stream": True}, headers=KEY, timeout=60)
    assert '"text": "hello world"' in streamed.text.split("\n\n")[0]


def test_a_streamed_chat_has_one_id_and_ends_with_usage_and_done(served):
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True,
            "stream_options": {"include_usage": True}}
    events = httpx.post(served.url + "/v1/chat/completions", json=body, headers=KEY, timeout=60).text.split("\n\n")
    data = [e.removeprefix("data: ") for e in events if e.startswith("data: ")]
    assert data[-1] == "[DONE]"


    chunks = [json.loads(d) for d in data[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["usage"]["completion_tokens"] >= 1 and chunks[-1]["choices"] == []
