"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.tasks import services_of
from service.costs.metrics import cost_exposition
from service.errors import StorageError
from service.metrics import worker_exposition
from service.submit.admission.metrics import admission_exposition
from service.webhooks.metrics import REGISTRY as WEBHOOK_METRICS


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the database answers and, in a process that runs a worker, that worker can
    run (its loops beating, not crash-looping, able to lease); 503 says why not."""
    services = services_of(request)
    try:
        await services.storage.ping()
    except StorageError as exc:
        failed = {"status": "unavailable", "reason": "storage", "message": str(exc)}
        return JSONResponse(failed, status_code=503)
    health = services.worker_health
    if health is None:  # serve --no-worker: its storage is all it needs
        return JSONResponse({"status": "ready"})
    problem = health.problem()
    if problem is not None:
        unavailable: dict[str, Any] = {
            "status": "unavailable",
            "reason": "worker",
            "message": problem,
            "worker": health.view(),
        }
        return JSONResponse(unavailable, status_code=503)
    return JSONResponse({"status": "ready", "worker": health.view()})


async def metrics(request: Request) -> Response:
    """This app's HTTP metrics, the deliveries this process made, its worker's health, its
    handler host (threads, loops, timeouts), the admission queue and the costs, in one
    exposition."""
    services = services_of(request)
    body = (
        generate_latest(request.state.metrics.registry)
        + generate_latest(WEBHOOK_METRICS)
        + worker_exposition(services.worker_health)
        + generate_latest(services.handler_host.registry)
    )
    try:
        occupancy = await services.storage.occupancy()
    except StorageError:
        pass  # the database is away (/readyz says so): the rest still tells what it knows
    else:
        limits = services.settings.provider_slots
        body += admission_exposition(occupancy, limits, services.admission)
        with contextlib.suppress(StorageError):
            body += await cost_exposition(
                services.storage, services.prices, services.settings.budgets, services.clock()
            )
    return Response(body, media_type=CONTENT_TYPE_LATEST)
