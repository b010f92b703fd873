"""Records ↔ rows, once for both SQL backends: which column holds which field, as what kind.

A :class:`Table` lists a record's columns in order, each with the field it holds and its
:class:`Kind`. A backend's :class:`Codec` says how it stores each kind (SQLite: times as
fixed-width ISO text, JSON as text, booleans as integers; PostgreSQL: ``timestamptz``, ``jsonb``,
``boolean``), and :func:`writer` / :func:`reader` build, once per table and codec, the
function that turns a record into its row's values and a row back into a record. ``None``
passes through every kind unchanged. A column may also be written only, derived from a field
(the estimate's amount, as a number the database can add up for budgets).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from enum import Enum
from operator import attrgetter
from typing import Any, Generic, TypeVar

from service.errors import StorageError
from storage.records import (
    DeliveryAttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    DownloadStatus,
    EndpointEventRecord,
    EventRecord,
    JobRecord,
    JobStatus,
    NotificationRecord,
    OutputKind,
    TaskRecord,
    TaskStatus,
    VideoRecord,
    WebhookEndpointRecord,
)

R = TypeVar("R")
Convert = Callable[[Any], Any]


class Kind(Enum):
    PLAIN = "plain"  # text and numbers, stored as they are
    TIME = "time"  # an aware datetime
    JSON = "json"  # a JSON document (dict or list)
    BYTES = "bytes"  # a blob
    BOOL = "bool"
    ENUM = "enum"  # a str enum, stored as its value (the column's ``enum`` reads it back)
    AMOUNT = "amount"  # written only: the estimate's amount, from its ``amount`` key


@dataclass(frozen=True)
class Column:
    name: str
    field: str
    kind: Kind = Kind.PLAIN
    enum: type[Enum] | None = None
    read: bool = True  # False: derived from ``field`` when written, never read back


@dataclass(frozen=True)
class Table(Generic[R]):
    record: type[R]
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def renamed(self, **names: str) -> Table[R]:
        """The same table where a backend names some columns its own way."""
        columns = tuple(replace(c, name=names.get(c.name, c.name)) for c in self.columns)
        return Table(self.record, columns)


@dataclass(frozen=True)
class Codec:
    """How one backend stores each kind: converters for writing and for reading (none: as is)."""

    encode: Mapping[Kind, Convert]
    decode: Mapping[Kind, Convert]


def writer(table: Table[R], codec: Codec) -> Callable[[R], tuple[Any, ...]]:
    """The function giving a record's values in the order of ``table``'s columns."""
    fields = attrgetter(*(column.field for column in table.columns))
    conversions = [
        (position, codec.encode[column.kind])
        for position, column in enumerate(table.columns)
        if column.kind in codec.encode
    ]

    def values(record: R) -> tuple[Any, ...]:
        row = list(fields(record))
        for position, convert in conversions:
            value = row[position]
            if value is not None:
                row[position] = convert(value)
        return tuple(row)

    return values


def reader(table: Table[R], codec: Codec) -> Callable[[Any], R]:
    """The function building a record from a row read by column name."""
    plain: list[tuple[str, str]] = []
    converted: list[tuple[str, str, Convert]] = []
    for column in table.columns:
        if not column.read:
            continue
        convert = column.enum if column.kind is Kind.ENUM else codec.decode.get(column.kind)
        if convert is None:
            plain.append((column.field, column.name))
        else:
            converted.append((column.field, column.name, convert))
    record = table.record

    def build(row: Any) -> R:
        fields = {field: row[name] for field, name in plain}
        for field, name, convert in converted:
            value = row[name]
            fields[field] = None if value is None else convert(value)
        return record(**fields)

    return build


def estimated_amount(estimate: dict[str, Any]) -> Decimal | None:
    """The estimate's amount as a number (the budgets' sums), None when it states none."""
    amount = estimate.get("amount")
    if amount is None:
        return None
    try:
        return Decimal(str(amount))
    except InvalidOperation as exc:
        raise StorageError(f"the estimate's amount is not a number: {exc}") from exc


TASKS = Table(
    TaskRecord,
    (
        Column("id", "id"),
        Column("external_task_id", "external_task_id"),
        Column("callback_token_hash", "callback_token_hash"),
        Column("status", "status", Kind.ENUM, TaskStatus),
        Column("model_name", "model_name"),
        Column("request", "request", Kind.JSON),
        Column("metadata", "metadata", Kind.JSON),
        Column("created_at", "created_at", Kind.TIME),
        Column("updated_at", "updated_at", Kind.TIME),
        Column("provider_task_id", "provider_task_id"),
        Column("status_message", "status_message"),
        Column("cost", "cost"),
        Column("last_news_at", "last_news_at", Kind.TIME),
        Column("priority", "priority"),
        Column("admitted_at", "admitted_at", Kind.TIME),
        Column("estimate", "estimate", Kind.JSON),
        Column("estimated_amount", "estimate", Kind.AMOUNT, read=False),
        Column("billing", "billing", Kind.JSON),
        Column("version", "version"),  # last: a compare-and-set's final parameter
    ),
)

VIDEOS = Table(
    VideoRecord,
    (
        Column("task_id", "task_id"),
        Column("video_index", "index"),
        Column("url", "url"),
        Column("updated_at", "updated_at", Kind.TIME),
        Column("provider_video_id", "provider_video_id"),
        Column("duration", "duration"),
        Column("download_status", "download_status", Kind.ENUM, DownloadStatus),
        Column("size", "size"),
        Column("sha256", "sha256"),
        Column("path", "path"),
        Column("error", "error"),
        Column("bytes_received", "bytes_received"),
        Column("bytes_total", "bytes_total"),
        Column("kind", "kind", Kind.ENUM, OutputKind),
        Column("watermark_url", "watermark_url"),
        Column("watermark_path", "watermark_path"),
        Column("watermark_size", "watermark_size"),
        Column("watermark_sha256", "watermark_sha256"),
    ),
)

EVENTS = Table(
    EventRecord,
    (
        Column("id", "id"),
        Column("task_id", "task_id"),
        Column("type", "type"),
        Column("event_key", "key"),
        Column("timestamp", "timestamp", Kind.TIME),
        Column("data", "data", Kind.JSON),
    ),
)

NOTIFICATIONS = Table(
    NotificationRecord,
    (
        Column("id", "id"),
        Column("task_id", "task_id"),
        Column("received_at", "received_at", Kind.TIME),
        Column("headers", "headers", Kind.JSON),
        Column("body", "body", Kind.BYTES),
        Column("outcome", "outcome"),
        Column("verification", "verification"),
    ),
)

JOBS = Table(
    JobRecord,
    (
        Column("id", "id"),
        Column("kind", "kind"),
        Column("payload", "payload", Kind.JSON),
        Column("run_at", "run_at", Kind.TIME),
        Column("created_at", "created_at", Kind.TIME),
        Column("updated_at", "updated_at", Kind.TIME),
        Column("task_id", "task_id"),
        Column("dedupe_key", "dedupe_key"),
        Column("status", "status", Kind.ENUM, JobStatus),
        Column("attempts", "attempts"),
        Column("lease_token", "lease_token"),
        Column("lease_expires_at", "lease_expires_at", Kind.TIME),
        Column("last_error", "last_error"),
    ),
)

ENDPOINTS = Table(
    WebhookEndpointRecord,
    (
        Column("id", "id"),
        Column("url", "url"),
        Column("description", "description"),
        Column("events", "events", Kind.JSON),
        Column("enabled", "enabled", Kind.BOOL),
        Column("secret", "secret"),
        Column("created_at", "created_at", Kind.TIME),
        Column("updated_at", "updated_at", Kind.TIME),
        Column("disabled_reason", "disabled_reason"),
        Column("previous_secret", "previous_secret"),
        Column("previous_secret_expires_at", "previous_secret_expires_at", Kind.TIME),
        Column("failing_since", "failing_since", Kind.TIME),
        Column("version", "version"),  # last: a compare-and-set's final parameter
    ),
)

ENDPOINT_EVENTS = Table(
    EndpointEventRecord,
    (
        Column("id", "id"),
        Column("endpoint_id", "endpoint_id"),
        Column("type", "type"),
        Column("timestamp", "timestamp", Kind.TIME),
        Column("message", "message"),
    ),
)

DELIVERIES = Table(
    DeliveryRecord,
    (
        Column("id", "id"),
        Column("event_id", "event_id"),
        Column("event_type", "event_type"),
        Column("endpoint_id", "endpoint_id"),
        Column("task_id", "task_id"),
        Column("job_id", "job_id"),
        Column("created_at", "created_at", Kind.TIME),
        Column("updated_at", "updated_at", Kind.TIME),
        Column("status", "status", Kind.ENUM, DeliveryStatus),
        Column("attempts", "attempts"),
        Column("round_attempts", "round_attempts"),
        Column("last_status_code", "last_status_code"),
        Column("last_error", "last_error"),
        Column("next_attempt_at", "next_attempt_at", Kind.TIME),
    ),
)

ATTEMPTS = Table(
    DeliveryAttemptRecord,
    (
        Column("delivery_id", "delivery_id"),
        Column("attempted_at", "attempted_at", Kind.TIME),
        Column("duration_ms", "duration_ms"),
        Column("status_code", "status_code"),
        Column("error", "error"),
        Column("response_body", "response_body"),
        Column("response_truncated", "response_truncated", Kind.BOOL),
    ),
)
