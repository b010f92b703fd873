"""The outgoing-webhooks half of ``/openapi.json``: endpoints and deliveries."""

from __future__ import annotations

from typing import Any

from handlers.api import EVENT_TYPES
from service.api.openapi_parts import ERROR, json_body, path_param

_WEBHOOK = {"$ref": "#/components/schemas/WebhookEndpoint"}
_DELIVERY = {"$ref": "#/components/schemas/Delivery"}
_EVENT_TYPES = ["*", *sorted(EVENT_TYPES)]
_TIME = {"type": ["string", "null"], "format": "date-time"}

WEBHOOK_SCHEMAS: dict[str, Any] = {
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

WEBHOOK_PATHS: dict[str, Any] = {
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
                "201": json_body(_WEBHOOK, "created, with its secret"),
                "422": json_body(ERROR, "invalid: a field, or a refused destination and why"),
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
            "parameters": [path_param("webhook_id")],
            "responses": {"200": json_body(_WEBHOOK, "the endpoint"), "404": json_body(ERROR, "")},
        },
        "patch": {
            "summary": "Change url, events or description; enable or disable; rotate the "
            'secret ({"rotate_secret": true}: the answer holds the new one)',
            "parameters": [path_param("webhook_id")],
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
                "200": json_body(_WEBHOOK, "the endpoint as changed"),
                "404": json_body(ERROR, "unknown"),
                "422": json_body(ERROR, "invalid"),
            },
        },
        "delete": {
            "summary": "Remove an endpoint with its deliveries",
            "parameters": [path_param("webhook_id")],
            "responses": {"204": {"description": "removed"}, "404": json_body(ERROR, "")},
        },
    },
    "/v1/webhooks/{webhook_id}/deliveries": {
        "get": {
            "summary": "The endpoint's deliveries, newest first, each with its attempts "
            "(time, status code, duration, error, truncated answer)",
            "parameters": [
                path_param("webhook_id"),
                {"name": "status", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "properties": {
                            "deliveries": {"type": "array", "items": _DELIVERY},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    },
                    "a page of deliveries",
                ),
                "404": json_body(ERROR, "unknown endpoint"),
            },
        }
    },
    "/v1/deliveries/{delivery_id}": {
        "get": {
            "summary": "One delivery with its attempts",
            "parameters": [path_param("delivery_id")],
            "responses": {"200": json_body(_DELIVERY, "the delivery"), "404": json_body(ERROR, "")},
        }
    },
    "/v1/deliveries/{delivery_id}/retry": {
        "post": {
            "summary": "Deliver a finished delivery again (same webhook-id), its retry "
            "schedule from the start",
            "parameters": [path_param("delivery_id")],
            "responses": {
                "202": json_body(_DELIVERY, "pending again"),
                "404": json_body(ERROR, "unknown"),
                "409": json_body(ERROR, "still pending"),
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
