"""A real server on a free loopback port, serving tiny models the tests make: a plain LM, a chat model,
an encoder."""

import socket
import threading
import time

import pytest
import torch

from gptkit import GPT, ModelConfig, Tokenizer, save_checkpoint
from gptkit.data import Task

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

TEXTS = ["hello world, the quick brown fox jumps over the lazy dog", "a cat sat on the mat; the end.",
         "numbers 1 2 3 and words that repeat repeat repeat"] * 20


# Llama's block: the server's models in the second round of every test that takes `served`
LLAMA = dict(norm="rmsnorm", mlp="swiglu", positions="rope", n_kv_head=1, bias=False, tie_embeddings=False)


def make_models(root, arch: str = "gpt2"):
    torch.manual_seed(0)
    tok = Tokenizer.train_bpe(TEXTS, vocab_size=320)
    shape = dict(vocab_size=tok.vocab_size, block_size=96, n_layer=2, n_head=2, n_embd=32,
                 **(LLAMA if arch == "llama" else {}))
    save_checkpoint(root / "lm", GPT(ModelConfig(**shape)), tok)
    save_checkpoint(root / "chat", GPT(ModelConfig(**shape)), tok, extra={"task": Task("chat").to_dict()})
    save_checkpoint(root / "enc", GPT(ModelConfig(**shape, pooling="mean")), tok)
    return [root / "lm", root / "chat", root / "enc"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """uvicorn in a thread of the test process; `url` is its base."""

    def __init__(self, app, port: int, limits=None):
        from gptkit.serve.http import HttpLimits, uvicorn_config

        self.server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, limits or HttpLimits(),
                                                    log_level="warning"))
        self.server.install_signal_handlers = lambda: None  # not the main thread
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{port}"
        self.app = app
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.05)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The three models behind one server (Llama's block is served in test_generation and test_models)."""
    from gptkit.serve import ServeSettings, create_app, load_served

    paths = make_models(tmp_path_factory.mktemp("models"))
    app = create_app([load_served(p, dtype="fp32") for p in paths],
                     ServeSettings(api_key="sesame", max_batch=4, max_queue=8, max_n=4, max_body_bytes=20_000))
    running = Running(app, free_port())
    running.paths = {p.name: p for p in paths}
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(served):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=served.url + "/v1", api_key="sesame", max_retries=0, timeout=60)


def serve(paths, limits=None, **settings) -> Running:
    """A server of its own for a test that changes its settings or its engine; stop() it."""
    from gptkit.serve import ServeSettings, create_app, load_served

    app = create_app([load_served(p, dtype="fp32") for p in paths], ServeSettings(**settings))
    return Running(app, free_port(), limits)


class Gate:
    """Holds a scheduler's engine still until `open()`: requests queue up but no step runs."""

    def __init__(self, scheduler):
        self.event, self.engine = threading.Event(), scheduler.engine
        self.step = self.engine.step
        self.engine.step = self._step

    def _step(self):
        assert self.event.wait(60), "the gate was never opened"
        return self.step()

    def open(self):
        self.event.set()
