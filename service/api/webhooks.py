"""``/v1/webhooks`` and ``/v1/deliveries``: outgoing webhook endpoints and their deliveries.

POST   /v1/webhooks                      201 {"id", "secret", ...}: the secret, once
GET    /v1/webhooks                      {"webhooks": [...]}
GET    /v1/webhooks/{id}                 the endpoint and its operator events
PATCH  /v1/webhooks/{id}                 url, events, description, enabled, rotate_secret
DELETE /v1/webhooks/{id}                 204
GET    /v1/webhooks/{id}/deliveries      newest first, each with its attempt log
GET    /v1/deliveries/{id}               one delivery with its attempt log
POST   /v1/deliveries/{id}/retry         deliver again (same webhook-id); 409 while pending
GET    /metrics/webhooks                 Prometheus metrics of this process's deliveries
"""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.errors import error_response
from service.api.query import enum_param, limit_param
from service.api.tasks import services_of
from service.webhooks import endpoints as ops
from service.webhooks import metrics
from service.webhooks.requests import parse_new_endpoint, parse_patch
from service.webhooks.views import (
    deliveries_json,
    delivery_json,
    endpoint_json,
    operator_event_json,
)
from storage.records import DeliveryStatus

MAX_BODY = 64 * 1024


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return error_response(413, "body_too_large", "the request body is too large")
    try:
        return json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return error_response(400, "invalid_json", f"the body is not JSON: {exc}")


async def create_webhook(request: Request) -> Response:
    body = await _json_body(request)
    if isinstance(body, Response):
        return body
    endpoint = await ops.create_endpoint(services_of(request), parse_new_endpoint(body))
    return JSONResponse(endpoint_json(endpoint, with_secret=True), status_code=201)


async def list_webhooks(request: Request) -> Response:
    found = await services_of(request).storage.list_endpoints()
    return JSONResponse({"webhooks": [endpoint_json(endpoint) for endpoint in found]})


async def get_webhook(request: Request) -> Response:
    services = services_of(request)
    endpoint = await ops.get_endpoint(services, request.path_params["webhook_id"])
    events = await services.storage.list_endpoint_events(endpoint.id)
    return JSONResponse(
        {**endpoint_json(endpoint), "operator_events": [operator_event_json(e) for e in events]}
    )


async def patch_webhook(request: Request) -> Response:
    body = await _json_body(request)
    if isinstance(body, Response):
        return body
    patch = parse_patch(body)
    endpoint = await ops.update_endpoint(
        services_of(request), request.path_params["webhook_id"], patch
    )
    return JSONResponse(endpoint_json(endpoint, with_secret=patch.rotate_secret))


async def delete_webhook(request: Request) -> Response:
    await ops.delete_endpoint(services_of(request), request.path_params["webhook_id"])
    return Response(status_code=204)


async def webhook_deliveries(request: Request) -> Response:
    services = services_of(request)
    endpoint = await ops.get_endpoint(services, request.path_params["webhook_id"])
    params = request.query_params
    status = enum_param(params, "status", DeliveryStatus)
    limit = limit_param(params)
    before = None
    if params.get("cursor"):
        last = await services.storage.get_delivery(params["cursor"])
        if last is None or last.endpoint_id != endpoint.id:
            return error_response(400, "bad_request", "cursor is not one this service handed out")
        before = (last.created_at, last.id)
    found = await services.storage.list_deliveries(
        endpoint_id=endpoint.id, status=status, limit=limit + 1, before=before
    )
    page = found[:limit]
    attempts = await services.storage.list_delivery_attempts([d.id for d in page])
    return JSONResponse(
        {
            "deliveries": deliveries_json(page, attempts),
            "next_cursor": page[-1].id if len(found) > limit else None,
        }
    )


async def get_delivery(request: Request) -> Response:
    services = services_of(request)
    delivery = await ops.get_delivery(services, request.path_params["delivery_id"])
    attempts = await services.storage.list_delivery_attempts([delivery.id])
    return JSONResponse(delivery_json(delivery, attempts))


async def retry_delivery(request: Request) -> Response:
    services = services_of(request)
    delivery = await ops.retry_delivery(services, request.path_params["delivery_id"])
    attempts = await services.storage.list_delivery_attempts([delivery.id])
    return JSONResponse(delivery_json(delivery, attempts), status_code=202)


async def webhook_metrics(request: Request) -> Response:
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
