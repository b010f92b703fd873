"""The outgoing-webhook tables' SQL in the PostgreSQL backend (rows: storage.postgres.rows)."""

from __future__ import annotations

from storage.postgres.rows import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    ENDPOINT_COLUMNS,
    ENDPOINT_EVENT_COLUMNS,
    compare_and_set,
    names,
    placeholders,
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
UPDATE_ENDPOINT = compare_and_set("webhook_endpoints", ENDPOINT_COLUMNS)
# the delivery's changing columns: $1 id, then status ... next_attempt_at, updated_at
UPDATE_DELIVERY = (
    "UPDATE webhook_deliveries SET status = $2, attempts = $3, round_attempts = $4, "
    "last_status_code = $5, last_error = $6, next_attempt_at = $7, updated_at = $8 WHERE id = $1"
)
