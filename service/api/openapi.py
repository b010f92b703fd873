"""``GET /openapi.json``: the API's OpenAPI 3.1 description, written out once.

Hand-written rather than generated from docstrings: it is the contract users read, so it
says exactly what CONTRACT.md promises.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.openapi_parts import (
    ERROR,
    OUTPUT_TYPES,
    TASK,
    json_body,
    path_param,
    task_id_param,
)
from service.api.openapi_schemas import SCHEMAS
from service.api.openapi_webhooks import WEBHOOK_PATHS, WEBHOOK_SCHEMAS

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "omnihook",
        "version": "0.1.0",
        "description": "Webhook-driven event service for Kling Omni Video",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {**SCHEMAS},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/tasks": {
            "post": {
                "summary": "Submit a task (Kling Omni Video request fields, external_task_id, "
                "metadata, priority)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {
                    "201": json_body(TASK, "the provider accepted the task"),
                    "202": json_body(
                        TASK,
                        "stored: queued (waiting for a free provider slot; queue_position "
                        "says where), or pending (the provider's answer was lost, a job "
                        "finishes)",
                    ),
                    "400": json_body(ERROR, "the body is not JSON"),
                    "402": json_body(
                        ERROR,
                        "budget_exceeded: its estimate would take a budget past its limit "
                        "(budget, window, limit, spent, estimate, currency); nothing sent",
                    ),
                    "409": json_body(ERROR, "duplicate external_task_id"),
                    "422": json_body(
                        ERROR,
                        "invalid request: every problem with its field path; or "
                        "price_unknown: a budget applies and the price table cannot price it",
                    ),
                    "502": json_body(ERROR, "the provider refused: its code and message"),
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
                    "200": json_body(
                        {
                            "type": "object",
                            "properties": {
                                "tasks": {"type": "array", "items": TASK},
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
                "parameters": [task_id_param()],
                "responses": {
                    "200": json_body(TASK, "the task"),
                    "404": json_body(ERROR, "unknown"),
                },
            }
        },
        "/v1/tasks/{task_id}/events": {
            "get": {
                "summary": "The task's events, oldest first",
                "parameters": [task_id_param()],
                "responses": {
                    "200": json_body(
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
                "parameters": [task_id_param()],
                "responses": {"200": {"description": "notifications"}},
            }
        },
        "/v1/tasks/{task_id}/videos/{index}": {
            "get": {
                "summary": "A stored output's file: a video, or an image (Range supported)",
                "parameters": [task_id_param(), path_param("index", "integer")],
                "responses": {
                    "200": {"description": "the file", "content": OUTPUT_TYPES},
                    "206": {"description": "a byte range of it"},
                    "409": json_body(ERROR, "not downloaded yet"),
                },
            }
        },
        "/v1/tasks/{task_id}/videos/{index}/watermarked": {
            "get": {
                "summary": "The watermarked copy of an output (watermark_info.enabled; Range)",
                "parameters": [task_id_param(), path_param("index", "integer")],
                "responses": {
                    "200": {"description": "the watermarked file", "content": OUTPUT_TYPES},
                    "206": {"description": "a byte range of it"},
                    "404": json_body(ERROR, "unknown task or video, or no watermarked copy"),
                    "409": json_body(ERROR, "not downloaded yet"),
                },
            }
        },
        "/v1/tasks/{task_id}/videos/{index}/poster": {
            "get": {
                "summary": "The video's poster frame (JPEG), once the built-in handler wrote it",
                "parameters": [task_id_param(), path_param("index", "integer")],
                "responses": {
                    "200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                    "404": json_body(ERROR, "no poster (yet)"),
                },
            }
        },
        "/v1/tasks/{task_id}/videos/{index}/download": {
            "post": {
                "summary": "Fetch a failed (or deleted) video again, from a fresh provider URL",
                "parameters": [task_id_param(), path_param("index", "integer")],
                "responses": {
                    "202": json_body({"$ref": "#/components/schemas/Video"}, "queued again"),
                    "404": json_body(ERROR, "unknown task or video"),
                    "409": json_body(
                        ERROR, "the task has not succeeded, or the video is being downloaded"
                    ),
                },
            }
        },
        "/v1/notifications/{notification_id}": {
            "get": {
                "summary": "One received notification: raw body, headers, verification, outcome",
                "parameters": [path_param("notification_id")],
                "responses": {
                    "200": {"description": "the notification"},
                    "404": json_body(ERROR, "unknown"),
                },
            }
        },
        "/v1/notifications/{notification_id}/replay": {
            "post": {
                "summary": "Put a stored notification through the pipeline again (harmless)",
                "parameters": [path_param("notification_id")],
                "responses": {
                    "202": {"description": "a new inbox job was enqueued"},
                    "404": json_body(ERROR, "unknown"),
                },
            }
        },
        "/v1/costs": {
            "get": {
                "summary": "Estimated against billed costs, grouped, and each budget's window",
                "parameters": [
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "string", "format": "date"},
                        "description": "first day (UTC); default the 1st of this month",
                    },
                    {
                        "name": "until",
                        "in": "query",
                        "schema": {"type": "string", "format": "date"},
                        "description": "the day after the last (UTC); default tomorrow",
                    },
                    {
                        "name": "by",
                        "in": "query",
                        "schema": {"type": "string", "default": "day"},
                        "description": "day, model or metadata.KEY",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "since, until, by, currency, comparable, truncated, "
                        "total, groups (key, tasks, statuses, estimated, unpriced_tasks, "
                        "billed_tasks, billed_units, billed_balance) and budgets (budget, "
                        "window, scope, limit, spent, percent, currency)"
                    },
                    "400": json_body(ERROR, "a bad date or grouping"),
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
                "parameters": [path_param("run_id")],
                "responses": {
                    "200": {"description": "the run"},
                    "404": json_body(ERROR, "unknown"),
                },
            }
        },
        "/v1/handler-runs/{run_id}/retry": {
            "post": {
                "summary": "Run a finished handler run again from attempt 1",
                "parameters": [path_param("run_id")],
                "responses": {
                    "200": {"description": "queued again"},
                    "404": json_body(ERROR, "unknown"),
                    "409": json_body(ERROR, "still queued or running"),
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
                    "400": json_body(ERROR, "unreadable body"),
                    "401": json_body(ERROR, "bad signature"),
                    "404": json_body(ERROR, "unknown token"),
                    "409": json_body(ERROR, "the body names another task than its URL's"),
                    "413": json_body(ERROR, "body too large"),
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

SPEC["components"]["schemas"].update(WEBHOOK_SCHEMAS)
SPEC["paths"].update(WEBHOOK_PATHS)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(SPEC)
