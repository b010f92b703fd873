"""The public JSON of tasks, videos, events and handler runs (CONTRACT.md "HTTP API").

One place decides what users see, so the API, the events and the CLI always agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.clock import isoformat
from storage.records import EventRecord, JobRecord, TaskRecord, VideoRecord


def video_json(video: VideoRecord, media_dir: Path) -> dict[str, Any]:
    return {
        "index": video.index,
        "provider_video_id": video.provider_video_id,
        "duration": video.duration,
        "download_status": video.download_status.value,
        "size": video.size,
        "sha256": video.sha256,
        "path": str((media_dir / video.path).resolve()) if video.path else None,
        "error": video.error,
        "bytes_received": video.bytes_received,
        "bytes_total": video.bytes_total,
        "kind": video.kind.value,
        # the watermarked copy, when the request asked for one (null otherwise)
        "watermark": _watermark_json(video, media_dir) if video.watermark_url else None,
    }


def _watermark_json(video: VideoRecord, media_dir: Path) -> dict[str, Any]:
    path = video.watermark_path
    return {
        "size": video.watermark_size,
        "sha256": video.watermark_sha256,
        "path": str((media_dir / path).resolve()) if path else None,
    }


def task_json(
    task: TaskRecord,
    videos: list[VideoRecord],
    media_dir: Path,
    *,
    queue_position: int | None = None,
) -> dict[str, Any]:
    """``queue_position``: where a queued task stands (1: the next to go), when it was read."""
    return {
        "id": task.id,
        "external_task_id": task.external_task_id,
        "provider_task_id": task.provider_task_id,
        "status": task.status.value,
        "status_message": task.status_message,
        "model_name": task.model_name,
        "request": task.request,
        "metadata": task.metadata,
        "priority": task.priority,
        "queue_position": queue_position,
        "admitted_at": isoformat(task.admitted_at),
        "cost": task.cost,
        # {"amount", "currency", "basis"}: what the price table said before it was sent
        "estimated_cost": task.estimate,
        # final_unit_deduction, final_balance_deduction, billing[]: as the provider said them
        "billing": task.billing,
        "created_at": isoformat(task.created_at),
        "updated_at": isoformat(task.updated_at),
        "videos": [video_json(video, media_dir) for video in videos],
    }


def event_json(event: EventRecord) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": isoformat(event.timestamp),
        "data": event.data,
    }


def handler_run_json(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "handler": job.payload.get("handler"),
        "event_id": job.payload.get("event_id"),
        "event_type": job.payload.get("event_type"),
        "status": job.status.value,
        "attempts": job.attempts,
        "last_error": job.last_error,
        "updated_at": isoformat(job.updated_at),
    }
