"""Records ↔ SQLite rows.

Datetimes are stored as fixed-width ISO-8601 UTC text (``2025-01-01T12:00:00.000000Z``): it
sorts and compares as text exactly as the instants do, and stays readable in ``sqlite3``.
JSON fields are compact JSON text, notification bodies are BLOBs.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from service.errors import StorageError
from storage.records import (
    DownloadStatus,
    EventRecord,
    JobRecord,
    JobStatus,
    NotificationRecord,
    OutputKind,
    TaskRecord,
    TaskStatus,
    VideoRecord,
)

Params = dict[str, Any]  # named parameters
Row = tuple[Any, ...]  # positional parameters, in the order of a table's column list


def encode_time(value: datetime) -> str:
    if value.tzinfo is UTC:  # nearly always (the clock's): no conversion to make
        return value.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" -> "Z"
    if value.tzinfo is None:  # records promise aware datetimes; a naive one is UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def encode_optional_time(value: datetime | None) -> str | None:
    return None if value is None else encode_time(value)


def decode_time(text: str) -> datetime:
    return datetime.fromisoformat(text)  # 3.11 reads the trailing "Z" as UTC


def decode_optional_time(text: str | None) -> datetime | None:
    return None if text is None else decode_time(text)


# One encoder for all: ``json.dumps`` with options builds a new one on every call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(value: Any) -> str:
    try:
        return _JSON.encode(value)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"value is not JSON-serialisable: {exc}") from exc


def decode_json(text: str) -> Any:
    return json.loads(text)


# -- tasks -----------------------------------------------------------------------------------

TASK_COLUMNS = (
    "id, external_task_id, callback_token_hash, status, model_name, request, metadata, "
    "created_at, updated_at, provider_task_id, status_message, cost, last_news_at, priority, "
    "admitted_at, estimate, estimated_micros, billing, version"
)


MICROS = 1_000_000  # SQLite adds up amounts as whole millionths: exact, unlike REAL


def estimated_micros(task: TaskRecord) -> int | None:
    """The estimate's amount in millionths (the budgets' sums), None without one."""
    if task.estimate is None or task.estimate.get("amount") is None:
        return None
    try:
        return int((Decimal(str(task.estimate["amount"])) * MICROS).to_integral_value())
    except InvalidOperation as exc:
        raise StorageError(f"the estimate's amount is not a number: {exc}") from exc


def task_params(task: TaskRecord) -> Params:
    return {
        "id": task.id,
        "external_task_id": task.external_task_id,
        "callback_token_hash": task.callback_token_hash,
        "status": str(task.status),
        "model_name": task.model_name,
        "request": encode_json(task.request),
        "metadata": encode_json(task.metadata),
        "created_at": encode_time(task.created_at),
        "updated_at": encode_time(task.updated_at),
        "provider_task_id": task.provider_task_id,
        "status_message": task.status_message,
        "cost": task.cost,
        "last_news_at": encode_optional_time(task.last_news_at),
        "priority": task.priority,
        "admitted_at": encode_optional_time(task.admitted_at),
        "estimate": None if task.estimate is None else encode_json(task.estimate),
        # the amount again, as a number the database can add up (budgets)
        "estimated_micros": estimated_micros(task),
        "billing": None if task.billing is None else encode_json(task.billing),
        "version": task.version,
    }


def task_from_row(row: sqlite3.Row) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        external_task_id=row["external_task_id"],
        callback_token_hash=row["callback_token_hash"],
        status=TaskStatus(row["status"]),
        model_name=row["model_name"],
        request=decode_json(row["request"]),
        metadata=decode_json(row["metadata"]),
        created_at=decode_time(row["created_at"]),
        updated_at=decode_time(row["updated_at"]),
        provider_task_id=row["provider_task_id"],
        status_message=row["status_message"],
        cost=row["cost"],
        last_news_at=decode_optional_time(row["last_news_at"]),
        priority=row["priority"],
        admitted_at=decode_optional_time(row["admitted_at"]),
        estimate=None if row["estimate"] is None else decode_json(row["estimate"]),
        billing=None if row["billing"] is None else decode_json(row["billing"]),
        version=row["version"],
    )


# -- videos ----------------------------------------------------------------------------------

VIDEO_COLUMNS = (
    "task_id, video_index, url, updated_at, provider_video_id, duration, download_status, "
    "size, sha256, path, error, bytes_received, bytes_total, kind, watermark_url, "
    "watermark_path, watermark_size, watermark_sha256"
)


def video_params(video: VideoRecord) -> Params:
    return {
        "task_id": video.task_id,
        "video_index": video.index,
        "url": video.url,
        "updated_at": encode_time(video.updated_at),
        "provider_video_id": video.provider_video_id,
        "duration": video.duration,
        "download_status": str(video.download_status),
        "size": video.size,
        "sha256": video.sha256,
        "path": video.path,
        "error": video.error,
        "bytes_received": video.bytes_received,
        "bytes_total": video.bytes_total,
        "kind": str(video.kind),
        "watermark_url": video.watermark_url,
        "watermark_path": video.watermark_path,
        "watermark_size": video.watermark_size,
        "watermark_sha256": video.watermark_sha256,
    }


def video_from_row(row: sqlite3.Row) -> VideoRecord:
    return VideoRecord(
        task_id=row["task_id"],
        index=row["video_index"],
        url=row["url"],
        updated_at=decode_time(row["updated_at"]),
        provider_video_id=row["provider_video_id"],
        duration=row["duration"],
        download_status=DownloadStatus(row["download_status"]),
        size=row["size"],
        sha256=row["sha256"],
        path=row["path"],
        error=row["error"],
        bytes_received=row["bytes_received"],
        bytes_total=row["bytes_total"],
        kind=OutputKind(row["kind"]),
        watermark_url=row["watermark_url"],
        watermark_path=row["watermark_path"],
        watermark_size=row["watermark_size"],
        watermark_sha256=row["watermark_sha256"],
    )


# -- events ----------------------------------------------------------------------------------

EVENT_COLUMNS = "id, task_id, type, event_key, timestamp, data"


def event_params(event: EventRecord) -> Params:
    return {
        "id": event.id,
        "task_id": event.task_id,
        "type": event.type,
        "event_key": event.key,
        "timestamp": encode_time(event.timestamp),
        "data": encode_json(event.data),
    }


def event_from_row(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        id=row["id"],
        task_id=row["task_id"],
        type=row["type"],
        key=row["event_key"],
        timestamp=decode_time(row["timestamp"]),
        data=decode_json(row["data"]),
    )


# -- notifications ---------------------------------------------------------------------------

NOTIFICATION_COLUMNS = "id, task_id, received_at, headers, body, outcome, verification"


def notification_row(notification: NotificationRecord) -> Row:
    """In the order of :data:`NOTIFICATION_COLUMNS` (a callback's row: positional parameters
    bind in half the time of named ones)."""
    return (
        notification.id,
        notification.task_id,
        encode_time(notification.received_at),
        encode_json(notification.headers),
        bytes(notification.body),
        notification.outcome,
        notification.verification,
    )


def notification_from_row(row: sqlite3.Row) -> NotificationRecord:
    return NotificationRecord(
        id=row["id"],
        task_id=row["task_id"],
        received_at=decode_time(row["received_at"]),
        headers=decode_json(row["headers"]),
        body=bytes(row["body"]),
        outcome=row["outcome"],
        verification=row["verification"],
    )


# -- jobs ------------------------------------------------------------------------------------

JOB_COLUMNS = (
    "id, kind, payload, run_at, created_at, updated_at, task_id, dedupe_key, status, "
    "attempts, lease_token, lease_expires_at, last_error"
)


def job_row(job: JobRecord) -> Row:
    """In the order of :data:`JOB_COLUMNS` (positional: one is written for every callback)."""
    return (
        job.id,
        job.kind,
        encode_json(job.payload),
        encode_time(job.run_at),
        encode_time(job.created_at),
        encode_time(job.updated_at),
        job.task_id,
        job.dedupe_key,
        str(job.status),
        job.attempts,
        job.lease_token,
        encode_optional_time(job.lease_expires_at),
        job.last_error,
    )


def job_from_row(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        kind=row["kind"],
        payload=decode_json(row["payload"]),
        run_at=decode_time(row["run_at"]),
        created_at=decode_time(row["created_at"]),
        updated_at=decode_time(row["updated_at"]),
        task_id=row["task_id"],
        dedupe_key=row["dedupe_key"],
        status=JobStatus(row["status"]),
        attempts=row["attempts"],
        lease_token=row["lease_token"],
        lease_expires_at=decode_optional_time(row["lease_expires_at"]),
        last_error=row["last_error"],
    )


def placeholders(columns: str) -> str:
    """``:a, :b`` for the column list ``a, b``: named parameters matching ``*_params``."""
    return ", ".join(f":{name.strip()}" for name in columns.split(","))


def positions(columns: str) -> str:
    """``?, ?`` for the column list ``a, b``: positional parameters matching ``*_row``."""
    return ", ".join("?" for _ in columns.split(","))


def page_filters(
    where: list[str],
    params: dict[str, Any],
    *,
    status: object | None,
    before: tuple[datetime, str] | None,
) -> None:
    """The filters of a newest-first keyset page: a status, and the (created_at, id) cursor."""
    if status is not None:
        where.append("status = :status")
        params["status"] = str(status)
    if before is not None:
        where.append("(created_at, id) < (:before_at, :before_id)")
        params["before_at"], params["before_id"] = encode_time(before[0]), before[1]
