"""The durable job queue of the PostgreSQL backend: many workers, in many processes, at once.

Jobs are leased with ``FOR UPDATE SKIP LOCKED`` (concurrent workers take different jobs without
waiting for one another) and every result is fenced by the lease's ``lease_token``, so a worker
whose lease expired and was taken over can neither renew it nor record an outcome.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from storage.base import JobEnd
from storage.postgres import sql as sql
from storage.postgres.pool import PostgresConnection
from storage.postgres.rows import job_args, job_from_row, utc
from storage.records import JobRecord, JobStatus


async def write_job_end(conn: Any, end: JobEnd) -> bool:
    """In the caller's transaction: write ``end`` if its lease token still holds the job
    (the caller wakes the workers when ``end.due_at_once``)."""
    now = utc(end.now)
    values: tuple[Any, ...]
    if end.status == JobStatus.SUCCEEDED:
        sets, values = "status = 'succeeded', lease_expires_at = NULL, updated_at = $3", (now,)
    elif end.status == JobStatus.QUEUED:
        assert end.run_at is not None
        sets = (
            "status = 'queued', run_at = $3, last_error = $4, lease_expires_at = NULL, "
            "updated_at = $5"
        )
        values = (utc(end.run_at), end.error, now)
    else:
        sets = "status = 'failed', last_error = $3, lease_expires_at = NULL, updated_at = $4"
        values = (end.error, now)
    status = await conn.execute(
        f"UPDATE jobs SET {sets} WHERE {sql.HELD}", end.job_id, end.lease_token, *values
    )
    return bool(status == "UPDATE 1")


class PostgresJobs(PostgresConnection):
    async def enqueue(self, jobs: Sequence[JobRecord]) -> None:
        args = [job_args(job) for job in jobs]  # encoded first: a bad payload fails early
        if not args:
            return
        ids = [job.id for job in jobs]

        async def insert(conn: Any) -> None:
            await self._insert_jobs(conn, jobs)

        async def landed(conn: Any) -> bool:
            # none found: not landed, or every one was skipped for its dedupe_key (and will be
            # again): inserting them now is right either way
            return bool(await conn.fetchval("SELECT 1 FROM jobs WHERE id = ANY($1)", ids))

        await self._insert_new(insert, landed=landed)

    async def lease_jobs(
        self,
        *,
        now: datetime,
        lease_seconds: float,
        limit: int,
        kinds: Collection[str] | None = None,
    ) -> list[JobRecord]:
        kind_list = None if kinds is None else list(kinds)
        if kind_list == [] or limit <= 0:
            return []
        now = utc(now)
        expires = now + timedelta(seconds=lease_seconds)
        # repeatable: the leases of a run whose answer was lost on its way merely expire (the
        # jobs run later, one attempt counted more)
        rows = await self._execute(
            lambda conn: conn.fetch(sql.LEASE_JOBS, now, expires, limit, kind_list),
            repeatable=True,
        )
        ordered = sorted(rows, key=lambda row: (row["run_at"], row["seq"]))
        return [job_from_row(row) for row in ordered]

    async def renew_lease(
        self, job_id: str, lease_token: int, *, now: datetime, lease_seconds: float
    ) -> bool:
        expires = utc(now) + timedelta(seconds=lease_seconds)
        # repeatable: renewing twice leaves the same expiry, still held by the same token
        return await self._fenced_update(
            job_id,
            lease_token,
            "lease_expires_at = $3, updated_at = $4",
            expires,
            utc(now),
            repeatable=True,
        )

    async def complete_job(self, job_id: str, lease_token: int, *, now: datetime) -> bool:
        return await self._end_job(JobEnd(job_id, lease_token, now, JobStatus.SUCCEEDED))

    async def retry_job(
        self, job_id: str, lease_token: int, *, now: datetime, run_at: datetime, error: str
    ) -> bool:
        return await self._end_job(
            JobEnd(job_id, lease_token, now, JobStatus.QUEUED, run_at=run_at, error=error)
        )

    async def fail_job(self, job_id: str, lease_token: int, *, now: datetime, error: str) -> bool:
        return await self._end_job(JobEnd(job_id, lease_token, now, JobStatus.FAILED, error=error))

    async def _end_job(self, end: JobEnd) -> bool:
        async def write(conn: Any) -> bool:
            if not await write_job_end(conn, end):
                return False
            if end.due_at_once:  # a handed-back job: wake a worker
                await self._notify(conn)
            return True

        # not repeatable: after a lost commit, a second run would find the lease ended
        return await self._transact(write)

    async def _fenced_update(
        self, job_id: str, lease_token: int, sets: str, *values: Any, repeatable: bool
    ) -> bool:
        """``UPDATE jobs SET <sets>`` only while ``lease_token`` still holds the job."""
        status = await self._execute(
            lambda conn: conn.execute(
                f"UPDATE jobs SET {sets} WHERE {sql.HELD}", job_id, lease_token, *values
            ),
            repeatable=repeatable,
        )
        return bool(status == "UPDATE 1")

    async def requeue_job(self, job_id: str, *, now: datetime) -> bool:

        async def write(conn: Any) -> bool:
            # lease_token is kept: it must only ever grow, or an old holder could come back
            status = await conn.execute(
                "UPDATE jobs SET status = 'queued', run_at = $2, attempts = 0, "
                "lease_expires_at = NULL, updated_at = $2 "
                "WHERE id = $1 AND status IN ('succeeded', 'failed')",
                job_id,
                utc(now),
            )
            if status != "UPDATE 1":
                return False
            await self._notify(conn)
            return True

        return await self._transact(write)

    async def get_job(self, job_id: str) -> JobRecord | None:
        row = await self._read(
            lambda conn: conn.fetchrow(f"SELECT {sql.JOBS} FROM jobs WHERE id = $1", job_id)
        )
        return None if row is None else job_from_row(row)

    async def list_jobs(self, *, task_id: str, kind: str | None = None) -> list[JobRecord]:
        rows = await self._read(
            lambda conn: conn.fetch(
                f"SELECT {sql.JOBS} FROM jobs WHERE task_id = $1 "
                "AND ($2::text IS NULL OR kind = $2) ORDER BY created_at, seq",
                task_id,
                kind,
            )
        )
        return [job_from_row(row) for row in rows]

    async def next_job_due(self) -> datetime | None:
        value: datetime | None = await self._read(lambda conn: conn.fetchval(sql.NEXT_JOB_DUE))
        return value
