"""The HTTP API: OpenAI's routes (models, completions, chat completions, embeddings), gptkit's
/v1/answers for extractive QA, /health, /metrics and the playground at /.

    app = create_app([load_served("runs/chat/best")], ServeSettings(api_key="secret"))
    uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import base64
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ..errors import GptkitError
from .guard import Guard
from .metrics import Metrics
from .models import ServedModel
from .responses import chat_response, completion_response
from .scheduler import QueueFull, Scheduler
from .schemas import AnswerRequest, ApiError, ChatRequest, CompletionRequest, EmbeddingRequest, SearchRequest


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


def create_app(served: list[ServedModel], settings: ServeSettings = ServeSettings()) -> FastAPI:
    models = {m.name: m for m in served}
    metrics = Metrics()
    schedulers: dict[str, Scheduler] = {}

    @asynccontextmanager
    async def lifespan(app):
        for m in served:
            if m.generates:
                schedulers[m.name] = Scheduler(m.model, settings.max_batch, settings.max_queue, settings.prefill_chunk,
                                               settings.prefix_cache_mb, metrics.on_step(m.name))
        yield
        for scheduler in schedulers.values():
            scheduler.stop()

    app = FastAPI(title="gptkit", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.schedulers, app.state.metrics = schedulers, metrics
    _add_errors(app)
    _add_routes(app, models, schedulers, metrics, settings)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                           allow_headers=["*"])
    app.add_middleware(Guard, metrics=metrics, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)
    return app


def _add_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if p != "body") or None
        return JSONResponse(ApiError(400, f"{param}: {first['msg']}", param).body(), status_code=400)

    @app.exception_handler(GptkitError)
    async def user_error(request: Request, e: GptkitError):
        return JSONResponse(ApiError(400, str(e)).body(), status_code=400)

    @app.exception_handler(404)
    async def not_found(request: Request, e):
        return JSONResponse(ApiError(404, f"no route {request.url.path}", code="not_found").body(), status_code=404)


def _pick(models: dict[str, ServedModel], name: str, *kinds: str) -> ServedModel:
    """The served model called `name`, which must be of one of `kinds` (404 unknown, 400 the wrong kind)."""
    if name not in models:
        raise ApiError(404, f"model {name!r} is not served here; models: {', '.join(models)}", "model",
                       "model_not_found")
    if "chat" in kinds and models[name].kind not in kinds:
        raise ApiError(400, f"model {name!r} has no chat template (it was not fine-tuned on chat): send its "
                            f"text to /v1/completions instead", "model")
    if models[name].kind not in kinds:
        raise ApiError(400, f"model {name!r} is a {models[name].kind} model; this route needs "
                            f"{' or '.join(kinds)}", "model")
    return models[name]


def _add_routes(app, models: dict[str, ServedModel], schedulers: dict[str, Scheduler], metrics: Metrics,
                settings: ServeSettings) -> None:
    @app.get("/health")
    async def health():
        return {"status": "ok", "models": list(models)}

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", response_class=HTMLResponse)
    async def playground():
        return (resources.files("gptkit.serve") / "static" / "index.html").read_text("utf-8")

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [{"id": m.name, "object": "model", "created": 0, "owned_by": "gptkit",
                                            "kind": m.kind} for m in models.values()]}

    _add_generation_routes(app, models, schedulers, metrics, settings)
    _add_reading_routes(app, models, settings)


def _add_generation_routes(app, models: dict[str, ServedModel], schedulers: dict[str, Scheduler], metrics: Metrics,
                           settings: ServeSettings) -> None:
    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        served = _pick(models, body.model, "lm", "chat", "task")
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts:
            raise ApiError(400, "prompt: give a prompt (or a list of them)", "prompt")
        texts = [served.task_prompt(p) for p in prompts] if served.kind == "task" else prompts
        return await _generate(served, schedulers[served.name], body, texts, metrics, settings, completion_response,
                               body.logprobs, body.max_tokens)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest):
        served = _pick(models, body.model, "chat")
        if not body.messages or body.messages[-1].role == "assistant":
            raise ApiError(400, "messages must not be empty and must end with a user (or system) message",
                           "messages")
        conversation = served.chat()
        conversation.messages = [m.model_dump() for m in body.messages]
        top = (body.top_logprobs or 0) if body.logprobs else None
        return await _generate(served, schedulers[served.name], body, [conversation.render()], metrics, settings,
                               chat_response, top, body.max_completion_tokens or body.max_tokens)


def _add_reading_routes(app, models: dict[str, ServedModel], settings: ServeSettings) -> None:
    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest):
        served = _pick(models, body.model, "encoder")
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts or len(texts) > settings.max_inputs or not all(t.strip() for t in texts):
            raise ApiError(400, f"input: give 1 to {settings.max_inputs} non-empty texts", "input")
        vectors = served.encoder.embed(texts).astype(np.float32)
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.tobytes()).decode() if body.encoding_format == "base64"
                 else v.tolist()} for i, v in enumerate(vectors)]
        tokens = sum(len(served.encoder.token_spans(t)) for t in texts)
        return {"object": "list", "data": data, "model": served.name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.post("/v1/search")
    async def search(body: SearchRequest):
        served = _pick(models, body.model, "index")
        if not body.query.strip():
            raise ApiError(400, "query: give words to search for", "query")
        hits = served.searcher.search(body.query, k=body.k, mode=body.mode)
        return {"object": "list", "model": served.name, "data": [
            {"object": "search_result", "rank": rank, "score": hit.score, "document": hit.chunk.doc,
             "start": hit.chunk.start, "end": hit.chunk.end, "text": hit.chunk.text}
            for rank, hit in enumerate(hits, 1)]}

    @app.post("/v1/answers")
    async def answers(body: AnswerRequest):
        from ..data.formats import qa_record
        from ..eval.qa import answer_questions

        served = _pick(models, body.model, "extractive")
        record = qa_record(body.context, body.question)
        span = answer_questions(served.model, served.tokenizer, served.task, [record])[0]
        return {"id": f"ans-{uuid.uuid4().hex}", "object": "answer", "created": int(time.time()),
                "model": served.name, "answer": span.text, "start": span.start, "end": span.end,
                "score": span.score}


async def _generate(served: ServedModel, scheduler: Scheduler, body, texts: list[str], metrics: Metrics,
                    settings: ServeSettings, respond, logprobs: int | None, max_tokens: int | None):
    """Check the request against the window and limits, then answer it whole or as a stream."""
    if body.n * len(texts) > settings.max_n:
        raise ApiError(400, f"n is {body.n} for {len(texts)} prompt(s); this server returns at most "
                            f"{settings.max_n} choices", "n")
    prompts = [served.tokenizer.encode(t) if t else [served.tokenizer.eot_id] for t in texts]
    window = min(scheduler.window, settings.max_tokens or scheduler.window)
    longest = max(map(len, prompts))
    max_tokens = max_tokens or max(1, window - longest)
    if longest + max_tokens > window:
        raise ApiError(400, f"the prompt has {longest} tokens and max_tokens is {max_tokens}: together above "
                            f"the limit of {window} tokens; shorten the prompt or lower max_tokens", "max_tokens",
                       "context_length_exceeded")
    decoding = body.decoding(max_tokens, served.tokenizer.eot_id)
    if scheduler.room() < body.n * len(prompts):  # all of the request's choices, before streaming starts
        metrics.rejected.labels(served.name).inc()
        raise ApiError(429, "the server is busy: too many requests are queued; retry later", None,
                       "rate_limit_exceeded", "rate_limit_error")
    try:
        return await respond(served, scheduler, body, prompts, texts, decoding, logprobs, metrics)
    except QueueFull as e:
        metrics.rejected.labels(served.name).inc()
        raise ApiError(429, f"the server is busy ({e}); retry later", None, "rate_limit_exceeded",
                       "rate_limit_error") from None
