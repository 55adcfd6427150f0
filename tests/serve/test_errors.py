"""Every error is OpenAI's JSON, whatever its status and wherever it arises; the key needs RFC 7235's Bearer."""

import json

import httpx
import pytest

KEY = {"Authorization": "Bearer sesame"}


def _post(served, route, body, headers=KEY):  # json.dumps escapes a lone surrogate as JSON allows ("\ud800")
    return httpx.post(served.url + route, content=json.dumps(body), timeout=60,
                      headers={**headers, "content-type": "application/json"})


@pytest.mark.parametrize("authorization, status", [("sesame", 401), ("Basic sesame", 401), ("Bearer", 401),
                                                   ("bearer sesame", 200), ("BEARER  sesame", 200)])
def test_the_key_needs_the_bearer_scheme_in_any_case(served, authorization, status):
    response = _post(served, "/v1/completions", {"model": "lm", "prompt": "hi", "max_tokens": 1},
                     {"Authorization": authorization})
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["type"] == "authentication_error"


def test_every_error_status_is_openais_json(served):
    cases = [
        httpx.post(served.url + "/v1/completions", content=b"{not json", headers={**KEY, "content-type":
                                                                                  "application/json"}),
        httpx.post(served.url + "/v1/completions", content=b"[1, 2]", headers=KEY),
        httpx.get(served.url + "/v1/completions", headers=KEY),
        httpx.put(served.url + "/v1/models", headers=KEY),
        _post(served, "/v1/completions", {"model": "enc", "prompt": "hi"}),
        _post(served, "/v1/completions", {"model": "lm", "prompt": "ab\ud800cd"}),
        _post(served, "/v1/embeddings", {"model": "enc", "input": ["ok", "ab\udfffcd"]}),
        _post(served, "/v1/chat/completions", {"model": "chat", "messages": [{"role": "user", "content": "\ud800"}]}),
    ]
    assert [r.status_code for r in cases] == [400, 400, 405, 405, 400, 400, 400, 400]
    for response in cases:
        error = response.json()["error"]
        assert error["message"] and error["type"] and set(error) == {"message", "type", "param", "code"}
    assert "chat template" not in cases[4].json()["error"]["message"] and "encoder" in cases[4].json()["error"][
        "message"]
    assert cases[5].json()["error"]["param"] == "prompt" and "surrogate" in cases[5].json()["error"]["message"]
    assert cases[6].json()["error"]["param"] == "input.1"
