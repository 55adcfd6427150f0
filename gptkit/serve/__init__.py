"""Serving: an OpenAI-compatible HTTP API over the continuous-batching engine, and a playground page.

    from gptkit.serve import ServeSettings, create_app, load_served
    app = create_app([load_served("runs/chat/best", name="chat")], ServeSettings(max_batch=8))

Needs the `serve` extra (fastapi, uvicorn, prometheus-client). `gptkit serve` runs it.
"""

from ..errors import require_extra

require_extra("fastapi", "serve")
require_extra("prometheus_client", "serve")

from .api import ServeSettings, create_app  # noqa: E402
from .models import ServedModel, load_served  # noqa: E402

__all__ = ["ServeSettings", "create_app", "ServedModel", "load_served"]
