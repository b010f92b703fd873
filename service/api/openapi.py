"""``GET /openapi.json``: the API's OpenAPI 3.1 description, written out once.

Hand-written rather than generated from docstrings: it is the contract users read, so it
says exactly what CONTRACT.md promises.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

_ERROR = {"$ref": "#/components/schemas/Error"}
_TASK = {"$ref": "#/components/schemas/Task"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _task_id_param() -> dict[str, Any]:
    return {
        "name": "task_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "the task's id or its external_task_id",
    }


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "omnihook",
        "version": "0.1.0",
        "description": "Webhook-driven event service for Kling Omni Video",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {"type": "string"},
                    "message": {"type": "string"},
                    "problems": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "field": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "Video": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "provider_video_id": {"type": ["string", "null"]},
                    "duration": {"type": ["string", "null"]},
                    "download_status": {"enum": ["pending", "downloading", "downloaded", "failed"]},
                    "size": {"type": ["integer", "null"]},
                    "sha256": {"type": ["string", "null"]},
                    "path": {"type": ["string", "null"]},
                    "error": {"type": ["string", "null"]},
                },
            },
            "Task": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "external_task_id": {"type": "string"},
                    "provider_task_id": {"type": ["string", "null"]},
                    "status": {
                        "enum": ["pending", "submitted", "processing", "succeeded", "failed"]
                    },
                    "status_message": {"type": "string"},
                    "model_name": {"type": "string"},
                    "request": {"type": "object"},
                    "metadata": {"type": "object"},
                    "cost": {"type": ["string", "null"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "videos": {"type": "array", "items": {"$ref": "#/components/schemas/Video"}},
                },
            },
            "Event": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string"},
                    "timestamp": {"type": "string", "format": "date-time"},
                    "data": {"type": "object"},
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/tasks": {
            "post": {
                "summary": "Submit a task (Kling Omni Video request fields, external_task_id, "
                "metadata)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {
                    "201": _json(_TASK, "the provider accepted the task"),
                    "202": _json(_TASK, "stored; the provider's answer was lost, a job finishes"),
                    "400": _json(_ERROR, "the body is not JSON"),
                    "409": _json(_ERROR, "duplicate external_task_id"),
                    "422": _json(_ERROR, "invalid request: every problem with its field path"),
                    "502": _json(_ERROR, "the provider refused: its code and message"),
                },
            },
            "get": {
                "summary": "List tasks, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "tasks": {"type": "array", "items": _TASK},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                        "a page of tasks",
                    )
                },
            },
        },
        "/v1/tasks/{task_id}": {
            "get": {
                "summary": "One task, with its handler runs",
                "parameters": [_task_id_param()],
                "responses": {"200": _json(_TASK, "the task"), "404": _json(_ERROR, "unknown")},
            }
        },
        "/v1/tasks/{task_id}/events": {
            "get": {
                "summary": "The task's events, oldest first",
                "parameters": [_task_id_param()],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "events": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Event"},
                                }
                            },
                        },
                        "events",
                    )
                },
            }
        },
        "/v1/tasks/{task_id}/notifications": {
            "get": {
                "summary": "Every notification received for the task and what it changed",
                "parameters": [_task_id_param()],
                "responses": {"200": {"description": "notifications"}},
            }
        },
        "/v1/tasks/{task_id}/videos/{index}": {
            "get": {
                "summary": "A stored video file (Range supported)",
                "parameters": [
                    _task_id_param(),
                    {
                        "name": "index",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                ],
                "responses": {
                    "200": {"description": "the MP4 file", "content": {"video/mp4": {}}},
                    "206": {"description": "a byte range of it"},
                    "409": _json(_ERROR, "not downloaded yet"),
                },
            }
        },
        "/v1/tasks/{task_id}/videos/{index}/poster": {
            "get": {
                "summary": "The video's poster frame (JPEG), once the built-in handler wrote it",
                "parameters": [
                    _task_id_param(),
                    {
                        "name": "index",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                ],
                "responses": {
                    "200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                    "404": _json(_ERROR, "no poster (yet)"),
                },
            }
        },
        "/v1/notifications/{notification_id}": {
            "get": {
                "summary": "One received notification: raw body, headers, verification, outcome",
                "parameters": [_path_param("notification_id")],
                "responses": {
                    "200": {"description": "the notification"},
                    "404": _json(_ERROR, "unknown"),
                },
            }
        },
        "/v1/notifications/{notification_id}/replay": {
            "post": {
                "summary": "Put a stored notification through the pipeline again (harmless)",
                "parameters": [_path_param("notification_id")],
                "responses": {
                    "202": {"description": "a new inbox job was enqueued"},
                    "404": _json(_ERROR, "unknown"),
                },
            }
        },
        "/v1/handler-runs": {
            "get": {
                "summary": "Handler runs (one per event and handler), filtered",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string"}},
                    {"name": "task", "in": "query", "schema": {"type": "string"}},
                    {"name": "handler", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "runs and next_cursor"}},
            }
        },
        "/v1/handler-runs/{run_id}": {
            "get": {
                "summary": "One handler run",
                "parameters": [_path_param("run_id")],
                "responses": {"200": {"description": "the run"}, "404": _json(_ERROR, "unknown")},
            }
        },
        "/v1/handler-runs/{run_id}/retry": {
            "post": {
                "summary": "Run a finished handler run again from attempt 1",
                "parameters": [_path_param("run_id")],
                "responses": {
                    "200": {"description": "queued again"},
                    "404": _json(_ERROR, "unknown"),
                    "409": _json(_ERROR, "still queued or running"),
                },
            }
        },
        "/callbacks/kling/{token}": {
            "post": {
                "summary": "The provider's status notifications (one unguessable token per task)",
                "security": [],
                "parameters": [
                    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "durably stored"},
                    "400": _json(_ERROR, "unreadable body"),
                    "401": _json(_ERROR, "bad signature"),
                    "404": _json(_ERROR, "unknown token"),
                    "409": _json(_ERROR, "the body names another task than its URL's"),
                    "413": _json(_ERROR, "body too large"),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {"200": {"description": "alive"}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness (database reachable)",
                "security": [],
                "responses": {
                    "200": {"description": "ready"},
                    "503": {"description": "database unreachable"},
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {"200": {"description": "text exposition"}},
            }
        },
    },
}


# -- outgoing webhooks -----------------------------------------------------------------------

_WEBHOOK = {"$ref": "#/components/schemas/WebhookEndpoint"}
_DELIVERY = {"$ref": "#/components/schemas/Delivery"}
_EVENT_TYPES = [
    "*",
    "task.submitted",
    "task.processing",
    "task.succeeded",
    "task.failed",
    "video.downloaded",
    "video.download_failed",
    "task.completed",
    "task.timed_out",
]
_TIME = {"type": ["string", "null"], "format": "date-time"}

SPEC["components"]["schemas"].update(
    {
        "WebhookEndpoint": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "url": {"type": "string"},
                "description": {"type": "string"},
                "events": {"type": "array", "items": {"enum": _EVENT_TYPES}},
                "enabled": {"type": "boolean"},
                "disabled_reason": {"type": ["string", "null"]},
                "failing_since": _TIME,
                "previous_secret_expires_at": _TIME,
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
                "secret": {
                    "type": "string",
                    "description": "whsec_...: only in the answers that create or rotate it",
                },
                "operator_events": {
                    "type": "array",
                    "description": "GET /v1/webhooks/{id} only: webhook.disabled, "
                    "webhook.enabled, webhook.secret_rotated",
                    "items": {"type": "object"},
                },
            },
        },
        "Delivery": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "event_id": {"type": "string", "description": "also its webhook-id"},
                "event_type": {"type": "string"},
                "endpoint_id": {"type": "string"},
                "task_id": {"type": "string"},
                "status": {"enum": ["pending", "succeeded", "failed"]},
                "attempts": {"type": "integer"},
                "last_status_code": {"type": ["integer", "null"]},
                "last_error": {"type": ["string", "null"]},
                "next_attempt_at": _TIME,
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
                "attempt_log": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "attempted_at": {"type": "string", "format": "date-time"},
                            "status_code": {"type": ["integer", "null"]},
                            "duration_ms": {"type": "integer"},
                            "error": {"type": ["string", "null"]},
                            "response_body": {"type": "string"},
                            "response_truncated": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    }
)

SPEC["paths"].update(
    {
        "/v1/webhooks": {
            "post": {
                "summary": "Register an endpoint; the answer holds its secret (shown once)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["url"],
                                "properties": {
                                    "url": {"type": "string"},
                                    "events": {
                                        "type": "array",
                                        "items": {"enum": _EVENT_TYPES},
                                        "default": ["*"],
                                    },
                                    "description": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(_WEBHOOK, "created, with its secret"),
                    "422": _json(_ERROR, "invalid: a field, or a refused destination and why"),
                },
            },
            "get": {
                "summary": "Every endpoint (no secrets)",
                "responses": {"200": {"description": '{"webhooks": [...]}'}},
            },
        },
        "/v1/webhooks/{webhook_id}": {
            "get": {
                "summary": "One endpoint and its operator events",
                "parameters": [_path_param("webhook_id")],
                "responses": {"200": _json(_WEBHOOK, "the endpoint"), "404": _json(_ERROR, "")},
            },
            "patch": {
                "summary": "Change url, events or description; enable or disable; rotate the "
                'secret ({"rotate_secret": true}: the answer holds the new one)',
                "parameters": [_path_param("webhook_id")],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "url": {"type": "string"},
                                    "events": {"type": "array", "items": {"enum": _EVENT_TYPES}},
                                    "description": {"type": "string"},
                                    "enabled": {"type": "boolean"},
                                    "rotate_secret": {"type": "boolean"},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "200": _json(_WEBHOOK, "the endpoint as changed"),
                    "404": _json(_ERROR, "unknown"),
                    "422": _json(_ERROR, "invalid"),
                },
            },
            "delete": {
                "summary": "Remove an endpoint with its deliveries",
                "parameters": [_path_param("webhook_id")],
                "responses": {"204": {"description": "removed"}, "404": _json(_ERROR, "")},
            },
        },
        "/v1/webhooks/{webhook_id}/deliveries": {
            "get": {
                "summary": "The endpoint's deliveries, newest first, each with its attempts "
                "(time, status code, duration, error, truncated answer)",
                "parameters": [
                    _path_param("webhook_id"),
                    {"name": "status", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "deliveries": {"type": "array", "items": _DELIVERY},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                        "a page of deliveries",
                    ),
                    "404": _json(_ERROR, "unknown endpoint"),
                },
            }
        },
        "/v1/deliveries/{delivery_id}": {
            "get": {
                "summary": "One delivery with its attempts",
                "parameters": [_path_param("delivery_id")],
                "responses": {"200": _json(_DELIVERY, "the delivery"), "404": _json(_ERROR, "")},
            }
        },
        "/v1/deliveries/{delivery_id}/retry": {
            "post": {
                "summary": "Deliver a finished delivery again (same webhook-id), its retry "
                "schedule from the start",
                "parameters": [_path_param("delivery_id")],
                "responses": {
                    "202": _json(_DELIVERY, "pending again"),
                    "404": _json(_ERROR, "unknown"),
                    "409": _json(_ERROR, "still pending"),
                },
            }
        },
        "/metrics/webhooks": {
            "get": {
                "summary": "Prometheus metrics of the deliveries this process made",
                "security": [],
                "responses": {"200": {"description": "text exposition"}},
            }
        },
    }
)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(SPEC)
