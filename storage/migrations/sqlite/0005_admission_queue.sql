-- The admission queue: a task may be `queued` (waiting for a free provider slot), has a
-- `priority`, and remembers when it left the queue (`admitted_at`: its deadline runs from then). SQLite cannot change a CHECK constraint in place, so the table is rebuilt the way
-- SQLite's documentation prescribes; the migration runner turns foreign keys off around it
-- (dropping the old table must not cascade into videos, events, notifications and jobs) and
-- checks them before it commits.

CREATE TABLE tasks_rebuilt (
    id                  TEXT PRIMARY KEY,
    external_task_id    TEXT NOT NULL UNIQUE,
    callback_token_hash TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL
        CHECK (status IN ('queued', 'pending', 'submitted', 'processing', 'succeeded', 'failed')),
    model_name          TEXT NOT NULL,
    request             TEXT NOT NULL,
    metadata            TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    provider_task_id    TEXT,
    status_message      TEXT NOT NULL DEFAULT '',
    cost                TEXT,
    last_news_at        TEXT,
    version             INTEGER NOT NULL DEFAULT 0,
    priority            INTEGER NOT NULL DEFAULT 0,
    admitted_at         TEXT
);

INSERT INTO tasks_rebuilt (
    id, external_task_id, callback_token_hash, status, model_name, request, metadata,
    created_at, updated_at, provider_task_id, status_message, cost, last_news_at, version
)
SELECT
    id, external_task_id, callback_token_hash, status, model_name, request, metadata,
    created_at, updated_at, provider_task_id, status_message, cost, last_news_at, version
FROM tasks;

DROP TABLE tasks;

ALTER TABLE tasks_rebuilt RENAME TO tasks;

CREATE INDEX tasks_by_created ON tasks (created_at, id);
CREATE INDEX tasks_by_status ON tasks (status, created_at, id);
CREATE INDEX tasks_by_news ON tasks (status, coalesce(last_news_at, updated_at), id);
-- the queue, in the order tasks leave it: highest priority, then oldest
CREATE INDEX tasks_queue ON tasks (priority DESC, created_at, id) WHERE status = 'queued';
-- tasks in flight at the provider, counted per model at every admission
CREATE INDEX tasks_in_flight ON tasks (model_name) WHERE status IN ('pending', 'submitted', 'processing');
