"""The SQLite backend (the embedded default), on aiosqlite.

One connection per instance, guarded by an ``asyncio.Lock``: statements of concurrent coroutines
would otherwise land inside each other's transactions. Every write is a unit (a coroutine function
of the connection) handed to :meth:`SQLiteStorage._write`, the group commit of
:mod:`storage.sqlite.batch`: concurrent writes share one ``BEGIN IMMEDIATE`` transaction and one
``fsync``, each in a savepoint of its own. ``BEGIN IMMEDIATE`` takes the database's write lock up
front: another process (a second worker, ``serve``) waits for it (busy timeout) instead of
failing halfway, and a job selected as due is still due when it is marked leased. Row mapping
lives in :mod:`storage.sqlite.rows`, opening and migrations in :mod:`storage.sqlite.schema`.
Errors are translated by :mod:`storage.sqlite.errors`; a file deleted or replaced under the
storage is found by :mod:`storage.sqlite.file`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

import aiosqlite

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
from storage.sqlite import errors as sqlite_errors
from storage.sqlite import schema as sqlite_schema
from storage.sqlite.admission import SQLiteAdmission
from storage.sqlite.batch import GroupCommit, RawUnit, Statements, Unit
from storage.sqlite.file import DatabaseFile
from storage.sqlite.inline import InlineReader
from storage.sqlite.jobs import INSERT_JOB, SQLiteJobs, first_row, job_end_step
from storage.sqlite.rows import (
    EVENT_COLUMNS,
    NOTIFICATION_COLUMNS,
    TASK_COLUMNS,
    VIDEO_COLUMNS,
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
from storage.sqlite.wakeup import SQLiteWakeup
from storage.sqlite.webhooks import SQLiteWebhooks

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
_UPDATE_TASK = (
    "UPDATE tasks SET "
    + ", ".join(
        f"{c} = :{c}"
        for c in (n.strip() for n in TASK_COLUMNS.split(","))
        if c not in ("id", "version")
    )
    + ", version = version + 1 WHERE id = :id AND version = :version"
)
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
        self._conn: aiosqlite.Connection | None = None
        # Reads use a connection of their own: in WAL mode a reader sees the last commit and
        # never waits for the writer, so reads do not break up the writes' group commits.
        self._reader: aiosqlite.Connection | None = None
        self._inline = InlineReader(path)  # point reads on the loop's thread (when it can)
        self._lock = asyncio.Lock()
        self._wakeup = SQLiteWakeup(self._data_version)
        self._file = DatabaseFile(path)
        self._batches = GroupCommit(
            self._lock,
            self._require_open,
            busy_timeout=busy_timeout,
            guard=self._file.check_now_and_then,  # a write into a deleted file would be lost
        )

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        async with self._lock:
            if self._conn is not None:
                return
            opening = f"opening SQLite database {self.path!r}"
            try:
                conn = await sqlite_schema.connect(self.path, busy_timeout=self._busy_timeout)
            except (OSError, sqlite3.Error) as exc:
                raise sqlite_errors.translate(exc, opening) from exc
            try:
                self._file.remember()
                await sqlite_schema.migrate(conn)
                self._wakeup.start(await _read_data_version(conn))
            except BaseException as exc:
                await conn.close()
                if isinstance(exc, sqlite3.Error):
                    raise sqlite_errors.translate(exc, f"migrating {self.path!r}") from exc
                raise
            if self.path != ":memory:":  # a second connection to :memory: is another database
                try:
                    self._reader = await sqlite_schema.connect(
                        self.path, busy_timeout=self._busy_timeout
                    )
                except (OSError, sqlite3.Error) as exc:
                    await conn.close()
                    raise sqlite_errors.translate(exc, opening) from exc
            self._conn = conn
            self._inline.start()

    async def close(self) -> None:
        # writes already queued (callbacks about to be acknowledged...) land before it goes
        await self._batches.drain()
        async with self._lock:
            conn, self._conn = self._conn, None
            reader, self._reader = self._reader, None
            self._inline.close()
            self._file.forget()
            if reader is not None:
                with contextlib.suppress(sqlite3.Error):
                    await reader.close()
            if conn is not None:
                try:
                    await conn.close()
                except sqlite3.Error as exc:
                    raise StorageError(f"closing {self.path!r} failed: {exc}") from exc

    async def ping(self) -> None:
        """The file is still the one opened, it can be read, and a write commits."""
        self._require_open()
        self._file.check()
        async with self._read() as conn:
            await conn.execute_fetchall("SELECT 1")
        await self._write(Statements(((_HEALTH_PROBE, [()]),)))

    async def wait_for_jobs(self, timeout: float) -> None:  # noqa: ASYNC109
        await self._wakeup.wait(timeout)

    async def _data_version(self) -> int:
        # on the writer's connection: its data_version moves with other processes' commits only
        async with self._lock:
            try:
                return await _read_data_version(self._require_open())
            except (sqlite3.Error, ValueError) as exc:
                raise sqlite_errors.translate(exc, "SQLite read") from exc

    # -- transactions ------------------------------------------------------------------------

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        """A connection for autocommit reads (each statement sees the last committed snapshot;
        never a batch's uncommitted writes)."""
        if self._reader is None:  # :memory:, or not open: the one connection, under the lock
            async with self._lock:
                conn = self._require_open()
                try:
                    yield conn
                except (sqlite3.Error, ValueError) as exc:  # aiosqlite: ValueError once closed
                    raise sqlite_errors.translate(exc, "SQLite read") from exc
            return
        try:
            yield self._reader
        except (sqlite3.Error, ValueError) as exc:
            raise sqlite_errors.translate(exc, "SQLite read") from exc

    async def _point_read(self, sql: str, parameters: Any) -> Iterable[sqlite3.Row]:
        """A small indexed read (a task, its videos, a notification: what every inbox job and
        every new callback token reads): on the event loop's thread when it can
        (:mod:`storage.sqlite.inline`), else through the reader's thread."""
        rows = self._inline.fetch(sql, parameters)
        if rows is None:
            async with self._read() as conn:
                return await conn.execute_fetchall(sql, parameters)
        return rows

    async def _write(self, unit: Unit[_R]) -> _R:
        """Run ``unit`` as one all-or-nothing write; answers its result once it is committed.
        Not alone: with the writes queued meanwhile, in one transaction (group commit). The
        unit may run twice (see :mod:`storage.sqlite.batch`): it only uses the connection, and
        never this storage's methods (their lock is held while it runs)."""
        return await self._batches.run(unit)

    def _require_open(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StorageError(f"{self!r} is not open")
        return self._conn

    # -- tasks -------------------------------------------------------------------------------

    async def create_task(self, task: TaskRecord, jobs: Sequence[JobRecord] = ()) -> None:
        params = task_params(task)
        job_rows = [job_row(job) for job in jobs]

        async def unit(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({placeholders(TASK_COLUMNS)})", params
            )
            await conn.executemany(INSERT_JOB, job_rows)

        try:
            await self._write(unit)
        except Conflict as exc:
            raise Conflict(f"external_task_id {task.external_task_id!r} already exists") from exc
        if job_rows:
            self._wakeup.jobs_added()

    async def get_task(self, id_or_external_id: str) -> TaskRecord | None:
        rows = await self._point_read(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = :key OR external_task_id = :key "
            "ORDER BY id = :key DESC LIMIT 1",
            {"key": id_or_external_id},
        )
        return first_row(rows, task_from_row)

    async def get_task_by_token_hash(self, token_hash: str) -> TaskRecord | None:
        rows = await self._point_read(
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
        async with self._read() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, id DESC LIMIT :limit",
                params,
            )
        return [task_from_row(row) for row in rows]

    async def list_stale_tasks(self, *, quiet_since: datetime, limit: int) -> list[TaskRecord]:
        async with self._read() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {TASK_COLUMNS} FROM tasks "
                "WHERE status IN ('submitted', 'processing') "
                "AND coalesce(last_news_at, updated_at) < :quiet_since "
                "ORDER BY coalesce(last_news_at, updated_at), id LIMIT :limit",
                {"quiet_since": encode_time(quiet_since), "limit": max(limit, 0)},
            )
        return [task_from_row(row) for row in rows]

    async def delete_task(self, task_id: str) -> None:
        # videos, events, notifications, jobs: ON DELETE CASCADE
        await self._write(Statements((("DELETE FROM tasks WHERE id = ?", [(task_id,)]),)))

    async def apply(self, change: TaskChange) -> bool:
        write = self._change_writer(change)
        try:
            # A plain unit: with the other plain writes of its batch it runs on the event
            # loop's thread, one trip to SQLite's thread for the COMMIT (storage.sqlite.batch)
            applied = await self._write(RawUnit(write))
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
        rows = await self._point_read(
            f"SELECT {VIDEO_COLUMNS} FROM videos WHERE task_id = ? ORDER BY video_index",
            (task_id,),
        )
        return [video_from_row(row) for row in rows]

    async def list_events(self, task_id: str) -> list[EventRecord]:
        async with self._read() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE task_id = ? ORDER BY seq",
                (task_id,),
            )
        return [event_from_row(row) for row in rows]

    async def get_event(self, event_id: str) -> EventRecord | None:
        async with self._read() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)
            )
        return first_row(rows, event_from_row)

    # -- the callback inbox ------------------------------------------------------------------

    async def record_notification(self, notification: NotificationRecord, job: JobRecord) -> None:
        # Callbacks arrive in bursts: the group commit writes concurrent ones together, with
        # two statements and one fsync for all
        await self._write(
            Statements(
                (
                    (_INSERT_NOTIFICATION, [notification_row(notification)]),
                    (INSERT_JOB, [job_row(job)]),
                )
            )
        )
        self._wakeup.jobs_added()

    async def get_notification(self, notification_id: str) -> NotificationRecord | None:
        rows = await self._point_read(
            f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = ?", (notification_id,)
        )
        return first_row(rows, notification_from_row)

    async def list_notifications(self, task_id: str) -> list[NotificationRecord]:
        async with self._read() as conn:
            rows = await conn.execute_fetchall(
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
        await self._write(Statements(((sql, [(received, total, task_id, index)]),)))

    async def set_notification_outcome(
        self, notification_id: str, outcome: str, job_end: JobEnd | None = None
    ) -> None:
        sql = "UPDATE notifications SET outcome = ? WHERE id = ?"  # gone with its task: no-op
        steps: list[tuple[str, Sequence[Any]]] = [(sql, [(outcome, notification_id)])]
        if job_end is not None:
            end_sql, end_params = job_end_step(job_end)
            steps.append((end_sql, [end_params]))
        # plain statements: the group commit writes a burst of them as one executemany each
        await self._write(Statements(tuple(steps)))
        if job_end is not None and job_end.due_at_once:
            self._wakeup.jobs_added()


async def _read_data_version(conn: aiosqlite.Connection) -> int:
    rows = await conn.execute_fetchall("PRAGMA data_version")
    return int(next(iter(rows))[0])
