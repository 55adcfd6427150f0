"""What every request passes first (a plain ASGI middleware, so streams are not buffered): the API key,
the body-size limit, and counting requests by route and status for /metrics.

The body limit counts the bytes actually received, whether the client sent a Content-Length or a
chunked body: the body is read here (up to the limit) before any route sees it, and one byte past
the limit answers 413. The key is checked as RFC 7235 says: `Authorization: Bearer KEY`, the
scheme in any case.
"""

from __future__ import annotations

import hmac

from .errors import ApiError
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
            if refusal is None:
                body, refusal = await self._read_body(receive)
            if refusal is not None:
                await _send_error(counted, refusal)
            else:
                await self.app(scope, _replay(body, receive), counted)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "/v1/models/{id}" \
                if scope["path"].startswith("/v1/models/") else "other"
            self.metrics.requests.labels(route, str(status)).inc()

    def _refusal(self, scope) -> ApiError | None:
        headers = dict(scope["headers"])
        if self.api_key is not None and scope["path"] not in OPEN_PATHS and not scope["path"].startswith("/static"):
            scheme, _, given = headers.get(b"authorization", b"").strip().partition(b" ")
            # constant time: the key is not guessed byte by byte
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.api_key):
                return ApiError(401, "invalid or missing API key: send 'Authorization: Bearer KEY'", None,
                                "invalid_api_key")
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return self._too_large(int(length))
        return None

    async def _read_body(self, receive) -> tuple[bytes, ApiError | None]:
        """The whole body, or a 413 as soon as more than max_body_bytes arrived."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: the app sees it when it asks
                return b"".join(chunks), None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return b"", self._too_large(size, at_least=True)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    def _too_large(self, size: int, at_least: bool = False) -> ApiError:
        return ApiError(413, f"request body of {'more than ' if at_least else ''}{size:,} bytes is above the "
                             f"limit of {self.max_body_bytes:,}", None, "request_too_large")


def _replay(body: bytes, receive):
    """A receive that hands the app the body already read, then the connection's own messages (a disconnect)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replayed


async def _send_error(send, error: ApiError) -> None:
    response = error.response()
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
