"""The scheduler: a client that leaves frees its slot, a full queue is refused, batching changes no token."""

import threading
import time

import httpx

from .conftest import Running, free_port, make_models
from .test_metrics import KEY, _metric


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


def test_work_called_on_a_stopping_loop_is_answered_not_left_waiting(tmp_path):
    import asyncio

    import pytest

    from gptkit.serve import load_served
    from gptkit.serve.scheduler import EngineLoop, EngineStopped

    served = load_served(make_models(tmp_path)[0], dtype="fp32")

    async def run():
        loop = EngineLoop()
        loop.add(served.model, max_batch=1)
        loop.inbox.put(("call", None, lambda: 1, asyncio.get_running_loop().create_future()))
        pending = asyncio.get_running_loop().create_future()
        loop._calls.append((lambda: 2, pending))  # queued behind the stop
        loop.stop()
        loop.run()  # returns at once: stopped
        with pytest.raises(EngineStopped):
            await asyncio.wait_for(pending, 30)

    asyncio.run(run())
