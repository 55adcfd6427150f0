"""The generating routes, /v1/completions and /v1/chat/completions: a request's text (or token ids) to
prompts, checked against the window and the limits, admitted to the scheduler, answered.

Text from a request is text: a special token's spelling in a prompt or a message ("<|endoftext|>")
is encoded as ordinary characters; special tokens enter the context only where the chat or task
template puts them, or as token ids the client sends. Tokenizing runs in a worker thread, after a
check on the text's length that costs nothing, so a large prompt never stalls the other streams.
"""

from __future__ import annotations

from fastapi import Request as HttpRequest
from starlette.concurrency import run_in_threadpool

from ..errors import GptkitError
from ..generate import Request
from ..generate.engine import prompt_logprobs
from .errors import ApiError
from .models import ServedModel
from .responses import ClientGone, Generation, chat_response, completion_response, gone_response
from .scheduler import EngineStopped, QueueFull
from .schemas import ChatRequest, CompletionRequest

NORMALIZER_SLACK = 4  # a normalizer may shrink text (NFC joins a letter and its accent): the bound allows for it


def add_generation_routes(app, state) -> None:
    """state: the app's ServerState (models, schedulers, metrics, settings)."""

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, http: HttpRequest):
        served = state.pick(body.model, "lm", "chat", "task")
        if not body.prompt:
            raise ApiError(400, "prompt: give a prompt (or a list of them)", "prompt")
        scheduler = state.schedulers[served.name]
        if isinstance(body.prompt[0], (int, list)):  # token ids: one prompt, or a list of them
            prompts = [body.prompt] if isinstance(body.prompt[0], int) else body.prompt
            return await _generate(state, served, body, http, [list(p) for p in prompts], body.logprobs,
                                   body.max_tokens, completion_response)
        texts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        task = served.kind == "task"
        if task:  # the input through the task's template (echo shows the rendered prompt)
            texts = [served.task_prompt(served.tokenizer.literal(t)) for t in texts]
        _check_length(served, texts, scheduler.window)
        prompts = await run_in_threadpool(lambda: [_ids(served, t, task) for t in texts])
        return await _generate(state, served, body, http, prompts, body.logprobs, body.max_tokens,
                               completion_response, None if task else texts)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, http: HttpRequest):
        served = state.pick(body.model, "chat")
        if not body.messages or body.messages[-1].role == "assistant":
            raise ApiError(400, "messages must not be empty and must end with a user (or system) message",
                           "messages")
        conversation = served.chat()
        literal = served.tokenizer.literal
        conversation.messages = [{k: literal(v) if isinstance(v, str) else v
                                  for k, v in m.model_dump(exclude_none=True).items()} for m in body.messages]
        text = conversation.render()
        _check_length(served, [text], state.schedulers[served.name].window)
        prompt = await run_in_threadpool(_ids, served, text, True)
        top = (body.top_logprobs or 0) if body.logprobs else None
        return await _generate(state, served, body, http, [prompt], top,
                               body.max_completion_tokens or body.max_tokens, chat_response)


def _ids(served: ServedModel, text: str, rendered: bool) -> list[int]:
    """A prompt's ids: a rendered template's (its special tokens kept) or a user's text (none); an empty
    text is end-of-text, the start of a new document."""
    if not text:
        return [served.tokenizer.eot_id]
    return served.tokenizer.encode_rendered(text) if rendered else served.tokenizer.encode_text(text)


def _check_length(served: ServedModel, texts: list[str], window: int) -> None:
    """Refuse, before tokenizing, a text that cannot fit the window whatever its tokens."""
    limit = served.tokenizer.longest_token * window * NORMALIZER_SLACK
    if any(len(t) > limit for t in texts):
        raise ApiError(400, f"the prompt has more than {limit:,} characters: far above the context window of "
                            f"{window} tokens; shorten it", "prompt", "context_length_exceeded")


async def _generate(state, served: ServedModel, body, http: HttpRequest, prompts: list[list[int]],
                    logprobs: int | None, max_tokens: int | None, respond, texts: list[str] | None = None):
    """Check the request against the window and limits, admit all its choices at once, then answer it
    whole or as a stream."""
    settings, scheduler = state.settings, state.schedulers[served.name]
    if body.n * len(prompts) > settings.max_n:
        raise ApiError(400, f"n is {body.n} for {len(prompts)} prompt(s); this server returns at most "
                            f"{settings.max_n} choices", "n")
    window = min(scheduler.window, settings.max_tokens or scheduler.window)
    longest = max(map(len, prompts))
    max_tokens = max_tokens or max(1, window - longest)
    if longest + max_tokens > window:
        raise ApiError(400, f"the prompt has {longest} tokens and max_tokens is {max_tokens}: together above "
                            f"the limit of {window} tokens; shorten the prompt or lower max_tokens", "max_tokens",
                       "context_length_exceeded")
    decoding = body.decoding(max_tokens, served.tokenizer.eot_id)
    requests = [Request(list(p), decoding.seed_offset(j), logprobs) for p in prompts for j in range(body.n)]
    try:
        jobs = scheduler.submit_all(requests)  # all the request's choices, before any reply goes out
    except GptkitError as e:
        raise ApiError(400, str(e), "prompt") from None
    except QueueFull as e:
        state.metrics.rejected.labels(served.name).inc()
        raise ApiError(429, f"the server is busy ({e}); retry later", None, "rate_limit_exceeded") from None
    except EngineStopped as e:
        raise ApiError(503, str(e), None, "engine_stopped") from None
    texts = texts if texts is not None else [served.tokenizer.decode(p) for p in prompts]
    gen = Generation(served, scheduler, jobs, prompts, texts, logprobs, state.metrics, http)
    try:
        if getattr(body, "echo", False) and logprobs is not None:
            gen.prompt_logprobs = [await scheduler.call(lambda p=p: prompt_logprobs(served.model, p, logprobs))
                                   for p in prompts]
        return await respond(gen, body)
    except ClientGone:
        return gone_response()
    except BaseException:
        gen.close()
        raise

