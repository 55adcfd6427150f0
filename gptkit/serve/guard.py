"""What every request passes first (a plain ASGI middleware, so streams are not buffered): the API key,
the body-size limit, and counting requests by route and status for /metrics."""

from __future__ import annotations

import hmac
import json

from .metrics import Metrics

OPEN_PATHS = ("/", "/health", "/metrics", "/favicon.ico")  # no key needed: the page asks for it itself
ROUTES = ("/v1/models", "/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/answers", "/v1/search",
          "/health", "/metrics", "/")


class Guard:
    def __init__(self, app, metrics: Metrics, api_key: str | None, max_body_bytes: int):
        self.app, self.metrics = app, metrics
        self.api_key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def counted(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await _send_error(counted, *refusal)
            else:
                await self.app(scope, receive, counted)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "other"
            self.metrics.requests.labels(route, str(status)).inc()

    def _refusal(self, scope) -> tuple[int, str, str] | None:
        headers = dict(scope["headers"])
        if self.api_key is not None and scope["path"] not in OPEN_PATHS and not scope["path"].startswith("/static"):
            given = headers.get(b"authorization", b"").removeprefix(b"Bearer ").strip()
            if not hmac.compare_digest(given, self.api_key):  # constant time: the key is not guessed byte by byte
                return 401, "invalid or missing API key: send 'Authorization: Bearer KEY'", "invalid_api_key"
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return 413, f"request body of {int(length):,} bytes is above the limit of {self.max_body_bytes:,}", \
                "request_too_large"
        return None


async def _send_error(send, status: int, message: str, code: str) -> None:
    kind = "authentication_error" if status == 401 else "invalid_request_error"
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
