-- The initial schema. Times are ISO-8601 UTC text of fixed width (they sort as they compare),
-- JSON is text, notification bodies are BLOBs. `seq` columns give rows a stable insertion
-- order, the tie-breaker for "oldest first" listings.

CREATE TABLE tasks (
    id                  TEXT PRIMARY KEY,
    external_task_id    TEXT NOT NULL UNIQUE,
    callback_token_hash TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL
        CHECK (status IN ('pending', 'submitted', 'processing', 'succeeded', 'failed')),
    model_name          TEXT NOT NULL,
    request             TEXT NOT NULL,
    metadata            TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    provider_task_id    TEXT,
    status_message      TEXT NOT NULL DEFAULT '',
    cost                TEXT,
    last_news_at        TEXT,
    version             INTEGER NOT NULL DEFAULT 0
);

-- newest-first keyset pagination, unfiltered and by status
CREATE INDEX tasks_by_created ON tasks (created_at, id);
CREATE INDEX tasks_by_status ON tasks (status, created_at, id);
-- the stale-task scan: unfinished tasks by their latest news
CREATE INDEX tasks_by_news ON tasks (status, coalesce(last_news_at, updated_at), id);

CREATE TABLE videos (
    task_id           TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    video_index       INTEGER NOT NULL,
    url               TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    provider_video_id TEXT,
    duration          TEXT,
    download_status   TEXT NOT NULL
        CHECK (download_status IN ('pending', 'downloading', 'downloaded', 'failed')),
    size              INTEGER,
    sha256            TEXT,
    path              TEXT,
    error             TEXT,
    bytes_received    INTEGER NOT NULL DEFAULT 0,
    bytes_total       INTEGER,
    PRIMARY KEY (task_id, video_index)
);

CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    id        TEXT NOT NULL UNIQUE,
    task_id   TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    type      TEXT NOT NULL,
    event_key TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    data      TEXT NOT NULL,
    UNIQUE (task_id, event_key)
);

CREATE INDEX events_by_task ON events (task_id, timestamp, seq);

CREATE TABLE notifications (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    task_id     TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    received_at TEXT NOT NULL,
    headers     TEXT NOT NULL,
    body        BLOB NOT NULL,
    outcome     TEXT,
    verification TEXT
);

CREATE INDEX notifications_by_task ON notifications (task_id, received_at, seq);

CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    run_at           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    task_id          TEXT REFERENCES tasks (id) ON DELETE CASCADE,
    dedupe_key       TEXT UNIQUE,
    status           TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_token      INTEGER NOT NULL DEFAULT 0,
    lease_expires_at TEXT,
    last_error       TEXT
);

-- what lease_jobs and next_job_due scan: queued jobs by run_at, running jobs by lease expiry
CREATE INDEX jobs_due ON jobs (status, run_at, seq);
CREATE INDEX jobs_leases ON jobs (status, lease_expires_at);
CREATE INDEX jobs_by_task ON jobs (task_id, created_at, seq);
