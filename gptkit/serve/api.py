"""The HTTP API: OpenAI's routes (models, completions, chat completions, embeddings), gptkit's
/v1/answers for extractive QA and /v1/search, /health, /metrics and the playground at /.

    app = create_app([load_served("runs/chat/best")], ServeSettings(api_key="secret"))
    uvicorn.run(app, host="127.0.0.1", port=8000)       # or gptkit.serve.http.run(app, ...) with its limits

Model work never runs on the event loop: generation, embeddings (a few inputs at a time), search and
extractive answers run in the engine loop's thread, between steps; tokenizing runs in worker threads.
"""

from __future__ import annotations

import base64
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from .errors import ApiError, add_error_handlers
from .generation import add_generation_routes
from .guard import Guard
from .metrics import Metrics
from .models import ServedModel
from .scheduler import EngineLoop, Scheduler
from .schemas import AnswerRequest, EmbeddingRequest, SearchRequest

EMBED_CHUNK = 8  # embeddings inputs computed between two engine steps


@dataclass(frozen=True)
class ServeSettings:
    api_key: str | None = None  # clients send "Authorization: Bearer KEY"; None = open
    max_batch: int = 8  # requests decoded together, per model
    max_queue: int = 64  # requests waiting for a slot before 429
    prefill_chunk: int = 64  # prompt tokens read per pass (and the prefix cache's block)
    prefix_cache_mb: float = 256  # keys and values of shared prompt prefixes kept; 0 = no prefix cache
    max_n: int = 8  # choices per request
    max_tokens: int | None = None  # a cap on prompt + max_tokens below the context window
    max_body_bytes: int = 1 << 20
    max_inputs: int = 256  # texts per embeddings request
    cors_origins: tuple[str, ...] = ()


@dataclass
class ServerState:
    """What the routes share: the served models by name, their schedulers, the metrics and the settings."""

    models: dict[str, ServedModel]
    settings: ServeSettings
    engine: EngineLoop
    metrics: Metrics = field(default_factory=Metrics)
    schedulers: dict[str, Scheduler] = field(default_factory=dict)

    def pick(self, name: str, *kinds: str) -> ServedModel:
        """The served model called `name`, which must be of one of `kinds` (404 unknown, 400 the wrong kind)."""
        if name not in self.models:
            raise ApiError(404, f"model {name!r} is not served here; models: {', '.join(self.models)}", "model",
                           "model_not_found")
        kind = self.models[name].kind
        if kind in kinds:
            return self.models[name]
        if kinds == ("chat",) and kind in ("lm", "task"):
            raise ApiError(400, f"model {name!r} has no chat template (it was not fine-tuned on chat): send its "
                                f"text to /v1/completions instead", "model")
        raise ApiError(400, f"model {name!r} is of kind {kind!r}; this route needs a model of kind "
                            f"{' or '.join(map(repr, kinds))}", "model")

    def stopped(self) -> list[str]:
        return [name for name, scheduler in self.schedulers.items() if not scheduler.alive]


def create_app(served: list[ServedModel], settings: ServeSettings = ServeSettings(),
               engine: EngineLoop | None = None) -> FastAPI:
    """The app for these models. Their engines step on `engine`, a loop its caller runs (`gptkit serve` runs it
    in the main thread, where PyTorch is fastest); by default a loop of the app's own, in a thread that starts
    and stops with the app. Either way the loop stops when the app shuts down."""
    loop = engine or EngineLoop()
    state = ServerState({m.name: m for m in served}, settings, loop)
    for m in served:
        if m.generates:
            state.schedulers[m.name] = loop.add(
                m.model, settings.max_batch, settings.max_queue, settings.prefill_chunk, settings.prefix_cache_mb,
                state.metrics.on_step(m.name), state.metrics.engine_errors.labels(m.name).inc)

    @asynccontextmanager
    async def lifespan(app):
        if engine is None:
            loop.start()
        yield
        loop.stop()

    app = FastAPI(title="gptkit", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.schedulers, app.state.metrics, app.state.served = state.schedulers, state.metrics, state.models
    add_error_handlers(app)
    _add_routes(app, state)
    add_generation_routes(app, state)
    _add_reading_routes(app, state)
    app.add_middleware(Guard, metrics=state.metrics, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)
    if settings.cors_origins:  # outside the guard: a browser's preflight carries no key and must still be answered
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                           allow_headers=["*"])
    return app


