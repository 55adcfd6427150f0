"""Errors in OpenAI's JSON with the right status, limits, a client that leaves, and SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from .conftest import Running, free_port, make_models

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


def _metric(served, name: str, **labels) -> float:
    text = httpx.get(served.url + "/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + ("{" + wanted + "}" if wanted else " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_client_that_leaves_mid_stream_frees_its_slot(served):
    scheduler = served.app.state.schedulers["lm"]
    before = _metric(served, "gptkit_cancelled_requests_total", model="lm")
    body = {"model": "lm", "prompt": "hello", "max_tokens": 90, "temperature": 0, "stream": True}
    with httpx.stream("POST", served.url + "/v1/completions", json=body, headers=KEY, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break  # one chunk read, then the connection closes
    deadline = time.time() + 20
    while scheduler.pending and time.time() < deadline:
        time.sleep(0.05)
    assert scheduler.pending == 0 and not scheduler.engine.busy
    assert _metric(served, "gptkit_cancelled_requests_total", model="lm") == before + 1


def test_metrics_count_requests_tokens_and_latency(served):
    _post(served, "/v1/completions", {"model": "lm", "prompt": "hi", "max_tokens": 3})
    assert _metric(served, "gptkit_requests_total", route="/v1/completions", status="200") >= 1
    assert _metric(served, "gptkit_generation_tokens_total", model="lm") >= 3
    assert _metric(served, "gptkit_time_to_first_token_seconds_count", model="lm") >= 1


def test_a_full_queue_answers_429(tmp_path):
    from gptkit.serve import ServeSettings, create_app, load_served

    paths = make_models(tmp_path)
    app = create_app([load_served(paths[0], dtype="fp32")], ServeSettings(max_batch=1, max_queue=1))
    running = Running(app, free_port())
    engine = app.state.schedulers["lm"].engine
    gate, step = threading.Event(), engine.step
    engine.step = lambda: gate.wait(30) and step()  # the engine holds still until the refusal is seen
    try:
        body = {"model": "lm", "prompt": "hello", "max_tokens": 20, "temperature": 0, "stream": True}
        streams = [httpx.stream("POST", running.url + "/v1/completions", json=body, timeout=60) for _ in range(2)]
        opened = [s.__enter__() for s in streams]  # one takes the slot, one waits: the queue is full
        refused = httpx.post(running.url + "/v1/completions", json={**body, "stream": False}, timeout=60)
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
        gate.set()
        for response, stream in zip(opened, streams):
            assert "[DONE]" in response.read().decode()
            stream.__exit__(None, None, None)
    finally:
        running.stop()


def test_sigterm_during_streams_finishes_them_and_exits_0(tmp_path):
    paths = make_models(tmp_path)
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "gptkit", "serve", str(paths[0]), "--port", str(port),
                               "--dtype", "fp32"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.HTTPError:
                assert time.time() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.2)
        body = {"model": "lm", "prompt": "hello", "max_tokens": 60, "temperature": 0, "stream": True}
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))
            server.send_signal(signal.SIGTERM)
            rest = list(lines)
        events = [line.removeprefix("data: ") for line in rest if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and json.loads(events[-2])["choices"][0]["finish_reason"] == "length"
        assert server.wait(timeout=60) == 0
    finally:
        server.kill()
