"""The OpenAPI description's schemas of tasks, their videos, events and errors."""

from __future__ import annotations

from typing import Any

SCHEMAS: dict[str, Any] = {
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
            "bytes_received": {"type": "integer"},
            "bytes_total": {"type": ["integer", "null"]},
            "kind": {"enum": ["video", "image"]},
            "watermark": {
                "description": "the watermarked copy, when the request asked for one "
                "(watermark_info.enabled); null otherwise",
                "type": ["object", "null"],
                "properties": {
                    "path": {"type": ["string", "null"]},
                    "size": {"type": ["integer", "null"]},
                    "sha256": {"type": ["string", "null"]},
                },
            },
        },
    },
    "Task": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "external_task_id": {"type": "string"},
            "provider_task_id": {"type": ["string", "null"]},
            "status": {
                "enum": [
                    "queued",
                    "pending",
                    "submitted",
                    "processing",
                    "succeeded",
                    "failed",
                ]
            },
            "status_message": {"type": "string"},
            "model_name": {"type": "string"},
            "request": {"type": "object"},
            "metadata": {"type": "object"},
            "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
            "queue_position": {
                "type": ["integer", "null"],
                "description": "while queued: 1 is the next task to be sent",
            },
            "admitted_at": {"type": ["string", "null"], "format": "date-time"},
            "cost": {"type": ["string", "null"]},
            "estimated_cost": {
                "type": ["object", "null"],
                "description": "amount (a decimal string), currency, basis",
            },
            "billing": {
                "type": ["object", "null"],
                "description": "final_unit_deduction, final_balance_deduction, "
                "billing[] as the provider reported them",
            },
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
}
