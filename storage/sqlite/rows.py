"""Records ↔ SQLite rows: the shared tables of :mod:`storage.rows` with SQLite's codec.

Datetimes are stored as fixed-width ISO-8601 UTC text (``2025-01-01T12:00:00.000000Z``): it
sorts and compares as text exactly as the instants do, and stays readable in ``sqlite3``.
JSON fields are compact JSON text, notification bodies are BLOBs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

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
from storage.rows import Codec, Kind, Table, estimated_amount, reader, writer

R = TypeVar("R")
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


# One encoder for all: ``json.dumps`` with options builds a new one on every call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(value: Any) -> str:
    try:
        return _JSON.encode(value)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"value is not JSON-serialisable: {exc}") from exc


def decode_json(text: str) -> Any:
    return json.loads(text)


# -- the shared tables (storage.rows), as SQLite stores them --------------------------------

MICROS = 1_000_000  # SQLite adds up amounts as whole millionths: exact, unlike REAL


def _micros(estimate: dict[str, Any]) -> int | None:
    amount = estimated_amount(estimate)
    return None if amount is None else int((amount * MICROS).to_integral_value())


CODEC = Codec(
    encode={
        Kind.TIME: encode_time,
        Kind.JSON: encode_json,
        Kind.BYTES: bytes,
        Kind.BOOL: int,
        Kind.ENUM: str,
        Kind.AMOUNT: _micros,
    },
    decode={Kind.TIME: decode_time, Kind.JSON: decode_json, Kind.BYTES: bytes, Kind.BOOL: bool},
)

TASKS = rows.TASKS.renamed(estimated_amount="estimated_micros")


def _columns(table: Table[Any]) -> str:
    return ", ".join(table.names)


def _named(table: Table[R]) -> Callable[[R], Params]:
    """Named parameters (``:column``) for ``table``'s records."""
    values = writer(table, CODEC)
    names = table.names
    return lambda record: dict(zip(names, values(record)))  # noqa: B905 (same length: one table)


TASK_COLUMNS = _columns(TASKS)
task_params = _named(TASKS)
task_from_row: Callable[[sqlite3.Row], TaskRecord] = reader(TASKS, CODEC)

VIDEO_COLUMNS = _columns(rows.VIDEOS)
video_params = _named(rows.VIDEOS)
video_from_row: Callable[[sqlite3.Row], VideoRecord] = reader(rows.VIDEOS, CODEC)

EVENT_COLUMNS = _columns(rows.EVENTS)
event_params = _named(rows.EVENTS)
event_from_row: Callable[[sqlite3.Row], EventRecord] = reader(rows.EVENTS, CODEC)

# Notifications and jobs are written positionally (``?``, in the columns' order): one of each
# is written for every callback, and positional parameters bind in half the time of named ones.
NOTIFICATION_COLUMNS = _columns(rows.NOTIFICATIONS)
notification_row: Callable[[NotificationRecord], Row] = writer(rows.NOTIFICATIONS, CODEC)
notification_from_row: Callable[[sqlite3.Row], NotificationRecord] = reader(
    rows.NOTIFICATIONS, CODEC
)

JOB_COLUMNS = _columns(rows.JOBS)
job_row: Callable[[JobRecord], Row] = writer(rows.JOBS, CODEC)
job_from_row: Callable[[sqlite3.Row], JobRecord] = reader(rows.JOBS, CODEC)

ENDPOINT_COLUMNS = _columns(rows.ENDPOINTS)
endpoint_params = _named(rows.ENDPOINTS)
endpoint_from_row: Callable[[sqlite3.Row], WebhookEndpointRecord] = reader(rows.ENDPOINTS, CODEC)

ENDPOINT_EVENT_COLUMNS = _columns(rows.ENDPOINT_EVENTS)
endpoint_event_params = _named(rows.ENDPOINT_EVENTS)
endpoint_event_from_row: Callable[[sqlite3.Row], EndpointEventRecord] = reader(
    rows.ENDPOINT_EVENTS, CODEC
)

DELIVERY_COLUMNS = _columns(rows.DELIVERIES)
delivery_params = _named(rows.DELIVERIES)
delivery_from_row: Callable[[sqlite3.Row], DeliveryRecord] = reader(rows.DELIVERIES, CODEC)

ATTEMPT_COLUMNS = _columns(rows.ATTEMPTS)
attempt_params = _named(rows.ATTEMPTS)
attempt_from_row: Callable[[sqlite3.Row], DeliveryAttemptRecord] = reader(rows.ATTEMPTS, CODEC)


def placeholders(columns: str) -> str:
    """``:a, :b`` for the column list ``a, b``: named parameters matching ``*_params``."""
    return ", ".join(f":{name.strip()}" for name in columns.split(","))


def compare_and_set(table: str, columns: str) -> str:
    """The UPDATE of a whole row of ``table`` (named parameters matching ``*_params``) that
    matches only while its ``version`` is the one read, and bumps it."""
    names = [name.strip() for name in columns.split(",")]
    sets = [f"{name} = :{name}" for name in names if name not in ("id", "version")]
    return (
        f"UPDATE {table} SET {', '.join(sets)}, version = version + 1 "
        "WHERE id = :id AND version = :version"
    )


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
