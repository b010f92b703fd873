"""Durable jobs in the SQLite backend: leases, fencing, retries and wake-ups.

A mixin of :class:`storage.sqlite.backend.SQLiteStorage`, whose writer, reader and wake-up it
shares. Leasing runs in the batch's ``BEGIN IMMEDIATE`` transaction, so a job selected as due is
still due when it is marked leased, whatever another process does meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from storage.base import JobEnd
from storage.records import JobRecord, JobStatus
from storage.sqlite.rows import (
    JOB_COLUMNS,
    Params,
    encode_optional_time,
    encode_time,
    job_from_row,
    job_row,
    positions,
)
from storage.sqlite.thread import Function
from storage.sqlite.wakeup import SQLiteWakeup

_R = TypeVar("_R")

INSERT_JOB = (
    f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({positions(JOB_COLUMNS)}) "
    "ON CONFLICT (dedupe_key) DO NOTHING"
)
# A job is due when queued and its time has come, or running on a lease its worker let expire.
# The two kinds are looked up apart, each along its own index, the first ``limit`` of each, and
# merged: one query with an OR sorted every due job for every lease (8 ms at 10,000 queued).
_DUE_QUEUED = "status = 'queued' AND run_at <= :now"
_DUE_EXPIRED = "status = 'running' AND lease_expires_at <= :now"


# when the next job is due (queued, or on a lease that will expire)
NEXT_DUE = (
    "SELECT min(due) FROM ("
    " SELECT min(run_at) AS due FROM jobs WHERE status = 'queued'"
    " UNION ALL"
    " SELECT min(lease_expires_at) FROM jobs WHERE status = 'running')"
)


def first_due(kind_filter: str) -> str:
    """The seqs of the first ``:limit`` due jobs, in (run_at, seq) order."""
    branches = " UNION ALL ".join(
        f"SELECT seq, run_at FROM (SELECT seq, run_at FROM jobs WHERE {due} {kind_filter} "
        "ORDER BY run_at, seq LIMIT :limit)"
        for due in (_DUE_QUEUED, _DUE_EXPIRED)
    )
    return f"SELECT seq FROM ({branches} ORDER BY run_at, seq LIMIT :limit)"


_HELD = "id = :id AND status = 'running' AND lease_token = :token"  # fencing
# how a held job ends (the SETs of complete_job, retry_job, fail_job)
_END_SETS = {
    JobStatus.SUCCEEDED: "status = 'succeeded', lease_expires_at = NULL, updated_at = :now",
    JobStatus.QUEUED: (
        "status = 'queued', run_at = :run_at, last_error = :error, "
        "lease_expires_at = NULL, updated_at = :now"
    ),
    JobStatus.FAILED: (
        "status = 'failed', last_error = :error, lease_expires_at = NULL, updated_at = :now"
    ),
}


def job_end_step(end: JobEnd) -> tuple[str, Params]:
    """The fenced UPDATE that writes ``end``, for a unit of the caller's."""
    return f"UPDATE jobs SET {_END_SETS[end.status]} WHERE {_HELD}", {
        "id": end.job_id,
        "token": end.lease_token,
        "now": encode_time(end.now),
        "run_at": encode_optional_time(end.run_at),
        "error": end.error,
    }


class SQLiteJobs:
    _wakeup: SQLiteWakeup

    async def _fetch(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def _write(self, unit: Function[_R]) -> _R:
        raise NotImplementedError

    async def enqueue(self, jobs: Sequence[JobRecord]) -> None:
        rows = [job_row(job) for job in jobs]
        await self._write(lambda conn: conn.executemany(INSERT_JOB, rows).rowcount)
        if rows:
            self._wakeup.jobs_added()

    async def lease_jobs(
        self,
        *,
        now: datetime,
        lease_seconds: float,
        limit: int,
        kinds: Collection[str] | None = None,
    ) -> list[JobRecord]:
        params: dict[str, Any] = {
            "now": encode_time(now),
            "expires": encode_time(now + timedelta(seconds=lease_seconds)),
            "limit": max(limit, 0),
        }
        kind_filter = ""
        if kinds is not None:
            names = {f"kind{i}": kind for i, kind in enumerate(kinds)}
            if not names:
                return []
            params.update(names)
            kind_filter = f"AND kind IN ({', '.join(':' + name for name in names)})"

        # BEGIN IMMEDIATE (of the batch) holds the write lock from the select to the update:
        # no other process can lease the same rows in between
        def lease(raw: sqlite3.Connection) -> list[sqlite3.Row]:
            return raw.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, "
                "lease_token = lease_token + 1, lease_expires_at = :expires, updated_at = :now "
                f"WHERE seq IN ({first_due(kind_filter)}) "
                f"RETURNING seq, {JOB_COLUMNS}",
                params,
            ).fetchall()

        rows = await self._write(lease)
        ordered = sorted(rows, key=lambda row: (row["run_at"], row["seq"]))
        return [job_from_row(row) for row in ordered]

    async def renew_lease(
        self, job_id: str, lease_token: int, *, now: datetime, lease_seconds: float
    ) -> bool:
        expires = encode_time(now + timedelta(seconds=lease_seconds))
        return await self._fenced_update(
            job_id,
            lease_token,
            "lease_expires_at = :expires, updated_at = :now",
            now=encode_time(now),
            expires=expires,
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
        ended = await self._write(changes_one(*job_end_step(end)))
        if ended and end.due_at_once:
            self._wakeup.jobs_added()
        return ended

    async def _fenced_update(self, job_id: str, lease_token: int, sets: str, **values: Any) -> bool:
        """Run ``UPDATE jobs SET <sets>`` only while ``lease_token`` still holds the job."""
        params = {"id": job_id, "token": lease_token, **values}
        return await self._write(changes_one(f"UPDATE jobs SET {sets} WHERE {_HELD}", params))

    async def requeue_job(self, job_id: str, *, now: datetime) -> bool:
        # lease_token is kept: it must only ever grow, or an old holder could come back
        queued = await self._write(
            changes_one(
                "UPDATE jobs SET status = 'queued', run_at = :now, attempts = 0, "
                "lease_expires_at = NULL, updated_at = :now "
                "WHERE id = :id AND status IN ('succeeded', 'failed')",
                {"id": job_id, "now": encode_time(now)},
            )
        )
        if queued:
            self._wakeup.jobs_added()
        return queued

    async def get_job(self, job_id: str) -> JobRecord | None:
        rows = await self._fetch(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return first_row(rows, job_from_row)

    async def list_jobs(self, *, task_id: str, kind: str | None = None) -> list[JobRecord]:
        rows = await self._fetch(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE task_id = :task_id "
            "AND (:kind IS NULL OR kind = :kind) ORDER BY created_at, seq",
            {"task_id": task_id, "kind": kind},
        )
        return [job_from_row(row) for row in rows]

    async def next_job_due(self) -> datetime | None:
        rows = await self._fetch(NEXT_DUE)
        value = next(iter(rows))[0]
        return None if value is None else datetime.fromisoformat(value)


def changes_one(sql: str, params: Params | Sequence[Any]) -> Function[bool]:
    """A unit running one statement: whether it changed exactly one row."""
    return lambda conn: conn.execute(sql, params).rowcount == 1


def first_row(rows: Iterable[sqlite3.Row], decode: Callable[[sqlite3.Row], _R]) -> _R | None:
    row = next(iter(rows), None)
    return None if row is None else decode(row)
