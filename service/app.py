"""The web application, built by a factory from a declarative list of routes.

Shared resources (storage, HTTP clients, the handler registry) are opened once in the
lifespan and reach request handlers through ``request.state``. With ``with_worker`` the
background worker runs inside the same process (``omnihook serve`` without ``--no-worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from handlers.registry import HandlerRegistry
from service.api import (
    callbacks,
    costs,
    dashboard,
    handler_runs,
    health,
    notifications,
    openapi,
    outputs,
    tasks,
    webhooks,
)
from service.api.access import ApiAccessMiddleware
from service.api.callbacks_first import CallbacksFirst
from service.api.errors import EXCEPTION_HANDLERS
from service.bootstrap import open_services
from service.heap import freeze_startup_heap
from service.logs import install_redaction
from service.metrics import Metrics, MetricsMiddleware
from service.settings import Settings
from service.worker.loop import Worker
from storage.base import Storage

# Most of the traffic: CallbacksFirst matches it before the rest of the app's stack.
CALLBACK_ROUTE = Route("/callbacks/kling/{token}", callbacks.receive_notification, methods=["POST"])

ROUTES = [
    CALLBACK_ROUTE,
    Route("/", dashboard.dashboard, methods=["GET"]),
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", health.metrics, methods=["GET"]),
    Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
    Route("/v1/tasks", tasks.create_task, methods=["POST"]),
    Route("/v1/tasks", tasks.list_tasks, methods=["GET"]),
    Route("/v1/tasks/{task_id}", tasks.get_task, methods=["GET"]),
    Route("/v1/tasks/{task_id}/events", tasks.task_events, methods=["GET"]),
    Route("/v1/tasks/{task_id}/notifications", tasks.task_notifications, methods=["GET"]),
    Route("/v1/notifications/{notification_id}", notifications.get_notification, methods=["GET"]),
    Route(
        "/v1/notifications/{notification_id}/replay",
        notifications.replay_notification,
        methods=["POST"],
    ),
    Route("/v1/tasks/{task_id}/videos/{index:int}", outputs.task_video, methods=["GET", "HEAD"]),
    Route(
        "/v1/tasks/{task_id}/videos/{index:int}/watermarked",
        outputs.task_video_watermarked,
        methods=["GET", "HEAD"],
    ),
    Route(
        "/v1/tasks/{task_id}/videos/{index:int}/poster",
        dashboard.video_poster,
        methods=["GET", "HEAD"],
    ),
    Route(
        "/v1/tasks/{task_id}/videos/{index:int}/download",
        tasks.redownload_video,
        methods=["POST"],
    ),
    Route("/v1/costs", costs.costs, methods=["GET"]),
    Route("/v1/handler-runs", handler_runs.list_handler_runs, methods=["GET"]),
    Route("/v1/handler-runs/{run_id}", handler_runs.get_run, methods=["GET"]),
    Route("/v1/handler-runs/{run_id}/retry", handler_runs.retry_run, methods=["POST"]),
    Route("/v1/webhooks", webhooks.create_webhook, methods=["POST"]),
    Route("/v1/webhooks", webhooks.list_webhooks, methods=["GET"]),
    Route("/v1/webhooks/{webhook_id}", webhooks.get_webhook, methods=["GET"]),
    Route("/v1/webhooks/{webhook_id}", webhooks.patch_webhook, methods=["PATCH"]),
    Route("/v1/webhooks/{webhook_id}", webhooks.delete_webhook, methods=["DELETE"]),
    Route("/v1/webhooks/{webhook_id}/deliveries", webhooks.webhook_deliveries, methods=["GET"]),
    Route("/v1/deliveries/{delivery_id}", webhooks.get_delivery, methods=["GET"]),
    Route("/v1/deliveries/{delivery_id}/retry", webhooks.retry_delivery, methods=["POST"]),
    Route("/metrics/webhooks", webhooks.webhook_metrics, methods=["GET"]),
]


def create_app(
    settings: Settings,
    *,
    with_worker: bool = False,
    storage: Storage | None = None,
    registry: HandlerRegistry | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    freeze_heap: bool = False,
) -> Starlette:
    """``storage``, ``registry`` and ``transport`` replace the configured ones (tests).
    ``freeze_heap``: the app is its process's only one (``serve``), so what exists once it has
    started can be left out of garbage collection (:mod:`service.heap`)."""
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # Here rather than at import: the server has configured its loggers by now.
        install_redaction("uvicorn.access", "uvicorn.error")
        async with open_services(
            settings, storage=storage, registry=registry, transport=transport
        ) as services:
            if freeze_heap:  # the server, the app and its services have all started now
                freeze_startup_heap()
            worker = None
            if with_worker:  # it shares this process with the receiver: it gives way to it
                worker = asyncio.create_task(Worker(services, gives_way=True).run())
            try:
                yield {"services": services, "metrics": metrics}
            finally:
                if worker is not None:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker

    token = settings.api_token.get_secret_value() if settings.api_token else None
    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                CallbacksFirst,
                route=CALLBACK_ROUTE,
                receiver=callbacks.receive_notification,
                metrics=metrics,
            ),
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(ApiAccessMiddleware, token=token),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
