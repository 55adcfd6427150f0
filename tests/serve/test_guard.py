"""Every request passes the guard first: the API key, the body limit; and errors are OpenAI's JSON."""

import httpx
import pytest

KEY = {"Authorization": "Bearer sesame"}


def _post(served, route, body, headers=KEY, **kw):
    return httpx.post(served.url + route, json=body, headers=headers, timeout=60, **kw)


@pytest.mark.parametrize("route, body, headers, status, param", [
    ("/v1/completions", {"model": "lm", "prompt": "hi"}, {}, 401, None),
    ("/v1/completions", {"model": "lm", "prompt": "hi"}, {"Authorization": "Bearer sesamE"}, 401, None),
    ("/v1/completions", {"model": "nope", "prompt": "hi"}, KEY, 404, "model"),
    ("/v1/completions", {"model": "lm", "prompt": "hi", "temperature": -1}, KEY, 400, "temperature"),
    ("/v1/completions", {"model": "lm", "prompt": "hi", "max_tokens": "many"}, KEY, 400, "max_tokens"),
    ("/v1/completions", {"model": "lm"}, KEY, 400, "prompt"),
    ("/v1/completions", {"model": "lm", "prompt": "hi", "n": 5}, KEY, 400, "n"),
    ("/v1/completions", {"model": "lm", "prompt": "hi", "max_tokens": 500}, KEY, 400, "max_tokens"),
    ("/v1/completions", {"model": "lm", "prompt": "hi", "presence_penalty": 0.5}, KEY, 400, "presence_penalty"),
    ("/v1/completions", {"model": "lm", "prompt": "hi", "seed": -1}, KEY, 400, "seed"),
    ("/v1/chat/completions", {"model": "chat", "messages": []}, KEY, 400, "messages"),
    ("/v1/chat/completions", {"model": "lm", "messages": [{"role": "user", "content": "hi"}]}, KEY, 400, "model"),
    ("/v1/chat/completions", {"model": "chat", "messages": [{"role": "wizard", "content": "hi"}]}, KEY, 400,
     "messages.0.role"),
    ("/v1/embeddings", {"model": "enc", "input": []}, KEY, 400, "input"),
    ("/v1/embeddings", {"model": "lm", "input": "x"}, KEY, 400, "model"),
    ("/v1/nothing", {}, KEY, 404, None),
])
def test_bad_requests_get_openais_error_json_and_status(served, route, body, headers, status, param):
    response = _post(served, route, body, headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"] and error["param"] == param


def test_a_body_above_the_limit_is_413_and_health_needs_no_key(served):
    response = _post(served, "/v1/completions", {"model": "lm", "prompt": "x" * 30_000})
    assert response.status_code == 413 and "limit" in response.json()["error"]["message"]
    assert httpx.get(served.url + "/health").json()["status"] == "ok"
