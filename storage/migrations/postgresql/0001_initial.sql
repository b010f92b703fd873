-- The initial schema (PostgreSQL). The same tables as the SQLite migration of the same number,
-- in native types: timestamptz, jsonb, bytea. `seq` columns give rows a stable insertion order,
-- the tie-breaker for "oldest first" listings and for leasing jobs of the same run_at.

CREATE TABLE tasks (
    id                  text PRIMARY KEY,
    external_task_id    text NOT NULL UNIQUE,
    callback_token_hash text NOT NULL UNIQUE,
    status              text NOT NULL
        CHECK (status IN ('pending', 'submitted', 'processing', 'succeeded', 'failed')),
    model_name          text NOT NULL,
    request             jsonb NOT NULL,
    metadata            jsonb NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    provider_task_id    text,
    status_message      text NOT NULL DEFAULT '',
    cost                text,
    last_news_at        timestamptz,
    version             bigint NOT NULL DEFAULT 0
);

-- newest-first keyset pagination, unfiltered and by status
CREATE INDEX tasks_by_created ON tasks (created_at, id);
CREATE INDEX tasks_by_status ON tasks (status, created_at, id);
-- the stale-task scan: unfinished tasks by their latest news
CREATE INDEX tasks_by_news ON tasks (coalesce(last_news_at, updated_at), id)
    WHERE status IN ('submitted', 'processing');

CREATE TABLE videos (
    task_id           text NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    video_index       integer NOT NULL,
    url               text NOT NULL,
    updated_at        timestamptz NOT NULL,
    provider_video_id text,
    duration          text,
    download_status   text NOT NULL
        CHECK (download_status IN ('pending', 'downloading', 'downloaded', 'failed')),
    size              bigint,
    sha256            text,
    path              text,
    error             text,
    bytes_received    bigint NOT NULL DEFAULT 0,
    bytes_total       bigint,
    PRIMARY KEY (task_id, video_index)
);

CREATE TABLE events (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id        text NOT NULL UNIQUE,
    task_id   text NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    type      text NOT NULL,
    event_key text NOT NULL,
    timestamp timestamptz NOT NULL,
    data      jsonb NOT NULL,
    UNIQUE (task_id, event_key)
);

CREATE INDEX events_by_task ON events (task_id, timestamp, seq);

CREATE TABLE notifications (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           text NOT NULL UNIQUE,
    task_id      text NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    received_at  timestamptz NOT NULL,
    headers      jsonb NOT NULL,
    body         bytea NOT NULL,
    outcome      text,
    verification text
);

CREATE INDEX notifications_by_task ON notifications (task_id, received_at, seq);

CREATE TABLE jobs (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text NOT NULL UNIQUE,
    kind             text NOT NULL,
    payload          jsonb NOT NULL,
    run_at           timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    task_id          text REFERENCES tasks (id) ON DELETE CASCADE,
    dedupe_key       text UNIQUE,
    status           text NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    lease_token      bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    last_error       text
);

-- what lease_jobs and next_job_due scan: queued jobs by run_at, running jobs by lease expiry
-- (partial indexes: finished jobs, the bulk of the table, are never scanned)
CREATE INDEX jobs_queued ON jobs (run_at, seq) WHERE status = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_by_task ON jobs (task_id, created_at, seq);
