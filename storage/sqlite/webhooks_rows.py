"""Outgoing-webhook records ↔ SQLite rows (the conventions of :mod:`storage.sqlite.rows`)."""

from __future__ import annotations

import sqlite3

from storage.records import (
    DeliveryAttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    EndpointEventRecord,
    WebhookEndpointRecord,
)
from storage.sqlite.rows import (
    Params,
    decode_json,
    decode_optional_time,
    decode_time,
    encode_json,
    encode_optional_time,
    encode_time,
)

ENDPOINT_COLUMNS = (
    "id, url, description, events, enabled, secret, created_at, updated_at, disabled_reason, "
    "previous_secret, previous_secret_expires_at, failing_since, version"
)


def endpoint_params(endpoint: WebhookEndpointRecord) -> Params:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": encode_json(endpoint.events),
        "enabled": int(endpoint.enabled),
        "secret": endpoint.secret,
        "created_at": encode_time(endpoint.created_at),
        "updated_at": encode_time(endpoint.updated_at),
        "disabled_reason": endpoint.disabled_reason,
        "previous_secret": endpoint.previous_secret,
        "previous_secret_expires_at": encode_optional_time(endpoint.previous_secret_expires_at),
        "failing_since": encode_optional_time(endpoint.failing_since),
        "version": endpoint.version,
    }


def endpoint_from_row(row: sqlite3.Row) -> WebhookEndpointRecord:
    return WebhookEndpointRecord(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        events=decode_json(row["events"]),
        enabled=bool(row["enabled"]),
        secret=row["secret"],
        created_at=decode_time(row["created_at"]),
        updated_at=decode_time(row["updated_at"]),
        disabled_reason=row["disabled_reason"],
        previous_secret=row["previous_secret"],
        previous_secret_expires_at=decode_optional_time(row["previous_secret_expires_at"]),
        failing_since=decode_optional_time(row["failing_since"]),
        version=row["version"],
    )


ENDPOINT_EVENT_COLUMNS = "id, endpoint_id, type, timestamp, message"


def endpoint_event_params(event: EndpointEventRecord) -> Params:
    return {
        "id": event.id,
        "endpoint_id": event.endpoint_id,
        "type": event.type,
        "timestamp": encode_time(event.timestamp),
        "message": event.message,
    }


def endpoint_event_from_row(row: sqlite3.Row) -> EndpointEventRecord:
    return EndpointEventRecord(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        type=row["type"],
        timestamp=decode_time(row["timestamp"]),
        message=row["message"],
    )


DELIVERY_COLUMNS = (
    "id, event_id, event_type, endpoint_id, task_id, job_id, created_at, updated_at, status, "
    "attempts, round_attempts, last_status_code, last_error, next_attempt_at"
)


def delivery_params(delivery: DeliveryRecord) -> Params:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "endpoint_id": delivery.endpoint_id,
        "task_id": delivery.task_id,
        "job_id": delivery.job_id,
        "created_at": encode_time(delivery.created_at),
        "updated_at": encode_time(delivery.updated_at),
        "status": str(delivery.status),
        "attempts": delivery.attempts,
        "round_attempts": delivery.round_attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "next_attempt_at": encode_optional_time(delivery.next_attempt_at),
    }


def delivery_from_row(row: sqlite3.Row) -> DeliveryRecord:
    return DeliveryRecord(
        id=row["id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        endpoint_id=row["endpoint_id"],
        task_id=row["task_id"],
        job_id=row["job_id"],
        created_at=decode_time(row["created_at"]),
        updated_at=decode_time(row["updated_at"]),
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        round_attempts=row["round_attempts"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        next_attempt_at=decode_optional_time(row["next_attempt_at"]),
    )


ATTEMPT_COLUMNS = (
    "delivery_id, attempted_at, duration_ms, status_code, error, response_body, response_truncated"
)


def attempt_params(attempt: DeliveryAttemptRecord) -> Params:
    return {
        "delivery_id": attempt.delivery_id,
        "attempted_at": encode_time(attempt.attempted_at),
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "response_body": attempt.response_body,
        "response_truncated": int(attempt.response_truncated),
    }


def attempt_from_row(row: sqlite3.Row) -> DeliveryAttemptRecord:
    return DeliveryAttemptRecord(
        delivery_id=row["delivery_id"],
        attempted_at=decode_time(row["attempted_at"]),
        duration_ms=row["duration_ms"],
        status_code=row["status_code"],
        error=row["error"],
        response_body=row["response_body"],
        response_truncated=bool(row["response_truncated"]),
    )
