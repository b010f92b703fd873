"""Outgoing webhooks in the SQLite backend: endpoints, deliveries and their attempts.

A mixin of :class:`storage.sqlite.backend.SQLiteStorage`, on its connection and transactions. The
fan-out of new events (:meth:`SQLiteWebhooks._fan_out`) runs inside ``apply``'s transaction:
the endpoints that want an event are found in SQL (``json_each`` over their filter), and each
gets a delivery row and a ``delivery`` job in that same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, TypeVar, cast

import aiosqlite

from service.ids import new_id
from storage.base import DeliveryParts, JobEnd
from storage.records import (
    AttemptOutcome,
    DeliveryAttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    EndpointEventRecord,
    EventRecord,
    WebhookEndpointRecord,
    new_delivery,
)
from storage.sqlite.batch import Statements, Unit
from storage.sqlite.jobs import INSERT_JOB, job_end_step
from storage.sqlite.rows import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    ENDPOINT_COLUMNS,
    ENDPOINT_EVENT_COLUMNS,
    EVENT_COLUMNS,
    Params,
    attempt_from_row,
    attempt_params,
    delivery_from_row,
    delivery_params,
    encode_time,
    endpoint_event_from_row,
    endpoint_event_params,
    endpoint_from_row,
    endpoint_params,
    event_from_row,
    job_row,
    page_filters,
    placeholders,
)
from storage.sqlite.wakeup import SQLiteWakeup

# the enabled endpoints whose filter takes the event, if the event was inserted (an event whose
# key was already there is skipped by apply, and so is its fan-out)
_WANTING = (
    "SELECT w.id FROM webhook_endpoints AS w "
    "WHERE w.enabled = 1 AND EXISTS (SELECT 1 FROM events WHERE id = :event_id) "
    "AND EXISTS (SELECT 1 FROM json_each(w.events) WHERE value IN ('*', :type)) "
    "ORDER BY w.seq"
)
_INSERT_DELIVERY = (
    f"INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) "
    f"VALUES ({placeholders(DELIVERY_COLUMNS)}) ON CONFLICT (event_id, endpoint_id) DO NOTHING"
)
_INSERT_ENDPOINT_EVENT = (
    f"INSERT INTO webhook_endpoint_events ({ENDPOINT_EVENT_COLUMNS}) "
    f"VALUES ({placeholders(ENDPOINT_EVENT_COLUMNS)})"
)
_UPDATE_ENDPOINT = (
    "UPDATE webhook_endpoints SET "
    + ", ".join(
        f"{c} = :{c}"
        for c in (n.strip() for n in ENDPOINT_COLUMNS.split(","))
        if c not in ("id", "version")
    )
    + ", version = version + 1 WHERE id = :id AND version = :version"
)
_UPDATE_DELIVERY = (
    "UPDATE webhook_deliveries SET status = :status, attempts = :attempts, "
    "round_attempts = :round_attempts, last_status_code = :last_status_code, "
    "last_error = :last_error, next_attempt_at = :next_attempt_at, updated_at = :updated_at "
    "WHERE id = :id"
)
_INSERT_ATTEMPT = (
    f"INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) VALUES ({placeholders(ATTEMPT_COLUMNS)})"
)
# only while the attempt's delivery exists (it goes with its endpoint or its task): a write
# that needs no answer, and so can share an executemany with others
_OF_DELIVERY = " AND EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = :delivery_id)"
_INSERT_ATTEMPT_OF_DELIVERY = (
    f"INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) SELECT {placeholders(ATTEMPT_COLUMNS)} "
    "WHERE 1" + _OF_DELIVERY
)
# the endpoint's health after an attempt: failing since its first failure, or healthy again
_HEALTH = {
    True: "UPDATE webhook_endpoints SET version = version + 1, failing_since = :at "
    "WHERE id = :endpoint_id AND failing_since IS NULL",
    False: "UPDATE webhook_endpoints SET version = version + 1, failing_since = NULL "
    "WHERE id = :endpoint_id AND failing_since IS NOT NULL",
}
_R = TypeVar("_R")


def _names(columns: str) -> list[str]:
    return [name.strip() for name in columns.split(",")]


_DELIVERY_NAMES = _names(DELIVERY_COLUMNS)
_ENDPOINT_NAMES = _names(ENDPOINT_COLUMNS)
_EVENT_NAMES = _names(EVENT_COLUMNS)
_DELIVERY_PARTS = (
    "SELECT "
    + ", ".join(
        [f"d.{c}" for c in _DELIVERY_NAMES]
        + [f"w.{c}" for c in _ENDPOINT_NAMES]
        + [f"e.{c}" for c in _EVENT_NAMES]
    )
    + " FROM webhook_deliveries AS d "
    "LEFT JOIN webhook_endpoints AS w ON w.id = d.endpoint_id "
    "LEFT JOIN events AS e ON e.id = d.event_id WHERE d.id = ?"
)


def _part(row: sqlite3.Row, names: list[str], start: int) -> sqlite3.Row:
    """The columns of one table of a joined row, by name (the names repeat across tables)."""
    # the row decoders only look columns up by name: a dict does for them
    return cast(sqlite3.Row, dict(zip(names, row[start : start + len(names)], strict=True)))


async def _record_disabling(
    conn: aiosqlite.Connection,
    delivery: Params,
    attempt: Params,
    health: Params,
    outcome: AttemptOutcome,
    disable: EndpointEventRecord,
) -> bool:
    """An attempt whose outcome disables its endpoint; True when this one did."""
    async with conn.execute(_UPDATE_DELIVERY, delivery) as cursor:
        if cursor.rowcount != 1:
            return False  # deleted with its endpoint meanwhile: nothing left to record
    await conn.execute(_INSERT_ATTEMPT, attempt)
    await conn.execute(_HEALTH[outcome.endpoint_failing], health)
    async with conn.execute(
        "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = :reason, "
        "updated_at = :at, version = version + 1 WHERE id = :id AND enabled = 1",
        {"id": health["endpoint_id"], "reason": disable.message, "at": health["at"]},
    ) as cursor:
        if cursor.rowcount != 1:
            return False  # disabled already (by hand, or by another attempt)
    await conn.execute(_INSERT_ENDPOINT_EVENT, endpoint_event_params(disable))
    return True


class SQLiteWebhooks:
    _wakeup: SQLiteWakeup

    def _read(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError

    async def _point_read(self, sql: str, parameters: Any) -> Iterable[sqlite3.Row]:
        raise NotImplementedError

    async def _write(self, unit: Unit[_R]) -> _R:
        raise NotImplementedError

    @staticmethod
    def _fan_out(raw: sqlite3.Connection, events: Sequence[EventRecord]) -> bool:
        """Inside apply's transaction (a plain unit: on the connection it is given, whichever
        thread that is): deliveries and jobs for the events it inserted. Answers whether any
        job was added."""
        added = False
        for event in events:
            rows = raw.execute(_WANTING, {"event_id": event.id, "type": event.type}).fetchall()
            made = [
                new_delivery(event, row[0], delivery_id=new_id("dlv"), job_id=new_id("job"))
                for row in rows
            ]
            if made:
                raw.executemany(_INSERT_DELIVERY, [delivery_params(d) for d, _ in made])
                raw.executemany(INSERT_JOB, [job_row(j) for _, j in made])
                added = True
        return added

    # -- endpoints ---------------------------------------------------------------------------

    async def create_endpoint(self, endpoint: WebhookEndpointRecord) -> None:
        params = endpoint_params(endpoint)

        async def unit(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) "
                f"VALUES ({placeholders(ENDPOINT_COLUMNS)})",
                params,
            )

        await self._write(unit)

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpointRecord | None:
        async with self._read() as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?",
                    (endpoint_id,),
                )
            )
        return endpoint_from_row(rows[0]) if rows else None

    async def list_endpoints(self) -> list[WebhookEndpointRecord]:
        async with self._read() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY seq"
            )
        return [endpoint_from_row(row) for row in rows]

    async def update_endpoint(
        self, endpoint: WebhookEndpointRecord, events: Sequence[EndpointEventRecord] = ()
    ) -> bool:
        params = endpoint_params(endpoint)
        event_rows = [endpoint_event_params(event) for event in events]

        async def unit(conn: aiosqlite.Connection) -> bool:
            async with conn.execute(_UPDATE_ENDPOINT, params) as cursor:
                if cursor.rowcount != 1:
                    return False
            await conn.executemany(_INSERT_ENDPOINT_EVENT, event_rows)
            return True

        if not await self._write(unit):
            return False
        endpoint.version += 1
        return True

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        # deliveries, their attempts and the operator events go with it (ON DELETE CASCADE)
        async def unit(conn: aiosqlite.Connection) -> bool:
            async with conn.execute(
                "DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,)
            ) as cursor:
                return cursor.rowcount == 1

        return await self._write(unit)

    async def list_endpoint_events(self, endpoint_id: str) -> list[EndpointEventRecord]:
        async with self._read() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {ENDPOINT_EVENT_COLUMNS} FROM webhook_endpoint_events "
                "WHERE endpoint_id = ? ORDER BY seq",
                (endpoint_id,),
            )
        return [endpoint_event_from_row(row) for row in rows]

    # -- deliveries --------------------------------------------------------------------------

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        async with self._read() as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?",
                    (delivery_id,),
                )
            )
        return delivery_from_row(rows[0]) if rows else None

    async def get_delivery_parts(self, delivery_id: str) -> DeliveryParts | None:
        # one query, one snapshot; on the loop's thread when it can (see storage.sqlite.inline)
        row = next(iter(await self._point_read(_DELIVERY_PARTS, (delivery_id,))), None)
        if row is None:
            return None
        delivery = _part(row, _DELIVERY_NAMES, 0)
        endpoint = _part(row, _ENDPOINT_NAMES, len(_DELIVERY_NAMES))
        event = _part(row, _EVENT_NAMES, len(_DELIVERY_NAMES) + len(_ENDPOINT_NAMES))
        return DeliveryParts(
            delivery_from_row(delivery),
            None if endpoint["id"] is None else endpoint_from_row(endpoint),
            None if event["id"] is None else event_from_row(event),
        )

    async def list_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        task_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[DeliveryRecord]:
        where = ["1"]
        params: dict[str, Any] = {"limit": max(limit, 0)}
        for column, value in (("endpoint_id", endpoint_id), ("task_id", task_id)):
            if value is not None:
                where.append(f"{column} = :{column}")
                params[column] = value
        page_filters(where, params, status=status, before=before)
        async with self._read() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, id DESC LIMIT :limit",
                params,
            )
        return [delivery_from_row(row) for row in rows]

    async def list_delivery_attempts(
        self, delivery_ids: Collection[str]
    ) -> list[DeliveryAttemptRecord]:
        names = {f"d{i}": delivery_id for i, delivery_id in enumerate(delivery_ids)}
        if not names:
            return []
        async with self._read() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts "
                f"WHERE delivery_id IN ({', '.join(':' + name for name in names)}) ORDER BY seq",
                names,
            )
        return [attempt_from_row(row) for row in rows]

    async def record_delivery_attempt(
        self, outcome: AttemptOutcome, job_end: JobEnd | None = None
    ) -> bool:
        delivery = delivery_params(outcome.delivery)
        attempt = attempt_params(outcome.attempt)
        health = {
            "endpoint_id": outcome.delivery.endpoint_id,
            "delivery_id": outcome.delivery.id,
            "at": encode_time(outcome.attempt.attempted_at),
        }
        job_step = [] if job_end is None else [job_end_step(job_end)]
        disable = outcome.disable
        if disable is None:
            # The common case answers nothing (False): plain statements, which the group
            # commit runs as one executemany each for all the attempts of a batch.
            steps = [
                (_UPDATE_DELIVERY, [delivery]),
                (_INSERT_ATTEMPT_OF_DELIVERY, [attempt]),
                (_HEALTH[outcome.endpoint_failing] + _OF_DELIVERY, [health]),
                *((sql, [params]) for sql, params in job_step),  # ends even if it is gone
            ]
            await self._write(Statements(tuple(steps)))
            disabled = False
        else:

            async def unit(conn: aiosqlite.Connection) -> bool:
                disabled = await _record_disabling(
                    conn, delivery, attempt, health, outcome, disable
                )
                for sql, params in job_step:  # the job ends even if its delivery is gone
                    await conn.execute(sql, params)
                return disabled

            disabled = await self._write(unit)
        if job_end is not None and job_end.due_at_once:
            self._wakeup.jobs_added()
        return disabled

    async def retry_delivery(self, delivery_id: str, *, now: datetime) -> DeliveryRecord | None:
        stamp = encode_time(now)

        async def unit(conn: aiosqlite.Connection) -> bool:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT job_id FROM webhook_deliveries WHERE id = ? AND status != 'pending'",
                    (delivery_id,),
                )
            )
            if not rows:
                return False
            # as requeue_job: lease_token is kept, it must only ever grow
            async with conn.execute(
                "UPDATE jobs SET status = 'queued', run_at = :now, attempts = 0, "
                "lease_expires_at = NULL, updated_at = :now "
                "WHERE id = :job_id AND status IN ('succeeded', 'failed')",
                {"job_id": rows[0][0], "now": stamp},
            ) as cursor:
                if cursor.rowcount != 1:
                    return False  # its job is still running: the outcome is being recorded
            await conn.execute(
                "UPDATE webhook_deliveries SET status = 'pending', round_attempts = 0, "
                "next_attempt_at = :now, updated_at = :now WHERE id = :id",
                {"id": delivery_id, "now": stamp},
            )
            return True

        if not await self._write(unit):
            return None
        self._wakeup.jobs_added()
        return await self.get_delivery(delivery_id)
