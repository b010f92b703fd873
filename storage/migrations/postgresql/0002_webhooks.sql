-- Outgoing webhooks (PostgreSQL): the same tables as the SQLite migration of the same number,
-- in native types. Secrets are stored as they are: they sign.

CREATE TABLE webhook_endpoints (
    seq                        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                         text NOT NULL UNIQUE,
    url                        text NOT NULL,
    description                text NOT NULL DEFAULT '',
    events                     jsonb NOT NULL,  -- ["*"] or event types
    enabled                    boolean NOT NULL,
    secret                     text NOT NULL,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    disabled_reason            text,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    failing_since              timestamptz,
    version                    bigint NOT NULL DEFAULT 0
);

CREATE TABLE webhook_endpoint_events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    endpoint_id text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    type        text NOT NULL,
    timestamp   timestamptz NOT NULL,
    message     text NOT NULL
);

CREATE INDEX webhook_endpoint_events_by_endpoint ON webhook_endpoint_events (endpoint_id, seq);

CREATE TABLE webhook_deliveries (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text NOT NULL UNIQUE,
    event_id         text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    event_type       text NOT NULL,
    endpoint_id      text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    task_id          text NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    job_id           text NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    round_attempts   integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    next_attempt_at  timestamptz,
    UNIQUE (event_id, endpoint_id)
);

CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, created_at, id);
CREATE INDEX webhook_deliveries_by_task ON webhook_deliveries (task_id, created_at, id);

CREATE TABLE webhook_attempts (
    seq                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id        text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at       timestamptz NOT NULL,
    duration_ms        integer NOT NULL,
    status_code        integer,
    error              text,
    response_body      text NOT NULL DEFAULT '',
    response_truncated boolean NOT NULL DEFAULT false
);

CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, seq);
