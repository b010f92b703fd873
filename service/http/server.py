"""The uvicorn configuration ``omnihook serve`` runs the app with, its guards included."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp, Scope

from service.http.limits import ServerLimits
from service.http.protocol import guarded_protocol
from service.http.request_guard import RequestGuard


def server_config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    body_limit: Callable[[Scope], int | None],
    forwarded_allow_ips: str | None = None,
    log_level: str = "info",
    limits: ServerLimits | None = None,
    **options: object,
) -> uvicorn.Config:
    """``app`` behind the request guard, served by the guarded h11 protocol. ``body_limit``
    gives the largest body a request may have (by its scope; None: the app caps it itself).

    Proxy headers on: behind a PaaS router or a reverse proxy, the client address and the scheme
    (for public URLs and the loopback-only rule) come from X-Forwarded-*. ``options`` are
    further ``uvicorn.Config`` arguments (``log_config``, ``lifespan``...).
    """
    limits = limits or ServerLimits()
    return uvicorn.Config(
        RequestGuard(app, limits=limits, body_limit=body_limit),
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level=log_level,
        http=guarded_protocol(limits),
        # No WebSocket: the service has none, and an upgraded connection would leave the
        # protocol that counts it against the connection cap.
        ws="none",
        timeout_keep_alive=limits.keep_alive,
        **options,  # type: ignore[arg-type]
    )
