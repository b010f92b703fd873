"""Records ↔ PostgreSQL rows (asyncpg).

Columns are native types: ``timestamptz`` (asyncpg hands back aware UTC datetimes), ``jsonb``
and ``bytea``. JSON is encoded here, before a query is sent, so that a value that cannot be
stored fails with :class:`StorageError` exactly as in the other backends; the connection's jsonb
codec (see :mod:`storage.postgres.schema`) passes that text through and decodes results.
Parameters are positional (``$1, $2...``), in the order of the ``*_COLUMNS`` tuples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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

# asyncpg.Record: read by column name
Row = Mapping[str, Any]
Args = tuple[Any, ...]


def names(columns: Sequence[str]) -> str:
    return ", ".join(columns)


def placeholders(columns: Sequence[str], start: int = 1) -> str:
    """``$1, $2...`` for ``columns``: positional parameters matching the ``*_args`` tuples."""
    return ", ".join(f"${i}" for i in range(start, start + len(columns)))


def utc(value: datetime) -> datetime:
    """Records promise aware datetimes; a naive one is taken as UTC (as SQLite does)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def encode_json(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"value is not JSON-serialisable: {exc}") from exc


# -- tasks -----------------------------------------------------------------------------------

TASK_COLUMNS = (
    "id",
    "external_task_id",
    "callback_token_hash",
    "status",
    "model_name",
    "request",
    "metadata",
    "created_at",
    "updated_at",
    "provider_task_id",
    "status_message",
    "cost",
    "last_news_at",
    "priority",
    "admitted_at",
    "estimate",
    "estimated_amount",
    "billing",
    "version",
)


def estimated_amount(task: TaskRecord) -> Decimal | None:
    """The estimate's amount as a number (the budgets' sums), None without one."""
    if task.estimate is None or task.estimate.get("amount") is None:
        return None
    try:
        return Decimal(str(task.estimate["amount"]))
    except InvalidOperation as exc:
        raise StorageError(f"the estimate's amount is not a number: {exc}") from exc


def task_args(task: TaskRecord) -> Args:
    return (
        task.id,
        task.external_task_id,
        task.callback_token_hash,
        str(task.status),
        task.model_name,
        encode_json(task.request),
        encode_json(task.metadata),
        utc(task.created_at),
        utc(task.updated_at),
        task.provider_task_id,
        task.status_message,
        task.cost,
        optional_utc(task.last_news_at),
        task.priority,
        optional_utc(task.admitted_at),
        None if task.estimate is None else encode_json(task.estimate),
        estimated_amount(task),
        None if task.billing is None else encode_json(task.billing),
        task.version,
    )


def task_from_row(row: Row) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        external_task_id=row["external_task_id"],
        callback_token_hash=row["callback_token_hash"],
        status=TaskStatus(row["status"]),
        model_name=row["model_name"],
        request=row["request"],
        metadata=row["metadata"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        provider_task_id=row["provider_task_id"],
        status_message=row["status_message"],
        cost=row["cost"],
        last_news_at=row["last_news_at"],
        priority=row["priority"],
        admitted_at=row["admitted_at"],
        estimate=row["estimate"],
        billing=row["billing"],
        version=row["version"],
    )


# -- videos ----------------------------------------------------------------------------------

VIDEO_COLUMNS = (
    "task_id",
    "video_index",
    "url",
    "updated_at",
    "provider_video_id",
    "duration",
    "download_status",
    "size",
    "sha256",
    "path",
    "error",
    "bytes_received",
    "bytes_total",
    "kind",
    "watermark_url",
    "watermark_path",
    "watermark_size",
    "watermark_sha256",
)


def video_args(video: VideoRecord) -> Args:
    return (
        video.task_id,
        video.index,
        video.url,
        utc(video.updated_at),
        video.provider_video_id,
        video.duration,
        str(video.download_status),
        video.size,
        video.sha256,
        video.path,
        video.error,
        video.bytes_received,
        video.bytes_total,
        str(video.kind),
        video.watermark_url,
        video.watermark_path,
        video.watermark_size,
        video.watermark_sha256,
    )


def video_from_row(row: Row) -> VideoRecord:
    return VideoRecord(
        task_id=row["task_id"],
        index=row["video_index"],
        url=row["url"],
        updated_at=row["updated_at"],
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

EVENT_COLUMNS = ("id", "task_id", "type", "event_key", "timestamp", "data")


def event_args(event: EventRecord) -> Args:
    return (
        event.id,
        event.task_id,
        event.type,
        event.key,
        utc(event.timestamp),
        encode_json(event.data),
    )


def event_from_row(row: Row) -> EventRecord:
    return EventRecord(
        id=row["id"],
        task_id=row["task_id"],
        type=row["type"],
        key=row["event_key"],
        timestamp=row["timestamp"],
        data=row["data"],
    )


# -- notifications ---------------------------------------------------------------------------

NOTIFICATION_COLUMNS = (
    "id",
    "task_id",
    "received_at",
    "headers",
    "body",
    "outcome",
    "verification",
)


def notification_args(notification: NotificationRecord) -> Args:
    return (
        notification.id,
        notification.task_id,
        utc(notification.received_at),
        encode_json(notification.headers),
        bytes(notification.body),
        notification.outcome,
        notification.verification,
    )


def notification_from_row(row: Row) -> NotificationRecord:
    return NotificationRecord(
        id=row["id"],
        task_id=row["task_id"],
        received_at=row["received_at"],
        headers=row["headers"],
        body=bytes(row["body"]),
        outcome=row["outcome"],
        verification=row["verification"],
    )


# -- jobs ------------------------------------------------------------------------------------

JOB_COLUMNS = (
    "id",
    "kind",
    "payload",
    "run_at",
    "created_at",
    "updated_at",
    "task_id",
    "dedupe_key",
    "status",
    "attempts",
    "lease_token",
    "lease_expires_at",
    "last_error",
)


def job_args(job: JobRecord) -> Args:
    return (
        job.id,
        job.kind,
        encode_json(job.payload),
        utc(job.run_at),
        utc(job.created_at),
        utc(job.updated_at),
        job.task_id,
        job.dedupe_key,
        str(job.status),
        job.attempts,
        job.lease_token,
        optional_utc(job.lease_expires_at),
        job.last_error,
    )


def job_from_row(row: Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        kind=row["kind"],
        payload=row["payload"],
        run_at=row["run_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        task_id=row["task_id"],
        dedupe_key=row["dedupe_key"],
        status=JobStatus(row["status"]),
        attempts=row["attempts"],
        lease_token=row["lease_token"],
        lease_expires_at=row["lease_expires_at"],
        last_error=row["last_error"],
    )
