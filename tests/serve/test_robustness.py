"""No request stops a model: numerically extreme settings, a failing engine step, seeds at the top of their
range, more requests than room, clients that leave. After each, the same greedy request answers the same."""

import concurrent.futures
import json
import socket
import time

import httpx
import pytest

from .conftest import Gate, make_models, serve
from .test_metrics import _metric

KEY = {"Authorization": "Bearer sesame"}
GREEDY = {"model": "lm", "prompt": "hello world", "max_tokens": 8, "temperature": 0}


def _post(server, body, route="/v1/completions", **kw):
    return httpx.post(server.url + route, json=body, headers=KEY, timeout=60, **kw)


def _still_serving(server, expected: str) -> None:
    assert _post(server, GREEDY).json()["choices"][0]["text"] == expected
    assert httpx.get(server.url + "/health", timeout=60).json()["status"] == "ok"


@pytest.mark.parametrize("extreme", [{"temperature": 1e-300}, {"temperature": 5e-324}, {"top_p": 1e-300},
                                     {"top_p": 5e-324, "temperature": 2}, {"min_p": 1, "temperature": 2},
                                     {"repetition_penalty": 0.01, "temperature": 1.5}, {"top_k": 2**62}])
def test_extreme_sampling_values_sample_a_token_and_the_model_keeps_serving(served, extreme):
    expected = _post(served, GREEDY).json()["choices"][0]["text"]
    for stream in (False, True):
        response = _post(served, {**GREEDY, "temperature": 1.0, "seed": 1, **extreme, "stream": stream})
        assert response.status_code == 200, response.text
        if stream:
            assert response.text.rstrip().endswith("data: [DONE]") and '"error"' not in response.text
        else:
            assert response.json()["usage"]["completion_tokens"] >= 1
    if extreme.get("temperature", 1) < 1e-5:  # a temperature that rounds to 0 is greedy decoding
        assert response.text and _post(served, {**GREEDY, **extreme}).json()["choices"][0]["text"] == expected
    _still_serving(served, expected)


def test_a_repetition_penalty_that_would_overflow_is_refused(served):
    response = _post(served, {**GREEDY, "temperature": 1.0, "repetition_penalty": 1e-300})
    assert response.status_code == 400 and response.json()["error"]["param"] == "repetition_penalty"


def test_a_failing_step_fails_its_requests_and_the_engine_goes_on(tmp_path):
    server = serve(make_models(tmp_path)[:1], max_batch=2)
    try:
        expected = _post(server, GREEDY).json()["choices"][0]["text"]
        engine = server.app.state.schedulers["lm"].engine
        sample, failures = engine._sample, [2]

        def failing_sample(*args):  # fails mid-step, with the request admitted and its slot filled
            if failures[0]:
                failures[0] -= 1
                raise RuntimeError("injected")
            return sample(*args)

        engine._sample = failing_sample
        whole = _post(server, GREEDY)
        assert whole.status_code == 500 and whole.json()["error"]["code"] == "engine_error"
        streamed = _post(server, {**GREEDY, "stream": True}).text.split("\n\n")
        assert json.loads(streamed[-3].removeprefix("data: "))["error"]["type"] == "server_error"
        assert streamed[-2] == "data: [DONE]"
        _still_serving(server, expected)
        assert _metric(server, "gptkit_engine_errors_total", model="lm") == 2
        server.app.state.schedulers["lm"].stop()  # an engine that has stopped: /health tells, requests get 503
        health = httpx.get(server.url + "/health", timeout=60)
        assert health.status_code == 503 and health.json()["stopped"] == ["lm"]
        assert _post(server, GREEDY).status_code == 503
    finally:
        server.stop()


def test_the_largest_seed_with_n_choices_answers_each_choice(served):
    out = _post(served, {**GREEDY, "temperature": 1.0, "seed": 2**64 - 1, "n": 2}).json()
    assert [c["finish_reason"] is not None for c in out["choices"]] == [True, True]
    wrapped = _post(served, {**GREEDY, "temperature": 1.0, "seed": 0}).json()  # choice 1: seed + 1, mod 2**64
    assert sorted(out["choices"], key=lambda c: c["index"])[1]["text"] == wrapped["choices"][0]["text"]


def test_over_capacity_is_always_429_and_every_200_is_a_whole_reply(tmp_path):
    server = serve(make_models(tmp_path)[:1], max_batch=1, max_queue=2)
    gate = Gate(server.app.state.schedulers["lm"])  # nothing finishes while the requests arrive
    try:
        def one(i):
            body = {**GREEDY, "stream": i % 2 == 0, "n": 1 + i % 2 * 1}
            return i, _post(server, body)

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            futures = [pool.submit(one, i) for i in range(10)]
            while server.app.state.metrics.rejected.labels("lm")._value.get() + \
                    server.app.state.schedulers["lm"].pending < 10 and not all(f.done() for f in futures):
                time.sleep(0.02)  # every request is either admitted (pending) or refused, before the gate opens
            gate.open()
            answers = [f.result() for f in futures]
        codes = [r.status_code for _, r in answers]
        assert set(codes) <= {200, 429} and codes.count(429) >= 10 - 3
        for i, response in answers:
            if response.status_code == 429:
                assert response.json()["error"]["type"] == "rate_limit_error"
            elif i % 2 == 0:
                assert response.text.rstrip().endswith("data: [DONE]") and '"error"' not in response.text
            else:
                assert all(c["finish_reason"] in ("stop", "length") for c in response.json()["choices"])
    finally:
        gate.open()
        server.stop()


def test_a_whole_reply_whose_client_leaves_is_cancelled_and_frees_its_slot(tmp_path):
    server = serve(make_models(tmp_path)[:1])
    scheduler = server.app.state.schedulers["lm"]
    gate = Gate(scheduler)
    try:
        body = json.dumps({**GREEDY, "max_tokens": 80}).encode()
        with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))
            while scheduler.pending == 0:
                time.sleep(0.02)
            [job] = list(scheduler._jobs.values()) or [None]
        gate.open()  # the client has gone: the request must end now, not after 80 tokens
        for _ in range(3000):
            if scheduler.pending == 0:
                break
            time.sleep(0.01)
        assert scheduler.pending == 0 and _metric(server, "gptkit_cancelled_requests_total", model="lm") == 1
        assert job is None or len(job.request.tokens) < 80
    finally:
        gate.open()
        server.stop()
