"""The app factory of the simulated provider.

Routes (each also under ``/kling``, the way gateways serve them, except ``/_sim``):

- the profile's API (:mod:`.profiles`): for ``kling``, ``POST``/``GET /v1/videos/omni-video``
  and ``GET .../{task_id or external id}``; ``newapi`` and ``apimodels`` have their own
- ``GET``/``HEAD /media/{video_id}.mp4`` (``.png`` for images): the generated outputs
  (public, like CDN links)
- ``GET /_sim/tasks``: simulator-only introspection
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from .auth import Authenticator
from .config import FakeKlingConfig
from .errors import KlingError
from .introspection import IntrospectionEndpoint
from .media import MediaLibrary, load_sample
from .media_http import MediaEndpoint
from .profiles import Profile, get_profile
from .simulator import Simulator

logger = logging.getLogger(__name__)

GATEWAY_PREFIX = "/kling"


def create_fake_kling_app(config: FakeKlingConfig) -> Starlette:
    """Build a simulated Kling; its tasks run while the app's lifespan is running."""
    profile = get_profile(config)
    simulator = Simulator(config, callbacks=profile.callbacks, media=MediaLibrary(load_sample()))
    media = MediaEndpoint(simulator.media)
    introspection = IntrospectionEndpoint(simulator)

    served: list[BaseRoute] = [
        *profile.api_routes(simulator, Authenticator(config)),
        Route("/media/{video_id}.mp4", media.serve, methods=["GET", "HEAD"]),
        Route("/media/{video_id}.png", media.serve, methods=["GET", "HEAD"]),
    ]
    routes: list[BaseRoute] = [
        Route("/_sim/tasks", introspection.tasks, methods=["GET"]),
        Mount(GATEWAY_PREFIX, routes=served),
        *served,
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with simulator.running():
            logger.info(
                "fake Kling started (profile %s)",
                profile.name,
                extra={"action": "fake_kling.started"},
            )
            yield

    errors = _ErrorRenderer(profile)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={KlingError: errors.kling, HTTPException: errors.http},
    )
    app.state.fake_kling = simulator
    return app


class _ErrorRenderer:
    """Every error in the profile's envelope, with the HTTP status of kling-api.md §4."""

    def __init__(self, profile: Profile) -> None:
        self._profile = profile

    async def kling(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, KlingError)
        return self._profile.error_response(exc)

    async def http(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            error = KlingError(1202, f"method {request.method} is not allowed here")
        elif exc.status_code == 404:
            error = KlingError(1202, f"no such endpoint: {request.url.path}")
        else:
            error = KlingError(1200, str(exc.detail))
        response = self._profile.error_response(error)
        if exc.status_code == 405 and exc.headers:
            response.headers.update(exc.headers)
        return response
