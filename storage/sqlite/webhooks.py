"""Outgoing webhooks in the SQLite backend: endpoints, deliveries and their attempts.

A mixin of :class:`storage.sqlite.backend.SQLiteStorage`, on its writer and reader.
Deliveries are made by the dispatch of their event (:mod:`storage.sqlite.dispatch`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from storage.base import DeliveryParts, JobEnd
from storage.records import (
    AttemptOutcome,
    DeliveryAttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    EndpointEventRecord,
    EventDispatch,
    WebhookEndpointRecord,
)
from storage.sqlite.dispatch import dispatch_writer
from storage.sqlite.jobs import changes_one, job_end_step
from storage.sqlite.rows import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    ENDPOINT_COLUMNS,
    ENDPOINT_EVENT_COLUMNS,
    EVENT_COLUMNS,
    Params,
    attempt_from_row,
    attempt_params,
    compare_and_set,
    delivery_from_row,
    delivery_params,
    encode_time,
    endpoint_event_from_row,
    endpoint_event_params,
    endpoint_from_row,
    endpoint_params,
    event_from_row,
    page_filters,
    placeholders,
)
from storage.sqlite.thread import Function
from storage.sqlite.wakeup import SQLiteWakeup

_INSERT_ENDPOINT_EVENT = (
    f"INSERT INTO webhook_endpoint_events ({ENDPOINT_EVENT_COLUMNS}) "
    f"VALUES ({placeholders(ENDPOINT_EVENT_COLUMNS)})"
)
_UPDATE_ENDPOINT = compare_and_set("webhook_endpoints", ENDPOINT_COLUMNS)
_UPDATE_DELIVERY = (
    "UPDATE webhook_deliveries SET status = :status, attempts = :attempts, "
    "round_attempts = :round_attempts, last_status_code = :last_status_code, "
    "last_error = :last_error, next_attempt_at = :next_attempt_at, updated_at = :updated_at "
    "WHERE id = :id"
)
_INSERT_ATTEMPT = (
    f"INSERT INTO webhook_attempts ({ATTEMPT_COLUMNS}) VALUES ({placeholders(ATTEMPT_COLUMNS)})"
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


def _record_attempt(
    conn: sqlite3.Connection,
    delivery: Params,
    attempt: Params,
    health: Params,
    outcome: AttemptOutcome,
) -> bool:
    """An attempt, the delivery's state and the endpoint's health; True when the outcome
    disabled the endpoint (this attempt did, not another one or an operator before it)."""
    if conn.execute(_UPDATE_DELIVERY, delivery).rowcount != 1:
        return False  # deleted with its endpoint meanwhile: nothing left to record
    conn.execute(_INSERT_ATTEMPT, attempt)
    conn.execute(_HEALTH[outcome.endpoint_failing], health)
    disable = outcome.disable
    if disable is None:
        return False
    disabled = conn.execute(
        "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = :reason, "
        "updated_at = :at, version = version + 1 WHERE id = :id AND enabled = 1",
        {"id": health["endpoint_id"], "reason": disable.message, "at": health["at"]},
    )
    if disabled.rowcount != 1:
        return False  # disabled already (by hand, or by another attempt)
    conn.execute(_INSERT_ENDPOINT_EVENT, endpoint_event_params(disable))
    return True


class SQLiteWebhooks:
    _wakeup: SQLiteWakeup

    async def _fetch(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def _write(self, unit: Function[_R]) -> _R:
        raise NotImplementedError

    async def record_dispatch(self, dispatch: EventDispatch, job_end: JobEnd | None = None) -> None:
        added = await self._write(dispatch_writer(dispatch, job_end))
        if added or (job_end is not None and job_end.due_at_once):
            self._wakeup.jobs_added()

    # -- endpoints ---------------------------------------------------------------------------

    async def create_endpoint(self, endpoint: WebhookEndpointRecord) -> None:
        params = endpoint_params(endpoint)

        def unit(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) "
                f"VALUES ({placeholders(ENDPOINT_COLUMNS)})",
                params,
            )

        await self._write(unit)

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpointRecord | None:
        rows = await self._fetch(
            f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?", (endpoint_id,)
        )
        return endpoint_from_row(rows[0]) if rows else None

    async def list_endpoints(self) -> list[WebhookEndpointRecord]:
        rows = await self._fetch(f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY seq")
        return [endpoint_from_row(row) for row in rows]

    async def update_endpoint(
        self, endpoint: WebhookEndpointRecord, events: Sequence[EndpointEventRecord] = ()
    ) -> bool:
        params = endpoint_params(endpoint)
        event_rows = [endpoint_event_params(event) for event in events]

        def unit(conn: sqlite3.Connection) -> bool:
            if conn.execute(_UPDATE_ENDPOINT, params).rowcount != 1:
                return False
            conn.executemany(_INSERT_ENDPOINT_EVENT, event_rows)
            return True

        if not await self._write(unit):
            return False
        endpoint.version += 1
        return True

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        # deliveries, their attempts and the operator events go with it (ON DELETE CASCADE)
        return await self._write(
            changes_one("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,))
        )

    async def list_endpoint_events(self, endpoint_id: str) -> list[EndpointEventRecord]:
        rows = await self._fetch(
            f"SELECT {ENDPOINT_EVENT_COLUMNS} FROM webhook_endpoint_events "
            "WHERE endpoint_id = ? ORDER BY seq",
            (endpoint_id,),
        )
        return [endpoint_event_from_row(row) for row in rows]

    # -- deliveries --------------------------------------------------------------------------

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        rows = await self._fetch(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?", (delivery_id,)
        )
        return delivery_from_row(rows[0]) if rows else None

    async def get_delivery_parts(self, delivery_id: str) -> DeliveryParts | None:
        # one query, one snapshot
        row = next(iter(await self._fetch(_DELIVERY_PARTS, (delivery_id,))), None)
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
        rows = await self._fetch(
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
        rows = await self._fetch(
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
        end = None if job_end is None else job_end_step(job_end)

        def unit(conn: sqlite3.Connection) -> bool:
            disabled = _record_attempt(conn, delivery, attempt, health, outcome)
            if end is not None:  # the job ends even if its delivery is gone
                conn.execute(*end)
            return disabled

        disabled = await self._write(unit)
        if job_end is not None and job_end.due_at_once:
            self._wakeup.jobs_added()
        return disabled

    async def retry_delivery(self, delivery_id: str, *, now: datetime) -> DeliveryRecord | None:
        stamp = encode_time(now)

        def unit(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT job_id FROM webhook_deliveries WHERE id = ? AND status != 'pending'",
                (delivery_id,),
            ).fetchone()
            if row is None:
                return False
            # as requeue_job: lease_token is kept, it must only ever grow
            requeued = conn.execute(
                "UPDATE jobs SET status = 'queued', run_at = :now, attempts = 0, "
                "lease_expires_at = NULL, updated_at = :now "
                "WHERE id = :job_id AND status IN ('succeeded', 'failed')",
                {"job_id": row[0], "now": stamp},
            )
            if requeued.rowcount != 1:
                return False  # its job is still running: the outcome is being recorded
            conn.execute(
                "UPDATE webhook_deliveries SET status = 'pending', round_attempts = 0, "
                "next_attempt_at = :now, updated_at = :now WHERE id = :id",
                {"id": delivery_id, "now": stamp},
            )
            return True

        if not await self._write(unit):
            return None
        self._wakeup.jobs_added()
        return await self.get_delivery(delivery_id)
