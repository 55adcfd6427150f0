"""Every error in OpenAI's shape, whatever its status or where it arises (a route, body validation, a
route that does not exist, a method a route does not take, a bug):

    {"error": {"message": "...", "type": "invalid_request_error", "param": "temperature", "code": null}}
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import GptkitError

log = logging.getLogger("gptkit.serve")

KIND = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
        500: "server_error", 503: "server_error"}  # OpenAI's error types; anything else is the client's request


class ApiError(Exception):
    """An error the client sees as OpenAI's error JSON with this HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind = kind or KIND.get(status, "invalid_request_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        return validation_error(e.errors()).response()

    @app.exception_handler(GptkitError)
    async def user_error(request: Request, e: GptkitError):
        return ApiError(400, str(e)).response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):  # 404 no route, 405 wrong method, ...
        if e.status_code == 404:
            return ApiError(404, f"no route {request.url.path}", code="not_found").response()
        if e.status_code == 405:
            return ApiError(405, f"{request.method} is not allowed on {request.url.path}",
                            code="method_not_allowed").response()
        return ApiError(e.status_code, str(e.detail)).response()

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception):  # logged with its traceback; the client gets the JSON
        log.exception("error answering %s %s", request.method, request.url.path)
        return ApiError(500, f"the server failed to answer: {type(e).__name__}", code="internal_error").response()


def validation_error(errors: list[dict]) -> ApiError:
    """A body that does not fit its schema: 400 (OpenAI's status) naming the first field at fault."""
    first = errors[0]
    param = ".".join(str(p) for p in first["loc"] if p != "body") or None
    if first["type"] == "extra_forbidden":
        return ApiError(400, f"{param}: unknown field; gptkit does not support it (remove it)", param,
                        "unsupported_parameter")
    if first["type"] == "json_invalid":
        return ApiError(400, f"the body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}")
    message = first["msg"].removeprefix("Value error, ")
    return ApiError(400, f"{param}: {message}" if param else message, param)
