"""Outgoing-webhook records ↔ PostgreSQL rows (the conventions of :mod:`storage.postgres.rows`)."""

from __future__ import annotations

from storage.postgres.rows import Args, Row, encode_json, names, optional_utc, placeholders, utc
from storage.records import (
    DeliveryAttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    EndpointEventRecord,
    WebhookEndpointRecord,
)

ENDPOINT_COLUMNS = (
    "id",
    "url",
    "description",
    "events",
    "enabled",
    "secret",
    "created_at",
    "updated_at",
    "disabled_reason",
    "previous_secret",
    "previous_secret_expires_at",
    "failing_since",
    "version",
)


def endpoint_args(endpoint: WebhookEndpointRecord) -> Args:
    return (
        endpoint.id,
        endpoint.url,
        endpoint.description,
        encode_json(endpoint.events),
        endpoint.enabled,
        endpoint.secret,
        utc(endpoint.created_at),
        utc(endpoint.updated_at),
        endpoint.disabled_reason,
        endpoint.previous_secret,
        optional_utc(endpoint.previous_secret_expires_at),
        optional_utc(endpoint.failing_since),
        endpoint.version,
    )


def endpoint_from_row(row: Row) -> WebhookEndpointRecord:
    return WebhookEndpointRecord(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        events=row["events"],
        enabled=row["enabled"],
        secret=row["secret"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        disabled_reason=row["disabled_reason"],
        previous_secret=row["previous_secret"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
        failing_since=row["failing_since"],
        version=row["version"],
    )


ENDPOINT_EVENT_COLUMNS = ("id", "endpoint_id", "type", "timestamp", "message")


def endpoint_event_args(event: EndpointEventRecord) -> Args:
    return (event.id, event.endpoint_id, event.type, utc(event.timestamp), event.message)


def endpoint_event_from_row(row: Row) -> EndpointEventRecord:
    return EndpointEventRecord(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        type=row["type"],
        timestamp=row["timestamp"],
        message=row["message"],
    )


DELIVERY_COLUMNS = (
    "id",
    "event_id",
    "event_type",
    "endpoint_id",
    "task_id",
    "job_id",
    "created_at",
    "updated_at",
    "status",
    "attempts",
    "round_attempts",
    "last_status_code",
    "last_error",
    "next_attempt_at",
)


def delivery_args(delivery: DeliveryRecord) -> Args:
    return (
        delivery.id,
        delivery.event_id,
        delivery.event_type,
        delivery.endpoint_id,
        delivery.task_id,
        delivery.job_id,
        utc(delivery.created_at),
        utc(delivery.updated_at),
        str(delivery.status),
        delivery.attempts,
        delivery.round_attempts,
        delivery.last_status_code,
        delivery.last_error,
        optional_utc(delivery.next_attempt_at),
    )


def delivery_from_row(row: Row) -> DeliveryRecord:
    return DeliveryRecord(
        id=row["id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        endpoint_id=row["endpoint_id"],
        task_id=row["task_id"],
        job_id=row["job_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        round_attempts=row["round_attempts"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
    )


ATTEMPT_COLUMNS = (
    "delivery_id",
    "attempted_at",
    "duration_ms",
    "status_code",
    "error",
    "response_body",
    "response_truncated",
)


def attempt_args(attempt: DeliveryAttemptRecord) -> Args:
    return (
        attempt.delivery_id,
        utc(attempt.attempted_at),
        attempt.duration_ms,
        attempt.status_code,
        attempt.error,
        attempt.response_body,
        attempt.response_truncated,
    )


def attempt_from_row(row: Row) -> DeliveryAttemptRecord:
    return DeliveryAttemptRecord(
        delivery_id=row["delivery_id"],
        attempted_at=row["attempted_at"],
        duration_ms=row["duration_ms"],
        status_code=row["status_code"],
        error=row["error"],
        response_body=row["response_body"],
        response_truncated=row["response_truncated"],
    )


ENDPOINTS = names(ENDPOINT_COLUMNS)
ENDPOINT_EVENTS = names(ENDPOINT_EVENT_COLUMNS)
DELIVERIES = names(DELIVERY_COLUMNS)
ATTEMPTS = names(ATTEMPT_COLUMNS)

INSERT_ENDPOINT = (
    f"INSERT INTO webhook_endpoints ({ENDPOINTS}) VALUES ({placeholders(ENDPOINT_COLUMNS)})"
)
INSERT_ENDPOINT_EVENT = (
    f"INSERT INTO webhook_endpoint_events ({ENDPOINT_EVENTS}) "
    f"VALUES ({placeholders(ENDPOINT_EVENT_COLUMNS)})"
)
INSERT_DELIVERY = (
    f"INSERT INTO webhook_deliveries ({DELIVERIES}) VALUES ({placeholders(DELIVERY_COLUMNS)}) "
    "ON CONFLICT (event_id, endpoint_id) DO NOTHING"
)
INSERT_ATTEMPT = (
    f"INSERT INTO webhook_attempts ({ATTEMPTS}) VALUES ({placeholders(ATTEMPT_COLUMNS)})"
)
# compare-and-set: $1 is the id, the last parameter the version that was read
_ENDPOINT_SETS = [
    f"{column} = ${position}"
    for position, column in enumerate(ENDPOINT_COLUMNS, start=1)
    if column not in ("id", "version")
]
UPDATE_ENDPOINT = (
    f"UPDATE webhook_endpoints SET {', '.join(_ENDPOINT_SETS)}, version = version + 1 "
    f"WHERE id = $1 AND version = ${len(ENDPOINT_COLUMNS)}"
)
# the delivery's changing columns: $1 id, then status ... next_attempt_at, updated_at
UPDATE_DELIVERY = (
    "UPDATE webhook_deliveries SET status = $2, attempts = $3, round_attempts = $4, "
    "last_status_code = $5, last_error = $6, next_attempt_at = $7, updated_at = $8 WHERE id = $1"
)
# the enabled endpoints whose filter takes the event ($2 its type), if the event was inserted
WANTING = (
    "SELECT w.id FROM webhook_endpoints AS w "
    "WHERE w.enabled AND EXISTS (SELECT 1 FROM events WHERE id = $1) "
    "AND (w.events ? '*' OR w.events ? $2) ORDER BY w.seq"
)
