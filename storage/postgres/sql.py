"""The statements of the PostgreSQL backend that are built from the column lists."""

from __future__ import annotations

from storage.postgres.rows import (
    EVENT_COLUMNS,
    JOB_COLUMNS,
    NOTIFICATION_COLUMNS,
    TASK_COLUMNS,
    VIDEO_COLUMNS,
    compare_and_set,
    names,
    placeholders,
)

TASKS = names(TASK_COLUMNS)
VIDEOS = names(VIDEO_COLUMNS)
EVENTS = names(EVENT_COLUMNS)
NOTIFICATIONS = names(NOTIFICATION_COLUMNS)
JOBS = names(JOB_COLUMNS)

INSERT_TASK = f"INSERT INTO tasks ({TASKS}) VALUES ({placeholders(TASK_COLUMNS)})"
INSERT_JOB = (
    f"INSERT INTO jobs ({JOBS}) VALUES ({placeholders(JOB_COLUMNS)}) "
    "ON CONFLICT (dedupe_key) DO NOTHING"
)
INSERT_EVENT = (
    f"INSERT INTO events ({EVENTS}) VALUES ({placeholders(EVENT_COLUMNS)}) "
    "ON CONFLICT (task_id, event_key) DO NOTHING"
)
INSERT_NOTIFICATION = (
    f"INSERT INTO notifications ({NOTIFICATIONS}) VALUES ({placeholders(NOTIFICATION_COLUMNS)})"
)
UPSERT_VIDEO = (
    f"INSERT INTO videos ({VIDEOS}) VALUES ({placeholders(VIDEO_COLUMNS)}) "
    "ON CONFLICT (task_id, video_index) DO UPDATE SET "
    + ", ".join(
        f"{column} = excluded.{column}"
        for column in VIDEO_COLUMNS
        if column not in ("task_id", "video_index")
    )
)

UPDATE_TASK = compare_and_set("tasks", TASK_COLUMNS)

# A job is due when queued and its time has come, or running on a lease its worker let expire.
# The two are looked up apart, each along its own partial index, the first $3 of each, and
# merged: one query with an OR read and sorted every due job for every lease (7 ms at 12,000
# queued, 0.1 ms this way). SKIP LOCKED: concurrent workers each take different rows instead
# of queueing behind one another; a row another transaction is leasing right now is simply not
# due for this one. (Rows a branch locks beyond the merged $3 stay locked only until this
# transaction's end, a few milliseconds; other workers skip them meanwhile.)
# $1 now, $2 lease expiry, $3 limit, $4 kinds (NULL: every kind)
_KIND = "($4::text[] IS NULL OR kind = ANY($4::text[]))"
LEASE_JOBS = (
    "WITH queued AS ("
    f"  SELECT seq, run_at FROM jobs WHERE status = 'queued' AND run_at <= $1 AND {_KIND}"
    "  ORDER BY run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED), "
    "expired AS ("
    f"  SELECT seq, run_at FROM jobs WHERE status = 'running' AND lease_expires_at <= $1"
    f"  AND {_KIND} ORDER BY run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED) "
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, "
    "lease_token = lease_token + 1, lease_expires_at = $2, updated_at = $1 "
    "WHERE seq IN ("
    "  SELECT seq FROM (SELECT seq, run_at FROM queued UNION ALL SELECT seq, run_at FROM expired)"
    "  AS due ORDER BY run_at, seq LIMIT $3) "
    f"RETURNING seq, {JOBS}"
)

# fencing: a result is recorded only while the token still holds the job ($1 id, $2 token)
HELD = "id = $1 AND status = 'running' AND lease_token = $2"

NEXT_JOB_DUE = (
    "SELECT least("
    " (SELECT min(run_at) FROM jobs WHERE status = 'queued'),"
    " (SELECT min(lease_expires_at) FROM jobs WHERE status = 'running'))"
)
