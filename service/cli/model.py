"""The API's JSON shapes as the command line reads them, and what "finished" means.

These are ``TypedDict``s over the wire format, not a validating model: the service owns the
schema, the client only names the fields it renders and decides on.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

TERMINAL_DOWNLOADS = frozenset({"downloaded", "failed"})
TERMINAL_RUNS = frozenset({"succeeded", "failed"})


class Video(TypedDict):
    index: int
    provider_video_id: str | None
    duration: str | None
    download_status: str
    size: int | None
    sha256: str | None
    path: str | None
    error: str | None
    kind: NotRequired[str]  # "video" or "image"
    watermark: NotRequired[dict[str, Any] | None]  # the watermarked copy: path, size, sha256


class HandlerRun(TypedDict):
    id: str
    handler: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    updated_at: str


class _TaskRequired(TypedDict):
    id: str
    status: str
    videos: list[Video]


class Task(_TaskRequired, total=False):
    external_task_id: str | None
    provider_task_id: str | None
    status_message: str | None
    model_name: str | None
    request: dict[str, Any]
    metadata: dict[str, Any] | None
    cost: str | None
    estimated_cost: dict[str, Any] | None  # {"amount", "currency", "basis"}
    billing: dict[str, Any] | None
    priority: int
    queue_position: int | None  # where a queued task stands: 1 is the next to go
    created_at: str
    updated_at: str
    handler_runs: list[HandlerRun]  # only on GET /v1/tasks/{id}


class Event(TypedDict):
    id: str
    type: str
    timestamp: str
    data: dict[str, Any]


class TaskPage(TypedDict):
    tasks: list[Task]
    next_cursor: str | None


def is_finished(task: Task) -> bool:
    """Nothing more will happen to the task's status or its videos."""
    if task["status"] == "failed":
        return True
    return task["status"] == "succeeded" and all(
        video["download_status"] in TERMINAL_DOWNLOADS for video in task["videos"]
    )


def is_fully_stored(task: Task) -> bool:
    """The outcome a user waits for: the task succeeded and every video is on disk."""
    return (
        task["status"] == "succeeded"
        and bool(task["videos"])
        and all(video["download_status"] == "downloaded" for video in task["videos"])
    )
