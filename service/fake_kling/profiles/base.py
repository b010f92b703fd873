"""What an API shape (official Kling, or a gateway of kling-api.md §6) provides to the app.

A profile owns everything that differs between shapes: its routes and field names, the
success and error envelopes, and how it calls back (:class:`CallbackStyle`: the body for each
state, signing, retries, directives that make no sense for it). The simulator core, media and
introspection are shared. A new shape is one more module that implements :class:`Profile`,
named in :data:`service.fake_kling.profiles.PROFILES`.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..auth import Authenticator
from ..callbacks import CallbackStyle
from ..errors import KlingError
from ..simulator import Simulator


class Profile(Protocol):
    """One wire shape of the provider."""

    name: str

    @property
    def callbacks(self) -> CallbackStyle:
        """How this shape calls back."""
        ...

    def api_routes(self, simulator: Simulator, auth: Authenticator) -> list[BaseRoute]:
        """The create/query/list routes, relative to the mount point (``/`` and ``/kling``)."""
        ...

    def error_response(self, error: KlingError) -> Response:
        """The error envelope for ``error``, with its HTTP status."""
        ...


async def json_body(request: Request) -> Any:
    """The request's JSON body; 1200 when it is not JSON (each shape renders it its way)."""
    try:
        return json.loads(await request.body())
    except ValueError:
        raise KlingError(1200, "Invalid request body: not valid JSON") from None


def seconds(millis: int) -> int:
    """Kling keeps milliseconds; OpenAI-style and new-api fields are in seconds."""
    return millis // 1000
