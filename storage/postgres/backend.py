"""The PostgreSQL backend (several ``web`` and ``worker`` replicas on one database), on asyncpg.

Three layers, one concept each: the pool, transactions and wake-ups
(:mod:`storage.postgres.pool`), the job queue (:mod:`storage.postgres.jobs`), and here tasks,
videos, events and the callback inbox. The guarantees the replicas rely on come from
PostgreSQL itself: ``apply`` is a compare-and-set on ``tasks.version`` (a concurrent writer of
the same version waits for the row lock, then finds the version changed and writes nothing);
jobs are leased with ``FOR UPDATE SKIP LOCKED`` and fenced by ``lease_token``; new jobs wake
listening workers through ``LISTEN/NOTIFY`` (:mod:`storage.postgres.listen`). Schema and URL:
:mod:`storage.postgres.schema`; rows: :mod:`storage.postgres.rows`; statements:
:mod:`storage.postgres.sql`.

asyncpg is optional (``pip install 'omnihook[postgres]'``): only
:func:`storage.factory.create_storage` imports this module, when a PostgreSQL URL is chosen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from service.errors import Conflict
from storage.base import JobEnd
from storage.postgres import sql as sql
from storage.postgres.admission import PostgresAdmission
from storage.postgres.jobs import PostgresJobs, write_job_end
from storage.postgres.rows import (
    event_args,
    event_from_row,
    notification_args,
    notification_from_row,
    task_args,
    task_from_row,
    utc,
    video_args,
    video_from_row,
)
from storage.postgres.webhooks import PostgresWebhooks
from storage.records import (
    EventRecord,
    JobRecord,
    NotificationRecord,
    TaskChange,
    TaskRecord,
    TaskStatus,
    VideoRecord,
)


class PostgresStorage(PostgresAdmission, PostgresWebhooks, PostgresJobs):
    """Tasks, videos, events and the callback inbox; the queue and the pool are inherited."""

    # -- tasks -------------------------------------------------------------------------------

    async def create_task(self, task: TaskRecord, jobs: Sequence[JobRecord] = ()) -> None:
        args = task_args(task)

        async def insert(conn: Any) -> None:
            await conn.execute(sql.INSERT_TASK, *args)
            await self._insert_jobs(conn, jobs)

        async def landed(conn: Any) -> bool:
            return bool(await conn.fetchval("SELECT 1 FROM tasks WHERE id = $1", task.id))

        try:
            await self._insert_new(insert, landed=landed)
        except Conflict as exc:
            raise Conflict(f"external_task_id {task.external_task_id!r} already exists") from exc

    async def get_task(self, id_or_external_id: str) -> TaskRecord | None:
        row = await self._read(
            lambda conn: conn.fetchrow(
                f"SELECT {sql.TASKS} FROM tasks WHERE id = $1 OR external_task_id = $1 "
                "ORDER BY id = $1 DESC LIMIT 1",
                id_or_external_id,
            )
        )
        return None if row is None else task_from_row(row)

    async def get_task_by_token_hash(self, token_hash: str) -> TaskRecord | None:
        row = await self._read(
            lambda conn: conn.fetchrow(
                f"SELECT {sql.TASKS} FROM tasks WHERE callback_token_hash = $1", token_hash
            )
        )
        return None if row is None else task_from_row(row)

    async def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[TaskRecord]:
        before_at, before_id = (utc(before[0]), before[1]) if before is not None else (None, None)
        rows = await self._read(
            lambda conn: conn.fetch(
                f"SELECT {sql.TASKS} FROM tasks "
                "WHERE ($1::text IS NULL OR status = $1) "
                "AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::text)) "
                "ORDER BY created_at DESC, id DESC LIMIT $4",
                None if status is None else str(status),
                before_at,
                before_id,
                max(limit, 0),
            )
        )
        return [task_from_row(row) for row in rows]

    async def list_stale_tasks(self, *, quiet_since: datetime, limit: int) -> list[TaskRecord]:
        rows = await self._read(
            lambda conn: conn.fetch(
                f"SELECT {sql.TASKS} FROM tasks "
                "WHERE status IN ('submitted', 'processing') "
                "AND coalesce(last_news_at, updated_at) < $1 "
                "ORDER BY coalesce(last_news_at, updated_at), id LIMIT $2",
                utc(quiet_since),
                max(limit, 0),
            )
        )
        return [task_from_row(row) for row in rows]

    async def delete_task(self, task_id: str) -> None:
        # videos, events, notifications, jobs: CASCADE; deleting it twice is deleting it once
        await self._execute(
            lambda conn: conn.execute("DELETE FROM tasks WHERE id = $1", task_id), repeatable=True
        )

    async def apply(self, change: TaskChange) -> bool:
        write = self._change_writer(change)
        try:
            # not repeatable: after a commit lost on its way, a second run would find its own
            # version and answer False (see storage.postgres.pool)
            applied = await self._transact(write)
        except Conflict as exc:
            ext = change.task.external_task_id
            raise Conflict(f"external_task_id {ext!r} already exists") from exc
        if applied:
            change.task.version += 1
        return applied

    def _change_writer(self, change: TaskChange) -> Callable[[Any], Awaitable[bool]]:
        """The statements of one task change, for a transaction that is open: the function
        answers False when someone else changed the task (nothing written)."""
        args = task_args(change.task)  # encoded first: a bad value fails before the transaction
        videos = [video_args(video) for video in change.videos]
        events = [event_args(event) for event in change.events]

        async def write(conn: Any) -> bool:
            # READ COMMITTED: a concurrent writer of the same version holds the row; this
            # UPDATE waits for it, re-reads the row, sees the new version and matches none
            if await conn.execute(sql.UPDATE_TASK, *args) != "UPDATE 1":
                return False  # someone else changed the task: nothing written
            if videos:
                await conn.executemany(sql.UPSERT_VIDEO, videos)
            if events:
                await conn.executemany(sql.INSERT_EVENT, events)
            await self._insert_jobs(conn, change.jobs)
            if change.settles:
                await conn.execute(
                    "UPDATE jobs SET status = 'succeeded', updated_at = $1 "
                    "WHERE task_id = $2 AND kind = ANY($3::text[]) AND status = 'queued'",
                    utc(change.task.updated_at),
                    change.task.id,
                    list(change.settles),
                )
            return True

        return write

    # -- videos and events -------------------------------------------------------------------

    async def set_download_progress(
        self, task_id: str, index: int, *, received: int, total: int | None
    ) -> None:
        await self._execute(
            lambda conn: conn.execute(
                "UPDATE videos SET bytes_received = $3, bytes_total = $4 "
                "WHERE task_id = $1 AND video_index = $2",
                task_id,
                index,
                received,
                total,
            ),
            repeatable=True,
        )

    async def list_videos(self, task_id: str) -> list[VideoRecord]:
        rows = await self._read(
            lambda conn: conn.fetch(
                f"SELECT {sql.VIDEOS} FROM videos WHERE task_id = $1 ORDER BY video_index",
                task_id,
            )
        )
        return [video_from_row(row) for row in rows]

    async def list_events(self, task_id: str) -> list[EventRecord]:
        rows = await self._read(
            lambda conn: conn.fetch(
                f"SELECT {sql.EVENTS} FROM events WHERE task_id = $1 ORDER BY seq", task_id
            )
        )
        return [event_from_row(row) for row in rows]

    async def get_event(self, event_id: str) -> EventRecord | None:
        row = await self._read(
            lambda conn: conn.fetchrow(f"SELECT {sql.EVENTS} FROM events WHERE id = $1", event_id)
        )
        return None if row is None else event_from_row(row)

    # -- the callback inbox ------------------------------------------------------------------

    async def record_notification(self, notification: NotificationRecord, job: JobRecord) -> None:
        args = notification_args(notification)

        async def insert(conn: Any) -> None:
            await conn.execute(sql.INSERT_NOTIFICATION, *args)
            await self._insert_jobs(conn, [job])

        async def landed(conn: Any) -> bool:
            found = await conn.fetchval(
                "SELECT 1 FROM notifications WHERE id = $1", notification.id
            )
            return bool(found)

        await self._insert_new(insert, landed=landed)

    async def get_notification(self, notification_id: str) -> NotificationRecord | None:
        row = await self._read(
            lambda conn: conn.fetchrow(
                f"SELECT {sql.NOTIFICATIONS} FROM notifications WHERE id = $1", notification_id
            )
        )
        return None if row is None else notification_from_row(row)

    async def list_notifications(self, task_id: str) -> list[NotificationRecord]:
        rows = await self._read(
            lambda conn: conn.fetch(
                f"SELECT {sql.NOTIFICATIONS} FROM notifications WHERE task_id = $1 "
                "ORDER BY received_at, seq",
                task_id,
            )
        )
        return [notification_from_row(row) for row in rows]

    async def set_notification_outcome(
        self, notification_id: str, outcome: str, job_end: JobEnd | None = None
    ) -> None:

        async def write(conn: Any) -> None:  # gone with its task: nothing left to annotate
            await conn.execute(
                "UPDATE notifications SET outcome = $2 WHERE id = $1", notification_id, outcome
            )
            if job_end is not None and await write_job_end(conn, job_end) and job_end.due_at_once:
                await self._notify(conn)

        # repeatable: the outcome is a value, and a job end already written is not written
        # again (its fence no longer holds) nor answered
        await self._transact(write, repeatable=True)
