"""The SQLite backend (the embedded default), on the standard ``sqlite3`` module.

Two connections, each on a thread of its own (:mod:`storage.sqlite.thread`), so SQLite never
runs or waits on the event loop's thread. Every write is a unit (a plain function of the
``sqlite3`` connection) handed to :meth:`SQLiteStorage._write`, the one writer of
:mod:`storage.sqlite.writer`: concurrent writes share one ``BEGIN IMMEDIATE`` transaction and one
``fsync`` (group commit). ``BEGIN IMMEDIATE`` takes the database's write lock up front: another
process (a second worker, ``serve``) waits for it (busy timeout) instead of failing halfway, and
a job selected as due is still due when it is marked leased. Reads run on the reader's
connection (:mod:`storage.sqlite.reader`), which sees the last commit; an in-memory database,
which a second connection would not see, is read on the writer's, between its batches. Row
mapping lives in :mod:`storage.sqlite.rows`, opening and migrations in
:mod:`storage.sqlite.schema`. Errors are translated by :mod:`storage.sqlite.errors`; a file
deleted or replaced under the storage is found by :mod:`storage.sqlite.file`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from service.errors import Conflict, StorageError
from storage.base import JobEnd, Storage
from storage.records import (
    EventRecord,
    JobRecord,
    NotificationRecord,
    TaskChange,
    TaskRecord,
    TaskStatus,
    VideoRecord,
)
from storage.sqlite import schema as sqlite_schema
from storage.sqlite.admission import SQLiteAdmission
from storage.sqlite.file import DatabaseFile
from storage.sqlite.jobs import INSERT_JOB, SQLiteJobs, changes_one, first_row, job_end_step
from storage.sqlite.reader import Reader
from storage.sqlite.rows import (
    EVENT_COLUMNS,
    NOTIFICATION_COLUMNS,
    TASK_COLUMNS,
    VIDEO_COLUMNS,
    compare_and_set,
    encode_time,
    event_from_row,
    event_params,
    job_row,
    notification_from_row,
    notification_row,
    page_filters,
    placeholders,
    positions,
    task_from_row,
    task_params,
    video_from_row,
    video_params,
)
from storage.sqlite.thread import Function
from storage.sqlite.wakeup import SQLiteWakeup
from storage.sqlite.webhooks import SQLiteWebhooks
from storage.sqlite.writer import Writer

_INSERT_EVENT = (
    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({placeholders(EVENT_COLUMNS)}) "
    "ON CONFLICT (task_id, event_key) DO NOTHING"
)
_UPSERT_VIDEO = (
    f"INSERT INTO videos ({VIDEO_COLUMNS}) VALUES ({placeholders(VIDEO_COLUMNS)}) "
    "ON CONFLICT (task_id, video_index) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}"
        for c in (n.strip() for n in VIDEO_COLUMNS.split(","))
        if c not in ("task_id", "video_index")
    )
)
_UPDATE_TASK = compare_and_set("tasks", TASK_COLUMNS)
_R = TypeVar("_R")
# TaskChange.settles: the task's queued jobs of a kind, done with
_SETTLE_JOBS = (
    "UPDATE jobs SET status = 'succeeded', updated_at = ? "
    "WHERE task_id = ? AND kind = ? AND status = 'queued'"
)

_INSERT_NOTIFICATION = (
    f"INSERT INTO notifications ({NOTIFICATION_COLUMNS}) VALUES ({positions(NOTIFICATION_COLUMNS)})"
)
# readiness: a write that commits, rewriting one row (the table never grows)
_HEALTH_PROBE = (
    "INSERT INTO health (id, checked_at) VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) "
    "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at"
)


class SQLiteStorage(SQLiteAdmission, SQLiteJobs, SQLiteWebhooks, Storage):
    def __init__(self, path: str, *, busy_timeout: float = 10.0) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        connect = partial(sqlite_schema.connect, path, busy_timeout=busy_timeout)
        self._writer = Writer(
            f"SQLite writer of {path!r}",
            connect,
            busy_timeout=busy_timeout,
            guard=self._file_guard,  # a write into a deleted file would be lost
        )
        # A second connection to ":memory:" would be another database: it is read on the
        # writer's connection (between batches)
        self._reader = None if path == ":memory:" else Reader(f"SQLite reader of {path!r}", connect)
        self._open = False
        self._opening = asyncio.Lock()  # open and close, one at a time
        self._wakeup = SQLiteWakeup(self._data_version)
        self._file = DatabaseFile(path)

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        async with self._opening:
            if self._open:
                return
            await self._writer.start()
            try:
                self._file.remember()
                try:
                    await self._writer.run_bare(sqlite_schema.migrate)
                except StorageError as exc:  # StorageUnavailable stays one (out of reach)
                    raise type(exc)(f"migrating {self.path!r}: {exc}") from exc
                self._wakeup.start(await self._writer.run_bare(_read_data_version))
                if self._reader is not None:  # after the writer: the file exists, in WAL mode
                    await self._reader.start()
            except BaseException:
                self._file.forget()
                await self._writer.stop()
                raise
            self._open = True

    async def close(self) -> None:
        async with self._opening:
            # no new write from now on; those already queued (callbacks about to be
            # acknowledged...) land before the writer's thread ends
            self._open = False
            try:
                await self._writer.stop()
            finally:
                if self._reader is not None:
                    await self._reader.stop()
                self._file.forget()

    async def ping(self) -> None:
        """The file is still the one opened, it can be read, and a write commits."""
        self._require_open()
        self._file.check()
        await self._fetch("SELECT 1")
        await self._write(lambda conn: conn.execute(_HEALTH_PROBE).rowcount)

    async def wait_for_jobs(self, timeout: float) -> None:  # noqa: ASYNC109
        await self._wakeup.wait(timeout)

    async def _data_version(self) -> int:
        # on the writer's connection: its data_version moves with other processes' commits only
        return await self._writer.run_bare(_read_data_version)

    def _file_guard(self) -> None:
        self._file.check_now_and_then()

    # -- reads and writes --------------------------------------------------------------------

    async def _read(self, query: Function[_R]) -> _R:
        """Run ``query`` (a function of the connection) on a connection that sees the last
        commit, never a batch's uncommitted writes (autocommit: each statement its snapshot)."""
        self._require_open()
        if self._reader is None:
            return await self._writer.run_bare(query)
        return await self._reader.run(query)

    async def _fetch(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]:
        """The rows of one query, read in one trip to the reader's thread."""
        return await self._read(lambda conn: conn.execute(sql, parameters).fetchall())

    async def _write(self, unit: Function[_R]) -> _R:
        """Run ``unit`` as one all-or-nothing write; answers its result once it is committed.
        Not alone: with the writes queued meanwhile, in one transaction (group commit). The
        unit may run twice (see :mod:`storage.sqlite.writer`): it only uses the connection,
        on the writer's thread, and never this storage's methods."""
        self._require_open()
        return await self._writer.run(unit)

    def _require_open(self) -> None:
        if not self._open:
            raise StorageError(f"{self!r} is not open")

    # -- tasks -------------------------------------------------------------------------------

    async def create_task(self, task: TaskRecord, jobs: Sequence[JobRecord] = ()) -> None:
        params = task_params(task)
        job_rows = [job_row(job) for job in jobs]

        def unit(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({placeholders(TASK_COLUMNS)})", params
            )
            conn.executemany(INSERT_JOB, job_rows)

        try:
            await self._write(unit)
        except Conflict as exc:
            raise Conflict(f"external_task_id {task.external_task_id!r} already exists") from exc
        if job_rows:
            self._wakeup.jobs_added()

    async def get_task(self, id_or_external_id: str) -> TaskRecord | None:
        rows = await self._fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = :key OR external_task_id = :key "
            "ORDER BY id = :key DESC LIMIT 1",
            {"key": id_or_external_id},
        )
        return first_row(rows, task_from_row)

    async def get_task_by_token_hash(self, token_hash: str) -> TaskRecord | None:
        rows = await self._fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE callback_token_hash = ?", (token_hash,)
        )
        return first_row(rows, task_from_row)

    async def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[TaskRecord]:
        where = ["1"]
        params: dict[str, Any] = {"limit": max(limit, 0)}
        page_filters(where, params, status=status, before=before)
        rows = await self._fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT :limit",
            params,
        )
        return [task_from_row(row) for row in rows]

    async def list_stale_tasks(self, *, quiet_since: datetime, limit: int) -> list[TaskRecord]:
        rows = await self._fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks "
            "WHERE status IN ('submitted', 'processing') "
            "AND coalesce(last_news_at, updated_at) < :quiet_since "
            "ORDER BY coalesce(last_news_at, updated_at), id LIMIT :limit",
            {"quiet_since": encode_time(quiet_since), "limit": max(limit, 0)},
        )
        return [task_from_row(row) for row in rows]

    async def delete_task(self, task_id: str) -> None:
        # videos, events, notifications, jobs: ON DELETE CASCADE
        await self._write(changes_one("DELETE FROM tasks WHERE id = ?", (task_id,)))

    async def apply(self, change: TaskChange) -> bool:
        write = self._change_writer(change)
        try:
            applied = await self._write(write)
        except Conflict as exc:
            ext = change.task.external_task_id
            raise Conflict(f"external_task_id {ext!r} already exists") from exc
        if not applied:
            return False
        change.task.version += 1
        if change.jobs:
            self._wakeup.jobs_added()
        return True

    def _change_writer(self, change: TaskChange) -> Callable[[sqlite3.Connection], bool]:
        """The statements of one task change, for a transaction that is open: the function
        answers False when someone else changed the task (nothing written)."""
        params = task_params(change.task)
        videos = [video_params(video) for video in change.videos]
        events = [event_params(event) for event in change.events]
        jobs = [job_row(job) for job in change.jobs]
        settled = [
            (encode_time(change.task.updated_at), change.task.id, kind) for kind in change.settles
        ]

        def write(raw: sqlite3.Connection) -> bool:
            if raw.execute(_UPDATE_TASK, params).rowcount != 1:
                return False
            raw.executemany(_UPSERT_VIDEO, videos)
            raw.executemany(_INSERT_EVENT, events)
            raw.executemany(INSERT_JOB, jobs)
            raw.executemany(_SETTLE_JOBS, settled)
            return True

        return write

    # -- videos and events -------------------------------------------------------------------

    async def list_videos(self, task_id: str) -> list[VideoRecord]:
        rows = await self._fetch(
            f"SELECT {VIDEO_COLUMNS} FROM videos WHERE task_id = ? ORDER BY video_index",
            (task_id,),
        )
        return [video_from_row(row) for row in rows]

    async def list_events(self, task_id: str) -> list[EventRecord]:
        rows = await self._fetch(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE task_id = ? ORDER BY seq",
            (task_id,),
        )
        return [event_from_row(row) for row in rows]

    async def get_event(self, event_id: str) -> EventRecord | None:
        rows = await self._fetch(f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,))
        return first_row(rows, event_from_row)

    # -- the callback inbox ------------------------------------------------------------------

    async def record_notification(self, notification: NotificationRecord, job: JobRecord) -> None:
        # Callbacks arrive in bursts: the group commit writes concurrent ones together, with
        # one fsync for all
        rows = notification_row(notification), job_row(job)

        def unit(conn: sqlite3.Connection) -> None:
            conn.execute(_INSERT_NOTIFICATION, rows[0])
            conn.execute(INSERT_JOB, rows[1])

        await self._write(unit)
        self._wakeup.jobs_added()

    async def get_notification(self, notification_id: str) -> NotificationRecord | None:
        rows = await self._fetch(
            f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = ?", (notification_id,)
        )
        return first_row(rows, notification_from_row)

    async def list_notifications(self, task_id: str) -> list[NotificationRecord]:
        rows = await self._fetch(
            f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE task_id = ? "
            "ORDER BY received_at, seq",
            (task_id,),
        )
        return [notification_from_row(row) for row in rows]

    async def set_download_progress(
        self, task_id: str, index: int, *, received: int, total: int | None
    ) -> None:
        sql = (
            "UPDATE videos SET bytes_received = ?, bytes_total = ? "
            "WHERE task_id = ? AND video_index = ?"
        )
        await self._write(changes_one(sql, (received, total, task_id, index)))

    async def set_notification_outcome(
        self, notification_id: str, outcome: str, job_end: JobEnd | None = None
    ) -> None:
        sql = "UPDATE notifications SET outcome = ? WHERE id = ?"  # gone with its task: no-op
        end = None if job_end is None else job_end_step(job_end)

        def unit(conn: sqlite3.Connection) -> None:
            conn.execute(sql, (outcome, notification_id))
            if end is not None:
                conn.execute(*end)

        await self._write(unit)
        if job_end is not None and job_end.due_at_once:
            self._wakeup.jobs_added()


def _read_data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])
