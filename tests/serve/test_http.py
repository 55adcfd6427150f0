"""Limits that hold at the HTTP level: the body limit counts the bytes received (chunked too), slow and idle
clients are disconnected, connections are capped, CORS preflights are answered when a key is required,
and model work stays off the event loop."""

import json
import socket
import threading

import httpx
import pytest

from gptkit.serve.http import HttpLimits

from .conftest import make_models, serve

KEY = {"Authorization": "Bearer sesame"}


def _address(server):
    return "127.0.0.1", int(server.url.rsplit(":", 1)[1])


def test_a_chunked_body_above_the_limit_is_413(served):
    def chunks():  # no Content-Length: the limit must count what arrives
        for _ in range(100):
            yield b" " * 1000
        yield json.dumps({"model": "lm", "prompt": "hi"}).encode()

    response = httpx.post(served.url + "/v1/completions", content=chunks(), timeout=60,
                          headers={**KEY, "content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    small = httpx.post(served.url + "/v1/completions", timeout=60, headers={**KEY, "content-type": "application/json"},
                       content=iter([b'{"model": "lm", ', b'"prompt": "hi", "max_tokens": 2}']))
    assert small.status_code == 200 and small.json()["usage"]["completion_tokens"] >= 1


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    server = serve(make_models(tmp_path_factory.mktemp("m"))[:1], HttpLimits(request_timeout=0.5, keep_alive=0.5))
    yield server
    server.stop()


@pytest.mark.parametrize("sent", [b"", b"POST /v1/completions HTTP/1.1\r\nhost: x\r\n",
                                  b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"mo"])
def test_a_client_that_never_finishes_its_request_is_disconnected(limited, sent):
    with socket.create_connection(_address(limited), timeout=30) as sock:  # 30 s: far above the 0.5 s deadline
        sock.sendall(sent)
        assert sock.recv(1024) == b""  # closed by the server; a hang would raise socket.timeout


def test_an_idle_keep_alive_connection_is_closed_after_its_response(limited):
    with socket.create_connection(_address(limited), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received or not received.endswith(b"}"):
            received += sock.recv(4096)
        assert received.startswith(b"HTTP/1.1 200")
        assert sock.recv(1024) == b""


def test_connections_past_the_cap_get_503_json(tmp_path):
    server = serve(make_models(tmp_path)[:1], HttpLimits(request_timeout=60, max_connections=3))
    try:
        held = [socket.create_connection(_address(server), timeout=30) for _ in range(3)]
        with socket.create_connection(_address(server), timeout=30) as extra:
            answer = b""
            while chunk := extra.recv(4096):
                answer += chunk
        head, body = answer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 503") and json.loads(body)["error"]["code"] == "too_many_connections"
        for sock in held:
            sock.close()
    finally:
        server.stop()


def test_cors_preflights_are_answered_before_the_key_check(tmp_path):
    server = serve(make_models(tmp_path)[:1], api_key="sesame", cors_origins=("https://app.example",))
    origin = {"Origin": "https://app.example"}
    try:
        preflight = httpx.options(server.url + "/v1/completions", timeout=60, headers={
            **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        body = {"model": "lm", "prompt": "hi", "max_tokens": 2}
        ok = httpx.post(server.url + "/v1/completions", json=body, headers={**origin, **KEY}, timeout=60)
        refused = httpx.post(server.url + "/v1/completions", json=body, headers=origin, timeout=60)
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "https://app.example"
    finally:
        server.stop()


def test_a_large_embeddings_request_runs_between_the_streams_steps(served):
    """The encoder runs in the engine loop a few inputs at a time, never on the event loop: the streaming
    model takes a step between every two of those chunks, and the stream's tokens keep arriving."""
    encoder = served.app.state.served["enc"].encoder
    engine = served.app.state.schedulers["lm"].engine
    eot = served.app.state.served["lm"].tokenizer.eot_id
    loop = served.app.state.schedulers["lm"].loop
    steps, seen_at_chunks, received, ended, asked = [0], [], [0], [], threading.Event()
    step, embed, call = engine.step, encoder.embed, loop.call

    def counted_step():  # the stream waits at its 4th step for the embeddings request: it is still running then
        steps[0] += 1
        if steps[0] == 4:
            assert asked.wait(60)
        return step()

    async def asking(fn):
        asked.set()
        return await call(fn)

    def recorded_embed(texts):
        seen_at_chunks.append(steps[0])
        return embed(texts)

    engine.step, encoder.embed, loop.call = counted_step, recorded_embed, asking
    try:
        def stream():
            body = {"model": "lm", "prompt": "hello", "max_tokens": 90, "temperature": 0, "stream": True,
                    "logit_bias": {str(eot): -100}}  # no end-of-text: 90 tokens to stream
            with httpx.stream("POST", served.url + "/v1/completions", json=body, headers=KEY, timeout=60) as r:
                for line in r.iter_lines():
                    received[0] += line.startswith("data: {")
                    ended.append(line == "data: [DONE]")

        streaming = threading.Thread(target=stream)
        streaming.start()
        for _ in range(6000):  # until the stream has begun (it then waits at its 4th step)
            if steps[0] >= 3:
                break
            threading.Event().wait(0.01)
        texts = [f"text number {i}" for i in range(64)]
        out = httpx.post(served.url + "/v1/embeddings", json={"model": "enc", "input": texts}, headers=KEY, timeout=60)
        streaming.join()
    finally:
        engine.step, encoder.embed, loop.call = step, embed, call
    assert out.status_code == 200 and len(out.json()["data"]) == 64
    assert len(seen_at_chunks) == 8 and all(b > a for a, b in zip(seen_at_chunks, seen_at_chunks[1:]))
    assert received[0] > 0 and any(ended)  # the stream ran to its end
