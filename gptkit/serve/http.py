"""The HTTP server's own limits, on top of uvicorn's h11 protocol: how long a client may take to send a
request (its head and its body), how long an idle keep-alive connection stays open, and how many
connections are open at once. Slow or idle clients cannot hold the server's sockets.

    config = uvicorn_config(app, "127.0.0.1", 8000, HttpLimits(request_timeout=10, max_connections=512))
    uvicorn.Server(config).run()

uvicorn has a keep-alive timeout but no deadline for receiving a request; the protocol below adds
one (from the connection's start, and again after each response), and refuses a connection past
the cap with a 503 in OpenAI's error JSON instead of serving it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import GptkitError


@dataclass(frozen=True)
class HttpLimits:
    request_timeout: float = 10.0  # seconds to send a whole request, from connecting or the last response
    keep_alive: float = 5.0  # seconds an idle keep-alive connection stays open
    max_connections: int = 512  # connections open at once; one more is answered 503 and closed

    def __post_init__(self):
        if not (self.request_timeout > 0 and self.keep_alive > 0 and self.max_connections >= 1):
            raise GptkitError("--request-timeout and --keep-alive must be > 0 seconds, --max-connections >= 1")


_BUSY = json.dumps({"error": {"message": "the server has too many open connections; retry later",
                              "type": "server_error", "param": None, "code": "too_many_connections"}}).encode()


def _protocol(limits: HttpLimits):
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class LimitedH11Protocol(H11Protocol):
        """uvicorn's h11 protocol with a deadline for receiving each request and a cap on open connections."""

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                                b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY))
                transport.close()
                return
            self._arm_request_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_request_deadline()

        def _arm_request_deadline(self) -> None:
            self._deadline = deadline = object()  # a later arming makes this one moot
            self.loop.call_later(limits.request_timeout, self._request_deadline, deadline)

        def _request_deadline(self, deadline) -> None:
            # the client still owes its request: no head yet (IDLE), or not all of its body (SEND_BODY)
            owed = self.conn.their_state in (h11.IDLE, h11.SEND_BODY)
            if deadline is self._deadline and owed and not self.transport.is_closing():
                self.transport.close()

    return LimitedH11Protocol


def uvicorn_config(app, host: str, port: int, limits: HttpLimits = HttpLimits(), **kw):
    """A uvicorn.Config serving `app` with these limits (kw: other uvicorn settings, e.g. log_level)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, http=_protocol(limits), timeout_keep_alive=limits.keep_alive,
                          **kw)
