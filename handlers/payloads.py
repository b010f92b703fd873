"""The shapes of ``Event.data``: what a handler can read, key by key, with its type.

These are ``TypedDict``s: at run time ``event.data`` is a plain ``dict`` (the event's JSON, the
same an outgoing webhook carries), and a type checker knows every key below. The task and video
objects are exactly those of the HTTP API (``GET /v1/tasks/{id}``), so what a plugin reads here it
can also look up there.

New keys may be added in later versions (never removed or retyped without a major version), so
read the ones you need and ignore the rest.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class VideoData(TypedDict):
    """One output video of a task (``data["video"]`` of the ``video.*`` events)."""

    #: Its position among the task's videos, from 0; ``GET /v1/tasks/{id}/videos/{index}``.
    index: int
    #: The provider's id of the video, once known.
    provider_video_id: str | None
    #: Its length in seconds as the provider reported it, e.g. ``"5.041"``.
    duration: str | None
    #: ``"pending"``, ``"downloading"``, ``"downloaded"`` or ``"failed"``.
    download_status: str
    #: Size in bytes of the stored file (``downloaded`` only).
    size: int | None
    #: Hex SHA-256 of the stored file (``downloaded`` only).
    sha256: str | None
    #: Absolute path of the stored file on the machine running the handler (``downloaded`` only).
    path: str | None
    #: Why the download failed (``video.download_failed``), else None.
    error: str | None
    #: Bytes fetched so far, and the size the server announced (progress, for display).
    bytes_received: int
    bytes_total: int | None
    #: ``"video"``, or ``"image"`` for an image output (a PNG, JPEG or WebP file).
    kind: str
    #: The watermarked copy, when the request asked for one (``watermark_info.enabled``).
    watermark: WatermarkData | None


class WatermarkData(TypedDict):
    """The watermarked copy of an output, stored beside its clean file."""

    #: Absolute path of the stored copy (once the output is ``downloaded``).
    path: str | None
    #: Its size in bytes and hex SHA-256 (once stored).
    size: int | None
    sha256: str | None


class TaskData(TypedDict):
    """A task as ``GET /v1/tasks/{id}`` shows it, at the moment of the event (``data["task"]``)."""

    #: omnihook's id of the task, ``"task_..."``.
    id: str
    #: The id the submitter chose (or omnihook generated): the task's key in the user's world.
    external_task_id: str
    #: The provider's id, once the provider accepted the task.
    provider_task_id: str | None
    #: ``"queued"``, ``"pending"``, ``"submitted"``, ``"processing"``, ``"succeeded"`` or
    #: ``"failed"``.
    status: str
    #: The provider's explanation, notably why a task failed.
    status_message: str
    #: The model the task runs on, e.g. ``"kling-v3-omni"``.
    model_name: str
    #: The submitted request fields (``prompt``, ``duration``, ``aspect_ratio``...).
    request: dict[str, Any]
    #: The JSON object given as ``metadata`` at submission, unchanged: carry your own ids here.
    metadata: dict[str, Any]
    #: Its place in the admission queue order (higher goes first).
    priority: int
    #: Where a queued task stands (1: the next to be sent); ``None`` once it left the queue.
    queue_position: int | None
    #: When it left the queue and was sent (ISO 8601 UTC), once it did.
    admitted_at: str | None
    #: What the price table said it would cost: ``{"amount", "currency", "basis"}``.
    estimated_cost: dict[str, Any] | None
    #: What the task cost (the provider's ``final_unit_deduction``), once known.
    cost: str | None
    #: What the provider billed, as it said it: ``final_unit_deduction``,
    #: ``final_balance_deduction``, ``billing`` (the newer API's items).
    billing: dict[str, Any] | None
    #: ISO 8601 UTC times.
    created_at: str
    updated_at: str
    #: Every video of the task, by index.
    videos: list[VideoData]


class BudgetData(TypedDict):
    """``data["budget"]`` of a ``budget.threshold`` event: amounts are decimal strings."""

    budget: str  # "daily", "monthly", "owner/daily"...
    window: str  # "daily:2026-12-03", "owner=alice:monthly:2026-12"...
    scope: str | None  # the metadata value, for a per-key budget
    level: int  # 50, 80 or 100 (%)
    limit: str
    spent: str
    currency: str
    window_start: str
    window_end: str


class EventData(TypedDict):
    """``Event.data``: the task always, the video for ``video.downloaded`` and
    ``video.download_failed``, the budget for ``budget.threshold``."""

    task: TaskData
    video: NotRequired[VideoData]
    budget: NotRequired[BudgetData]
