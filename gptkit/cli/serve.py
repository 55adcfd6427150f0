"""`gptkit serve`: an OpenAI-compatible HTTP API (and a playground page) over one or more checkpoints."""

from __future__ import annotations

import os
import signal
import sys
import threading

from ..errors import GptkitError, require_extra
from .flags import add_model_flags


def _cmd_serve(args) -> None:
    from ..serve import ServeSettings, create_app, load_served
    from ..serve.http import HttpLimits, uvicorn_config
    from ..serve.scheduler import EngineLoop

    uvicorn = require_extra("uvicorn", "serve")
    limits = HttpLimits(args.request_timeout, args.keep_alive, args.max_connections)
    names = args.name or []
    if len(names) > len(args.checkpoints):
        raise GptkitError(f"--name given {len(names)} times for {len(args.checkpoints)} checkpoints")
    for flag, value in (("--max-batch", args.max_batch), ("--max-queue", args.max_queue), ("--max-n", args.max_n),
                        ("--port", args.port + 1)):
        if value < 1:
            raise GptkitError(f"{flag} must be at least 1, got {value}")
    served = [load_served(path, names[i] if i < len(names) else "", args.dtype, args.device)
              for i, path in enumerate(args.checkpoints)]
    if len({m.name for m in served}) < len(served):
        raise GptkitError("two checkpoints would be served under the same name: give each one with --name")
    if args.prefix_cache_mb < 0 or args.prefill_chunk < 1:
        raise GptkitError("--prefix-cache-mb must be >= 0 and --prefill-chunk >= 1")
    settings = ServeSettings(args.api_key or os.environ.get("GPTKIT_API_KEY") or None, args.max_batch,
                             args.max_queue, args.prefill_chunk, args.prefix_cache_mb, args.max_n, args.max_tokens,
                             cors_origins=tuple(args.cors or ()))
    engine = EngineLoop()
    app = create_app(served, settings, engine)
    for m in served:
        print(f"serving {m.name} ({m.kind}) from {m.path}", file=sys.stderr)
    print(f"playground and API on http://{args.host}:{args.port}/ (Ctrl-C or SIGTERM stops)", file=sys.stderr)
    server = uvicorn.Server(uvicorn_config(app, args.host, args.port, limits, log_level="warning",
                                          timeout_graceful_shutdown=args.grace))
    _run(server, engine)


def _run(server, engine) -> None:
    """uvicorn in a thread, the engines in the main thread (PyTorch's kernels are fastest there); SIGTERM or
    Ctrl-C stops admitting requests, lets in-flight ones finish, and the app's shutdown ends the engine loop."""

    def serve() -> None:
        try:
            server.run()
        except SystemExit:  # uvicorn could not start (the port is taken): it said why; the check below tells
            pass
        finally:
            engine.stop()

    def shut_down(signum, frame) -> None:
        server.force_exit = server.should_exit  # a second Ctrl-C: stop now
        server.should_exit = True

    previous = {sig: signal.signal(sig, shut_down) for sig in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=serve, name="gptkit-http")
    try:
        thread.start()
        engine.run()
        thread.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise GptkitError("the server did not start (is the port already in use? see the message above)")


def add_parsers(sub) -> None:
    p = sub.add_parser("serve", help="serve checkpoints over an OpenAI-compatible HTTP API, with a playground page",
                       usage="gptkit serve CKPT [CKPT ...] [--host 127.0.0.1] [--port 8000] [--api-key KEY]",
                       epilog="Routes: /v1/models, /v1/completions, /v1/chat/completions, /v1/embeddings, "
                              "/v1/answers (extractive QA), /v1/search, /health, /metrics; the playground is at /. "
                              "On a network, put it behind a reverse proxy that ends TLS and limits rates per key.")
    p.add_argument("checkpoints", nargs="+", help="checkpoint directories (or sentence-transformers encoders)")
    p.add_argument("--name", action="append", help="the model name clients use, one per checkpoint in order "
                   "(default: the directory's name)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (default: $GPTKIT_API_KEY, else open)")
    p.add_argument("--max-batch", type=int, default=8, help="requests decoded together per model (default 8)")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting for a slot before 429 (default 64)")
    p.add_argument("--prefill-chunk", type=int, default=64, help="prompt tokens read per pass, so running streams "
                   "keep flowing while a long prompt is read (default 64)")
    p.add_argument("--prefix-cache-mb", type=float, default=256, help="memory for the keys and values of shared "
                   "prompt prefixes (default 256; 0 turns prefix caching off)")
    p.add_argument("--max-n", type=int, default=8, help="choices per request (default 8)")
    p.add_argument("--max-tokens", type=int, help="cap prompt + max_tokens below the context window")
    p.add_argument("--cors", action="append", help="allow browser requests from this origin (repeatable)")
    p.add_argument("--grace", type=float, default=30, help="seconds in-flight requests get to finish on SIGTERM")
    p.add_argument("--request-timeout", type=float, default=10, help="seconds a client has to send a whole "
                   "request (head and body), from connecting or from the previous response; then it is disconnected "
                   "(default 10)")
    p.add_argument("--keep-alive", type=float, default=5, help="seconds an idle keep-alive connection stays open "
                   "(default 5)")
    p.add_argument("--max-connections", type=int, default=512, help="connections open at once; one more is "
                   "answered 503 and closed (default 512)")
    add_model_flags(p)
    p.set_defaults(func=_cmd_serve)
