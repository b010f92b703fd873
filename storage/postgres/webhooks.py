"""Outgoing webhooks in the PostgreSQL backend: endpoints, deliveries and their attempts.

Part of :class:`storage.postgres.backend.PostgresStorage`, on its pool and transactions. The fan-out
of new events (:meth:`PostgresWebhooks._fan_out`) runs inside ``apply``'s transaction: the endpoints
that want an event are found in SQL (jsonb ``?`` over their filter), and each gets a delivery row
and a ``delivery`` job (which wakes the listening workers) in that transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from service.ids import new_id
from storage.base import JobEnd
from storage.postgres import webhooks_sql as sql
from storage.postgres.jobs import write_job_end
from storage.postgres.pool import PostgresConnection
from storage.postgres.rows import (
    attempt_args,
    attempt_from_row,
    delivery_args,
    delivery_from_row,
    endpoint_args,
    endpoint_event_args,
    endpoint_event_from_row,
    endpoint_from_row,
    utc,
)
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


class PostgresWebhooks(PostgresConnection):
    async def _fan_out(self, conn: Any, events: Sequence[EventRecord]) -> None:
        """Inside apply's transaction: deliveries and jobs for the events it inserted."""
        for event in events:
            rows = await conn.fetch(sql.WANTING, event.id, event.type)
            made = [
                new_delivery(event, row["id"], delivery_id=new_id("dlv"), job_id=new_id("job"))
                for row in rows
            ]
            if made:
                await conn.executemany(sql.INSERT_DELIVERY, [delivery_args(d) for d, _ in made])
                await self._insert_jobs(conn, [job for _, job in made])

    # -- endpoints ---------------------------------------------------------------------------

    async def create_endpoint(self, endpoint: WebhookEndpointRecord) -> None:
        args = endpoint_args(endpoint)

        async def insert(conn: Any) -> None:
            await conn.execute(sql.INSERT_ENDPOINT, *args)

        async def landed(conn: Any) -> bool:
            found = await conn.fetchval(
                "SELECT 1 FROM webhook_endpoints WHERE id = $1", endpoint.id
            )
            return bool(found)

        await self._insert_new(insert, landed=landed)

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpointRecord | None:
        row = await self._read(
            lambda conn: conn.fetchrow(
                f"SELECT {sql.ENDPOINTS} FROM webhook_endpoints WHERE id = $1", endpoint_id
            )
        )
        return None if row is None else endpoint_from_row(row)

    async def list_endpoints(self) -> list[WebhookEndpointRecord]:
        rows = await self._read(
            lambda conn: conn.fetch(f"SELECT {sql.ENDPOINTS} FROM webhook_endpoints ORDER BY seq")
        )
        return [endpoint_from_row(row) for row in rows]

    async def update_endpoint(
        self, endpoint: WebhookEndpointRecord, events: Sequence[EndpointEventRecord] = ()
    ) -> bool:
        args = endpoint_args(endpoint)

        async def write(conn: Any) -> bool:
            if await conn.execute(sql.UPDATE_ENDPOINT, *args) != "UPDATE 1":
                return False  # a compare-and-set on version: not repeatable
            if events:
                await conn.executemany(
                    sql.INSERT_ENDPOINT_EVENT, [endpoint_event_args(e) for e in events]
                )
            return True

        if not await self._transact(write):
            return False
        endpoint.version += 1
        return True

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        # deliveries, their attempts and the operator events go with it (ON DELETE CASCADE);
        # not repeatable: a second run would answer "there was none"
        status = await self._execute(
            lambda conn: conn.execute("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id),
            repeatable=False,
        )
        return bool(status == "DELETE 1")

    async def list_endpoint_events(self, endpoint_id: str) -> list[EndpointEventRecord]:
        rows = await self._read(
            lambda conn: conn.fetch(
                f"SELECT {sql.ENDPOINT_EVENTS} FROM webhook_endpoint_events "
                "WHERE endpoint_id = $1 ORDER BY seq",
                endpoint_id,
            )
        )
        return [endpoint_event_from_row(row) for row in rows]

    # -- deliveries --------------------------------------------------------------------------

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        row = await self._read(
            lambda conn: conn.fetchrow(
                f"SELECT {sql.DELIVERIES} FROM webhook_deliveries WHERE id = $1", delivery_id
            )
        )
        return None if row is None else delivery_from_row(row)

    async def list_deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        task_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[DeliveryRecord]:
        before_at, before_id = (utc(before[0]), before[1]) if before is not None else (None, None)
        rows = await self._read(
            lambda conn: conn.fetch(
                f"SELECT {sql.DELIVERIES} FROM webhook_deliveries "
                "WHERE ($1::text IS NULL OR endpoint_id = $1) "
                "AND ($2::text IS NULL OR task_id = $2) "
                "AND ($3::text IS NULL OR status = $3) "
                "AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::text)) "
                "ORDER BY created_at DESC, id DESC LIMIT $6",
                endpoint_id,
                task_id,
                None if status is None else str(status),
                before_at,
                before_id,
                max(limit, 0),
            )
        )
        return [delivery_from_row(row) for row in rows]

    async def list_delivery_attempts(
        self, delivery_ids: Collection[str]
    ) -> list[DeliveryAttemptRecord]:
        if not delivery_ids:
            return []
        ids = list(delivery_ids)
        rows = await self._read(
            lambda conn: conn.fetch(
                f"SELECT {sql.ATTEMPTS} FROM webhook_attempts "
                "WHERE delivery_id = ANY($1::text[]) ORDER BY seq",
                ids,
            )
        )
        return [attempt_from_row(row) for row in rows]

    async def record_delivery_attempt(
        self, outcome: AttemptOutcome, job_end: JobEnd | None = None
    ) -> bool:

        async def write(conn: Any) -> bool:
            disabled = await self._record_attempt(conn, outcome)
            # the job ends even if its delivery is gone meanwhile
            if job_end is not None and await write_job_end(conn, job_end) and job_end.due_at_once:
                await self._notify(conn)
            return disabled

        # not repeatable: a second run would record the attempt twice
        return await self._transact(write)

    async def _record_attempt(self, conn: Any, outcome: AttemptOutcome) -> bool:
        delivery = delivery_args(outcome.delivery)
        # id, then status, attempts, round_attempts, last_status_code, last_error,
        # next_attempt_at and updated_at (see sql.UPDATE_DELIVERY)
        changing = (delivery[0], *delivery[8:14], delivery[7])
        at = utc(outcome.attempt.attempted_at)
        endpoint_id = outcome.delivery.endpoint_id
        if await conn.execute(sql.UPDATE_DELIVERY, *changing) != "UPDATE 1":
            return False  # deleted with its endpoint meanwhile: nothing left to record
        await conn.execute(sql.INSERT_ATTEMPT, *attempt_args(outcome.attempt))
        if outcome.endpoint_failing:
            await conn.execute(
                "UPDATE webhook_endpoints SET failing_since = $2, version = version + 1 "
                "WHERE id = $1 AND failing_since IS NULL",
                endpoint_id,
                at,
            )
        else:
            await conn.execute(
                "UPDATE webhook_endpoints SET failing_since = NULL, version = version + 1 "
                "WHERE id = $1 AND failing_since IS NOT NULL",
                endpoint_id,
            )
        disable = outcome.disable
        if disable is None:
            return False
        status = await conn.execute(
            "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, "
            "updated_at = $3, version = version + 1 WHERE id = $1 AND enabled",
            endpoint_id,
            disable.message,
            at,
        )
        if status != "UPDATE 1":
            return False  # disabled already (by hand, or by another attempt)
        await conn.execute(sql.INSERT_ENDPOINT_EVENT, *endpoint_event_args(disable))
        return True

    async def retry_delivery(self, delivery_id: str, *, now: datetime) -> DeliveryRecord | None:
        now = utc(now)

        async def write(conn: Any) -> Any:
            job_id = await conn.fetchval(
                "SELECT job_id FROM webhook_deliveries WHERE id = $1 AND status <> 'pending' "
                "FOR UPDATE",
                delivery_id,
            )
            if job_id is None:
                return None
            # as requeue_job: lease_token is kept, it must only ever grow
            status = await conn.execute(
                "UPDATE jobs SET status = 'queued', run_at = $2, attempts = 0, "
                "lease_expires_at = NULL, updated_at = $2 "
                "WHERE id = $1 AND status IN ('succeeded', 'failed')",
                job_id,
                now,
            )
            if status != "UPDATE 1":
                return None  # its job is still running: the outcome is being recorded
            row = await conn.fetchrow(
                "UPDATE webhook_deliveries SET status = 'pending', round_attempts = 0, "
                f"next_attempt_at = $2, updated_at = $2 WHERE id = $1 RETURNING {sql.DELIVERIES}",
                delivery_id,
                now,
            )
            await self._notify(conn)
            return row

        # not repeatable: a second run would find the delivery pending and answer None
        row = await self._transact(write)
        return None if row is None else delivery_from_row(row)
