"""Pieces shared by the halves of the OpenAPI description."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
TASK = {"$ref": "#/components/schemas/Task"}
# what a stored output is served as: a video, or an image output
OUTPUT_TYPES: dict[str, Any] = {
    media_type: {}
    for media_type in ("video/mp4", "video/quicktime", "image/png", "image/jpeg", "image/webp")
}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def path_param(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


def task_id_param() -> dict[str, Any]:
    return {
        "name": "task_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "the task's id or its external_task_id",
    }
