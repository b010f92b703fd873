"""The admission queue in the SQLite backend (see :mod:`storage.admission`).

A mixin of :class:`storage.sqlite.backend.SQLiteStorage`. An admission is one unit of the group
commit, so it runs inside ``BEGIN IMMEDIATE``: the database's write lock, held by one process at a
time, is what keeps two processes from both filling the last slot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from service.errors import Conflict, StorageError
from storage.admission import (
    CANDIDATES,
    Occupancy,
    SlotLimits,
    choose,
)
from storage.records import TaskChange, TaskRecord, TaskStatus
from storage.spending import Spending
from storage.sqlite.rows import (
    MICROS,
    TASK_COLUMNS,
    encode_time,
    placeholders,
    task_from_row,
    task_params,
)
from storage.sqlite.thread import Function
from storage.sqlite.wakeup import SQLiteWakeup

_R = TypeVar("_R")

_IN_FLIGHT = (
    "SELECT model_name, count(*) FROM tasks "
    "WHERE status IN ('pending', 'submitted', 'processing') GROUP BY model_name"
)
_QUEUED = (
    f"SELECT {TASK_COLUMNS} FROM tasks WHERE status = 'queued' "
    "ORDER BY priority DESC, created_at, id LIMIT ?"
)
_INSERT_TASK = f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({placeholders(TASK_COLUMNS)})"
_AHEAD = (
    "SELECT count(*) FROM tasks WHERE status = 'queued' AND id != :id AND ("
    " priority > :priority OR (priority = :priority AND (created_at, id) < (:created_at, :id)))"
)


# What one budget window has spent (storage.spending's rule), in millionths: exact sums.
_SPENT = (
    "SELECT coalesce(sum(CASE"
    " WHEN :billed AND cost IS NOT NULL AND cost GLOB '[0-9]*'"
    " AND cost NOT GLOB '*[^0-9.]*' AND cost NOT GLOB '*.*.*'"
    " THEN CAST(round(CAST(cost AS REAL) * 1000000) AS INTEGER)"
    " WHEN status = 'failed' AND provider_task_id IS NULL THEN 0"
    " ELSE coalesce(estimated_micros, 0) END), 0)"
    " FROM tasks WHERE created_at >= :start AND created_at < :end"
)
# ...of the tasks whose metadata[key] is the scope: a string as it is, else its JSON text
_IN_SCOPE = (
    " AND CASE json_type(metadata, :path) WHEN 'text' THEN json_extract(metadata, :path)"
    " WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null'"
    " ELSE CAST(json_extract(metadata, :path) AS TEXT) END = :scope"
)


def _spent_query(window: Spending) -> tuple[str, dict[str, object]]:
    params: dict[str, object] = {
        "billed": window.billed_counts,
        "start": encode_time(window.start),
        "end": encode_time(window.end),
    }
    sql = _SPENT
    if window.metadata_key is not None:
        sql += _IN_SCOPE
        params.update(path=f'$."{window.metadata_key}"', scope=window.scope)
    return sql, params


def _spent(conn: sqlite3.Connection, window: Spending) -> Decimal:
    """Inside a write transaction (the writer's connection), or a read of the last commit."""
    micros = int(conn.execute(*_spent_query(window)).fetchone()[0])
    return Decimal(micros) / MICROS


class SQLiteAdmission:
    _wakeup: SQLiteWakeup

    async def _read(self, query: Function[_R]) -> _R:
        raise NotImplementedError

    async def _fetch(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def _write(self, unit: Function[_R]) -> _R:
        raise NotImplementedError

    def _change_writer(self, change: TaskChange) -> Callable[[sqlite3.Connection], bool]:
        raise NotImplementedError

    async def admit_queued(
        self,
        *,
        limits: SlotLimits,
        limit: int,
        plan: Callable[[TaskRecord], TaskChange],
    ) -> list[TaskRecord]:
        if limit <= 0:
            return []
        changes = await self._write(lambda raw: self._admit_here(raw, limits, limit, plan, None))
        return self._admitted(changes)

    async def submit_task(
        self,
        task: TaskRecord,
        *,
        limits: SlotLimits | None,
        plan: Callable[[TaskRecord], TaskChange],
        spending: Sequence[Spending] = (),
        guard: Callable[[list[Decimal]], None] | None = None,
    ) -> TaskRecord:
        params = task_params(task)

        def submit(raw: sqlite3.Connection) -> list[TaskChange]:
            if guard is not None:  # the write lock is held: no other submission adds to them
                guard([_spent(raw, window) for window in spending])
            raw.execute(_INSERT_TASK, params)
            if limits is None:
                return []
            return self._admit_here(raw, limits, 1, plan, task.id)

        try:
            changes = await self._write(submit)
        except Conflict as exc:
            raise Conflict(f"external_task_id {task.external_task_id!r} already exists") from exc
        admitted = self._admitted(changes)
        return admitted[0] if admitted else task

    def _admit_here(
        self,
        raw: sqlite3.Connection,
        limits: SlotLimits,
        limit: int,
        plan: Callable[[TaskRecord], TaskChange],
        alone: str | None,
    ) -> list[TaskChange]:
        """One admission, inside the open transaction (which holds the write lock)."""
        in_flight = {str(row[0]): int(row[1]) for row in raw.execute(_IN_FLIGHT)}
        queued = [task_from_row(row) for row in raw.execute(_QUEUED, (CANDIDATES,))]
        changes = []
        for task in choose(queued, limits, in_flight, limit=limit, alone=alone):
            change = plan(task)
            if change.task.status == TaskStatus.QUEUED:
                raise StorageError(f"an admission left task {task.id!r} queued")
            # the write lock is held since the read: the version is still current
            if self._change_writer(change)(raw):
                changes.append(change)
        return changes

    def _admitted(self, changes: list[TaskChange]) -> list[TaskRecord]:
        """The tasks of committed admission changes, as stored."""
        for change in changes:
            change.task.version += 1
        if changes:
            self._wakeup.jobs_added()
        return [change.task for change in changes]

    async def spending(self, windows: Sequence[Spending]) -> list[Decimal]:
        return await self._read(lambda conn: [_spent(conn, window) for window in windows])

    async def queue_position(self, task: TaskRecord) -> int:
        params = {
            "id": task.id,
            "priority": task.priority,
            "created_at": encode_time(task.created_at),
        }
        rows = await self._fetch(_AHEAD, params)
        return 1 + int(next(iter(rows))[0])

    async def occupancy(self) -> Occupancy:
        def read(conn: sqlite3.Connection) -> Occupancy:
            in_flight = {str(row[0]): int(row[1]) for row in conn.execute(_IN_FLIGHT)}
            queued = conn.execute("SELECT count(*) FROM tasks WHERE status = 'queued'")
            return Occupancy(int(queued.fetchone()[0]), in_flight)

        return await self._read(read)