def _model_card(m: ServedModel) -> dict:
    return {"id": m.name, "object": "model", "created": 0, "owned_by": "gptkit", "kind": m.kind}


def _add_routes(app, state: ServerState) -> None:
    @app.get("/health")
    async def health():
        stopped = state.stopped()
        if stopped:  # a model whose engine stopped answers nothing: a load balancer should stop sending here
            return JSONResponse({"status": "unhealthy", "stopped": stopped, "models": list(state.models)}, 503)
        return {"status": "ok", "models": list(state.models)}

    @app.get("/metrics")
    async def prometheus():
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", response_class=HTMLResponse)
    async def playground():
        return (resources.files("gptkit.serve") / "static" / "index.html").read_text("utf-8")

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [_model_card(m) for m in state.models.values()]}

    @app.get("/v1/models/{name:path}")
    async def retrieve_model(name: str):
        if name not in state.models:
            raise ApiError(404, f"model {name!r} is not served here; models: {', '.join(state.models)}", "model",
                           "model_not_found")
        return _model_card(state.models[name])


def _add_reading_routes(app, state: ServerState) -> None:
    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest):
        served = state.pick(body.model, "encoder")
        one = isinstance(body.input, str) or (body.input and isinstance(body.input[0], int))
        inputs = [body.input] if one else body.input
        limit = state.settings.max_inputs
        if not inputs or len(inputs) > limit or not all(t.strip() if isinstance(t, str) else t for t in inputs):
            raise ApiError(400, f"input: give 1 to {limit} non-empty texts (or lists of token ids)", "input")
        if body.dimensions is not None and body.dimensions != served.encoder.info.dim:
            raise ApiError(400, f"dimensions: this encoder's vectors have {served.encoder.info.dim} dimensions; "
                                f"gptkit does not shorten them", "dimensions", "unsupported_parameter")
        vectors, tokens = await _embed(state.engine, served, inputs)
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.tobytes()).decode() if body.encoding_format == "base64"
                 else v.tolist()} for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": served.name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.post("/v1/search")
    async def search(body: SearchRequest):
        served = state.pick(body.model, "index")
        if not body.query.strip():
            raise ApiError(400, "query: give words to search for", "query")
        hits = await state.engine.call(lambda: served.searcher.search(body.query, body.k, body.mode))
        return {"object": "list", "model": served.name, "data": [
            {"object": "search_result", "rank": rank, "score": hit.score, "document": hit.chunk.doc,
             "start": hit.chunk.start, "end": hit.chunk.end, "text": hit.chunk.text}
            for rank, hit in enumerate(hits, 1)]}

    @app.post("/v1/answers")
    async def answers(body: AnswerRequest):
        served = state.pick(body.model, "extractive")
        span = await state.engine.call(lambda: _answer(served, body.context, body.question))
        return {"id": f"ans-{uuid.uuid4().hex}", "object": "answer", "created": int(time.time()),
                "model": served.name, "answer": span.text, "start": span.start, "end": span.end,
                "score": span.score}


async def _embed(engine: EngineLoop, served: ServedModel, inputs: list) -> tuple[np.ndarray, int]:
    """The vectors, EMBED_CHUNK inputs at a time in the engine loop: between two chunks the streams take a step,
    so a large request slows them a little instead of contending with them for the cores."""
    chunks = [inputs[i : i + EMBED_CHUNK] for i in range(0, len(inputs), EMBED_CHUNK)]
    vectors = [await engine.call(lambda c=c: served.encoder.embed(c).astype(np.float32)) for c in chunks]
    tokens = await run_in_threadpool(
        lambda: sum(len(served.encoder.token_spans(t)) if isinstance(t, str) else len(t) for t in inputs))
    return np.concatenate(vectors), tokens


def _answer(served: ServedModel, context: str, question: str):
    from ..data.formats import qa_record
    from ..eval.qa import answer_questions

    return answer_questions(served.model, served.tokenizer, served.task, [qa_record(context, question)])[0]
