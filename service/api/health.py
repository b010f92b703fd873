"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.tasks import services_of
from service.errors import StorageError
from service.webhooks.metrics import REGISTRY as WEBHOOK_METRICS


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await services_of(request).storage.ping()
    except StorageError as exc:
        return JSONResponse({"status": "unavailable", "message": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    """This app's HTTP metrics and the deliveries this process made, in one exposition."""
    body = generate_latest(request.state.metrics.registry) + generate_latest(WEBHOOK_METRICS)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
