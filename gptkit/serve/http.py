"""The HTTP server's own limits, on top of uvicorn's h11 protocol: how long a client may take to send a
request's head, how long an idle keep-alive connection stays open, and how many connections are open
at once. Slow or idle clients cannot hold the server's sockets.

    config = uvicorn_config(app, "127.0.0.1", 8000, HttpLimits(header_timeout=10, max_connections=512))
    uvicorn.Server(config).run()

uvicorn has a keep-alive timeout but no deadline for the request head; the protocol below adds one
(from the connection's start, and again after each response), and refuses a connection past the
cap with a 503 in OpenAI's error JSON instead of serving it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import GptkitError


@dataclass(frozen=True)
class HttpLimits:
    header_timeout: float = 10.0  # seconds to send a request's head, from connecting or the last response
    keep_alive: float = 5.0  # seconds an idle keep-alive connection stays open
    max_connections: int = 512  # connections open at once; one more is answered 503 and closed

    def __post_init__(self):
        if not (self.header_timeout > 0 and self.keep_alive > 0 and self.max_connections >= 1):
            raise GptkitError("--header-timeout and --keep-alive must be > 0 seconds, --max-connections >= 1")


_BUSY = json.dumps({"error": {"message": "the server has too many open connections; retry later",
                              "type": "server_error", "param": None, "code": "too_many_connections"}}).encode()


def _protocol(limits: HttpLimits):
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class LimitedH11Protocol(H11Protocol):
        """uvicorn's h11 protocol with a deadline for each request head and a cap on open connections."""

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                                b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY))
                transport.close()
                return
            self._arm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_deadline()

        def _arm_header_deadline(self) -> None:
            cycle = self.cycle  # a new request head replaces it: until then the clock runs
            self.loop.call_later(limits.header_timeout, self._header_deadline, cycle)

        def _header_deadline(self, cycle) -> None:
            if self.cycle is cycle and not self.transport.is_closing():
                self.transport.close()

    return LimitedH11Protocol


def uvicorn_config(app, host: str, port: int, limits: HttpLimits = HttpLimits(), **kw):
    """A uvicorn.Config serving `app` with these limits (kw: other uvicorn settings, e.g. log_level)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, http=_protocol(limits), timeout_keep_alive=limits.keep_alive,
                          **kw)
