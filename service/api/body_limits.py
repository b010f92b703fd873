"""How large a body each route of the API takes, for the server's request guard.

The guard (:mod:`service.http.request_guard`) applies the cap while a body streams in, before
any endpoint buffers it; the numbers are the endpoints' own.
"""

from __future__ import annotations

from starlette.types import Scope

from service.api.tasks import MAX_SUBMIT_BODY
from service.api.webhooks import MAX_BODY as MAX_WEBHOOK_BODY


def api_body_limit(scope: Scope) -> int | None:
    """The largest body ``/v1/*`` takes (its endpoints read bodies whole, so the cap is applied
    while the body streams in, before any of them buffers it); ``None``: not capped here
    (the callback receiver caps its bodies itself)."""
    path: str = scope["path"]
    if not path.startswith("/v1/"):
        return None
    if path == "/v1/tasks":
        return MAX_SUBMIT_BODY
    return MAX_WEBHOOK_BODY  # webhooks; no other endpoint reads a body
