"""Records ↔ PostgreSQL rows (asyncpg): the shared tables of :mod:`storage.rows` with its codec.

Columns are native types: ``timestamptz`` (asyncpg hands back aware UTC datetimes), ``jsonb``
and ``bytea``. JSON is encoded here, before a query is sent, so that a value that cannot be
stored fails with :class:`StorageError` exactly as in the other backends; the connection's jsonb
codec (see :mod:`storage.postgres.schema`) passes that text through and decodes results.
Parameters are positional (``$1, $2...``), in the order of the ``*_COLUMNS`` tuples.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from service.errors import StorageError
from storage import rows
from storage.records import (
    DeliveryAttemptRecord,
    DeliveryRecord,
    EndpointEventRecord,
    EventRecord,
    JobRecord,
    NotificationRecord,
    TaskRecord,
    VideoRecord,
    WebhookEndpointRecord,
)
from storage.rows import Codec, Kind, estimated_amount, reader, writer

# asyncpg.Record: read by column name
Row = Mapping[str, Any]
Args = tuple[Any, ...]


def names(columns: Sequence[str]) -> str:
    return ", ".join(columns)


def placeholders(columns: Sequence[str], start: int = 1) -> str:
    """``$1, $2...`` for ``columns``: positional parameters matching the ``*_args`` tuples."""
    return ", ".join(f"${i}" for i in range(start, start + len(columns)))


def compare_and_set(table: str, columns: Sequence[str]) -> str:
    """The UPDATE of a whole row of ``table`` whose parameters are the row's columns in order
    (so ``$1`` is the id and the last one the version that was read, as in the shared tables):
    it matches only while the version is that one, and bumps it."""
    sets = [
        f"{column} = ${position}"
        for position, column in enumerate(columns, start=1)
        if column not in ("id", "version")
    ]
    return (
        f"UPDATE {table} SET {', '.join(sets)}, version = version + 1 "
        f"WHERE id = $1 AND version = ${len(columns)}"
    )


def utc(value: datetime) -> datetime:
    """Records promise aware datetimes; a naive one is taken as UTC (as SQLite does)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def encode_json(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"value is not JSON-serialisable: {exc}") from exc


# -- the shared tables (storage.rows), as PostgreSQL stores them ----------------------------

CODEC = Codec(
    encode={
        Kind.TIME: utc,
        Kind.JSON: encode_json,
        Kind.BYTES: bytes,
        Kind.ENUM: str,
        Kind.AMOUNT: estimated_amount,
    },
    # timestamptz and boolean arrive as they are, jsonb decoded by the connection's codec
    decode={Kind.BYTES: bytes},
)

TASK_COLUMNS = rows.TASKS.names
task_args: Callable[[TaskRecord], Args] = writer(rows.TASKS, CODEC)
task_from_row: Callable[[Row], TaskRecord] = reader(rows.TASKS, CODEC)

VIDEO_COLUMNS = rows.VIDEOS.names
video_args: Callable[[VideoRecord], Args] = writer(rows.VIDEOS, CODEC)
video_from_row: Callable[[Row], VideoRecord] = reader(rows.VIDEOS, CODEC)

EVENT_COLUMNS = rows.EVENTS.names
event_args: Callable[[EventRecord], Args] = writer(rows.EVENTS, CODEC)
event_from_row: Callable[[Row], EventRecord] = reader(rows.EVENTS, CODEC)

NOTIFICATION_COLUMNS = rows.NOTIFICATIONS.names
notification_args: Callable[[NotificationRecord], Args] = writer(rows.NOTIFICATIONS, CODEC)
notification_from_row: Callable[[Row], NotificationRecord] = reader(rows.NOTIFICATIONS, CODEC)

JOB_COLUMNS = rows.JOBS.names
job_args: Callable[[JobRecord], Args] = writer(rows.JOBS, CODEC)
job_from_row: Callable[[Row], JobRecord] = reader(rows.JOBS, CODEC)

ENDPOINT_COLUMNS = rows.ENDPOINTS.names
endpoint_args: Callable[[WebhookEndpointRecord], Args] = writer(rows.ENDPOINTS, CODEC)
endpoint_from_row: Callable[[Row], WebhookEndpointRecord] = reader(rows.ENDPOINTS, CODEC)

ENDPOINT_EVENT_COLUMNS = rows.ENDPOINT_EVENTS.names
endpoint_event_args: Callable[[EndpointEventRecord], Args] = writer(rows.ENDPOINT_EVENTS, CODEC)
endpoint_event_from_row: Callable[[Row], EndpointEventRecord] = reader(rows.ENDPOINT_EVENTS, CODEC)

DELIVERY_COLUMNS = rows.DELIVERIES.names
delivery_args: Callable[[DeliveryRecord], Args] = writer(rows.DELIVERIES, CODEC)
delivery_from_row: Callable[[Row], DeliveryRecord] = reader(rows.DELIVERIES, CODEC)

ATTEMPT_COLUMNS = rows.ATTEMPTS.names
attempt_args: Callable[[DeliveryAttemptRecord], Args] = writer(rows.ATTEMPTS, CODEC)
attempt_from_row: Callable[[Row], DeliveryAttemptRecord] = reader(rows.ATTEMPTS, CODEC)
