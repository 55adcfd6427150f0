"""`gptkit serve` as a user runs it: a process that SIGTERM stops cleanly, and bad flags."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from gptkit.cli import main
from tests.serve.conftest import free_port, make_models

pytest.importorskip("fastapi")


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


@pytest.mark.parametrize("args, message", [
    (["missing"], "missing: no such checkpoint directory"),
    (["{lm}", "--max-batch", "0"], "--max-batch must be at least 1"),
    (["{lm}", "{lm}"], "same name"),
    (["{lm}", "--name", "a", "--name", "b"], "--name given 2 times for 1 checkpoints"),
])
def test_bad_serve_arguments_are_one_line_errors(tmp_path, capsys, args, message):
    lm = make_models(tmp_path)[0]
    assert main(["serve", *[a.format(lm=lm) for a in args]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_port_in_use_is_a_one_line_error(tmp_path, capsys):
    import socket

    lm = make_models(tmp_path)[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(lm), "--port", str(port), "--dtype", "fp32"]) == 2
    assert "error: the server did not start" in capsys.readouterr().err
