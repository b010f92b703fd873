-- Outgoing webhooks: endpoints, their operator events, deliveries (one per event and
-- endpoint) and every delivery attempt. Secrets are stored as they are: they sign.

CREATE TABLE webhook_endpoints (
    seq                        INTEGER PRIMARY KEY,
    id                         TEXT NOT NULL UNIQUE,
    url                        TEXT NOT NULL,
    description                TEXT NOT NULL DEFAULT '',
    events                     TEXT NOT NULL,  -- JSON array: ["*"] or event types
    enabled                    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    secret                     TEXT NOT NULL,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL,
    disabled_reason            TEXT,
    previous_secret            TEXT,
    previous_secret_expires_at TEXT,
    failing_since              TEXT,
    version                    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE webhook_endpoint_events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    type        TEXT NOT NULL,
    timestamp   TEXT NOT NULL,
    message     TEXT NOT NULL
);

CREATE INDEX webhook_endpoint_events_by_endpoint ON webhook_endpoint_events (endpoint_id, seq);

CREATE TABLE webhook_deliveries (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    event_id         TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    task_id          TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    job_id           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    round_attempts   INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER,
    last_error       TEXT,
    next_attempt_at  TEXT,
    UNIQUE (event_id, endpoint_id)
);

-- newest-first listings of an endpoint's and of a task's deliveries
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, created_at, id);
CREATE INDEX webhook_deliveries_by_task ON webhook_deliveries (task_id, created_at, id);

CREATE TABLE webhook_attempts (
    seq                INTEGER PRIMARY KEY,
    delivery_id        TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at       TEXT NOT NULL,
    duration_ms        INTEGER NOT NULL,
    status_code        INTEGER,
    error              TEXT,
    response_body      TEXT NOT NULL DEFAULT '',
    response_truncated INTEGER NOT NULL DEFAULT 0 CHECK (response_truncated IN (0, 1))
);

CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, seq);
