"""The admission queue in the PostgreSQL backend (see :mod:`storage.admission`).

A mixin of :class:`storage.postgres.backend.PostgresStorage`. Every admission takes one
transaction-level advisory lock first (per schema): replicas admit one after the other, each
counting what the previous one admitted, so no two fill the last slot; nothing else waits for that
lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from service.errors import Conflict, StorageError
from storage.admission import (
    CANDIDATES,
    Occupancy,
    SlotLimits,
    choose,
)
from storage.postgres import sql as sql
from storage.postgres.pool import PostgresConnection
from storage.postgres.rows import task_args, task_from_row, utc
from storage.records import TaskChange, TaskRecord, TaskStatus
from storage.spending import Spending

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('omnihook.admission'), hashtext(current_schema()))"
_IN_FLIGHT = (
    "SELECT model_name, count(*) AS n FROM tasks "
    "WHERE status IN ('pending', 'submitted', 'processing') GROUP BY model_name"
)
_QUEUED = (
    f"SELECT {sql.TASKS} FROM tasks WHERE status = 'queued' "
    "ORDER BY priority DESC, created_at, id LIMIT $1"
)
_AHEAD = (
    "SELECT count(*) FROM tasks WHERE status = 'queued' AND id <> $1 AND ("
    " priority > $2 OR (priority = $2 AND (created_at, id) < ($3, $1)))"
)


# What one budget window has spent (storage.spending's rule).
_SPENT = (
    "SELECT coalesce(sum(CASE"
    " WHEN $1 AND cost ~ '^[0-9]+(\\.[0-9]+)?$' THEN cost::numeric"
    " WHEN status = 'failed' AND provider_task_id IS NULL THEN 0"
    " ELSE coalesce(estimated_amount, 0) END), 0)"
    " FROM tasks WHERE created_at >= $2 AND created_at < $3"
)
# ...of the tasks whose metadata[key] is the scope: a string as it is, else its JSON text
_IN_SCOPE = (
    " AND CASE jsonb_typeof(metadata -> $4::text) WHEN 'string' THEN metadata ->> $4::text"
    " ELSE (metadata -> $4::text)::text END = $5"
)


async def _spent_here(conn: Any, window: Spending) -> Decimal:
    args: list[object] = [window.billed_counts, utc(window.start), utc(window.end)]
    query = _SPENT
    if window.metadata_key is not None:
        query += _IN_SCOPE
        args += [window.metadata_key, window.scope]
    return Decimal(await conn.fetchval(query, *args))


def _admitted(changes: list[TaskChange]) -> list[TaskRecord]:
    for change in changes:
        change.task.version += 1
    return [change.task for change in changes]


class PostgresAdmission(PostgresConnection):
    def _change_writer(self, change: TaskChange) -> Callable[[Any], Awaitable[bool]]:
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
        # repeatable: a run after a commit lost on its way counts what that one admitted
        changes = await self._transact(
            lambda conn: self._admit_here(conn, limits, limit, plan, None), repeatable=True
        )
        return _admitted(changes)

    async def submit_task(
        self,
        task: TaskRecord,
        *,
        limits: SlotLimits | None,
        plan: Callable[[TaskRecord], TaskChange],
        spending: Sequence[Spending] = (),
        guard: Callable[[list[Decimal]], None] | None = None,
    ) -> TaskRecord:
        args = task_args(task)
        changes: list[TaskChange] = []

        async def insert(conn: Any) -> None:
            if guard is not None:
                # the admission lock (taken again by the admission below: a no-op) makes
                # submissions add up and insert one after the other
                await conn.execute(_LOCK)
                guard([await _spent_here(conn, window) for window in spending])
            await conn.execute(sql.INSERT_TASK, *args)
            changes.clear()  # a run again after a lost connection plans again
            if limits is not None:
                changes.extend(await self._admit_here(conn, limits, 1, plan, task.id))

        async def landed(conn: Any) -> bool:
            return bool(await conn.fetchval("SELECT 1 FROM tasks WHERE id = $1", task.id))

        try:
            await self._insert_new(insert, landed=landed)
        except Conflict as exc:
            raise Conflict(f"external_task_id {task.external_task_id!r} already exists") from exc
        admitted = _admitted(changes)
        if admitted:
            return admitted[0]
        # A commit lost on its way and found landed: read what it wrote.
        return await self.get_task(task.id) or task

    async def _admit_here(
        self,
        conn: Any,
        limits: SlotLimits,
        limit: int,
        plan: Callable[[TaskRecord], TaskChange],
        alone: str | None,
    ) -> list[TaskChange]:
        """One admission, inside the open transaction: the admission lock first."""
        await conn.execute(_LOCK)
        in_flight = {str(r["model_name"]): int(r["n"]) for r in await conn.fetch(_IN_FLIGHT)}
        queued = [task_from_row(row) for row in await conn.fetch(_QUEUED, CANDIDATES)]
        changes = []
        for task in choose(queued, limits, in_flight, limit=limit, alone=alone):
            change = plan(task)
            if change.task.status == TaskStatus.QUEUED:
                raise StorageError(f"an admission left task {task.id!r} queued")
            # changed since it was read (READ COMMITTED): nothing of it was written; it is
            # left to the next admission
            if await self._change_writer(change)(conn):
                changes.append(change)
        return changes

    async def spending(self, windows: Sequence[Spending]) -> list[Decimal]:
        async def read(conn: Any) -> list[Decimal]:
            return [await _spent_here(conn, window) for window in windows]

        return await self._read(read)

    async def queue_position(self, task: TaskRecord) -> int:
        ahead = await self._read(
            lambda conn: conn.fetchval(_AHEAD, task.id, task.priority, utc(task.created_at))
        )
        return 1 + int(ahead)

    async def occupancy(self) -> Occupancy:
        async def read(conn: Any) -> Occupancy:
            flying = await conn.fetch(_IN_FLIGHT)
            queued = await conn.fetchval("SELECT count(*) FROM tasks WHERE status = 'queued'")
            return Occupancy(int(queued), {str(r["model_name"]): int(r["n"]) for r in flying})

        return await self._read(read)
