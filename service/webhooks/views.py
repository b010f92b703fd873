"""The public JSON of endpoints, their operator events, deliveries and attempts.

An endpoint's secret appears only where it is handed out: the answer that created it and the
one that rotated it (``with_secret``). Never in a listing, a log line or a ``repr``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from service.clock import isoformat
from storage.records import (
    DeliveryAttemptRecord,
    DeliveryRecord,
    EndpointEventRecord,
    WebhookEndpointRecord,
)


def endpoint_json(endpoint: WebhookEndpointRecord, *, with_secret: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": isoformat(endpoint.failing_since),
        "previous_secret_expires_at": isoformat(endpoint.previous_secret_expires_at),
        "created_at": isoformat(endpoint.created_at),
        "updated_at": isoformat(endpoint.updated_at),
    }
    if with_secret:
        view["secret"] = endpoint.secret
    return view


def operator_event_json(event: EndpointEventRecord) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "timestamp": isoformat(event.timestamp),
        "message": event.message,
    }


def attempt_json(attempt: DeliveryAttemptRecord) -> dict[str, Any]:
    return {
        "attempted_at": isoformat(attempt.attempted_at),
        "status_code": attempt.status_code,
        "duration_ms": attempt.duration_ms,
        "error": attempt.error,
        "response_body": attempt.response_body,
        "response_truncated": attempt.response_truncated,
    }


def delivery_json(
    delivery: DeliveryRecord, attempts: Sequence[DeliveryAttemptRecord] = ()
) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "endpoint_id": delivery.endpoint_id,
        "task_id": delivery.task_id,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "next_attempt_at": isoformat(delivery.next_attempt_at),
        "created_at": isoformat(delivery.created_at),
        "updated_at": isoformat(delivery.updated_at),
        "attempt_log": [attempt_json(attempt) for attempt in attempts],
    }


def deliveries_json(
    deliveries: Sequence[DeliveryRecord], attempts: Sequence[DeliveryAttemptRecord]
) -> list[dict[str, Any]]:
    """Each delivery with its own attempts, oldest first."""
    by_delivery: dict[str, list[DeliveryAttemptRecord]] = defaultdict(list)
    for attempt in attempts:
        by_delivery[attempt.delivery_id].append(attempt)
    return [delivery_json(d, by_delivery[d.id]) for d in deliveries]
