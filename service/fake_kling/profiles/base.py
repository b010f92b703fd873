"""What an API shape (official Kling, or a gateway of kling-api.md §6) provides to the app.

A profile owns everything that differs between shapes: its routes and field names, the
success and error envelopes, and what (if anything) a callback carries. The simulator core,
media and introspection are shared. Adding ``newapi`` or ``apimodels`` means writing one more
module that implements :class:`Profile` and naming it in :data:`PROFILES`.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.responses import Response
from starlette.routing import BaseRoute

from ..auth import Authenticator
from ..errors import KlingError
from ..simulator import Simulator
from ..store import SimTask


class Profile(Protocol):
    """One wire shape of the provider."""

    name: str

    def api_routes(self, simulator: Simulator, auth: Authenticator) -> list[BaseRoute]:
        """The create/query/list routes, relative to the mount point (``/`` and ``/kling``)."""
        ...

    def callback_body(self, task: SimTask) -> dict[str, Any] | None:
        """The callback body for the task's current state, or ``None`` to send nothing."""
        ...

    def error_response(self, error: KlingError) -> Response:
        """The error envelope for ``error``, with its HTTP status."""
        ...
