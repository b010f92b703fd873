"""Durable jobs in the in-memory backend: leases, fencing, retries and wake-ups.

A mixin of :class:`storage.memory.backend.MemoryStorage`, whose lock, tasks and jobs it shares;
every method keeps the promises of the SQL backends (atomic under the one lock, copies in and out).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta

from service.errors import StorageError
from storage.base import JobEnd
from storage.memory.copies import out, stored
from storage.records import JobRecord, JobStatus, TaskRecord

_FINISHED_JOBS = (JobStatus.SUCCEEDED, JobStatus.FAILED)


class MemoryJobs:
    # the state of MemoryStorage this mixin reads and writes
    _lock: asyncio.Lock
    _tasks: dict[str, TaskRecord]
    _jobs: dict[str, JobRecord]
    _jobs_added: asyncio.Event

    def _check_open(self) -> None:
        raise NotImplementedError

    def _check_task_refs(
        self, task_ids: Iterable[str], extra_task_ids: Collection[str] = ()
    ) -> None:
        raise NotImplementedError

    async def enqueue(self, jobs: Sequence[JobRecord]) -> None:
        async with self._lock:
            self._check_open()
            self._insert_jobs(self._jobs_to_insert(jobs))

    async def lease_jobs(
        self,
        *,
        now: datetime,
        lease_seconds: float,
        limit: int,
        kinds: Collection[str] | None = None,
    ) -> list[JobRecord]:
        async with self._lock:
            self._check_open()
            due = [
                (seq, job)
                for seq, job in enumerate(self._jobs.values())
                if (kinds is None or job.kind in kinds) and _is_due(job, now)
            ]
            due.sort(key=lambda pair: (pair[1].run_at, pair[0]))
            expires = now + timedelta(seconds=lease_seconds)
            leased = []
            for _, job in due[: max(limit, 0)]:
                job.status = JobStatus.RUNNING
                job.attempts += 1
                job.lease_token += 1
                job.lease_expires_at = expires
                job.updated_at = now
                leased.append(job)
            return out(leased)

    async def renew_lease(
        self, job_id: str, lease_token: int, *, now: datetime, lease_seconds: float
    ) -> bool:
        async with self._lock:
            job = self._held_job(job_id, lease_token)
            if job is None:
                return False
            job.lease_expires_at = now + timedelta(seconds=lease_seconds)
            job.updated_at = now
            return True

    async def complete_job(self, job_id: str, lease_token: int, *, now: datetime) -> bool:
        async with self._lock:
            return self._end_held_job(JobEnd(job_id, lease_token, now, JobStatus.SUCCEEDED))

    async def retry_job(
        self, job_id: str, lease_token: int, *, now: datetime, run_at: datetime, error: str
    ) -> bool:
        end = JobEnd(job_id, lease_token, now, JobStatus.QUEUED, run_at=run_at, error=error)
        async with self._lock:
            return self._end_held_job(end)

    async def fail_job(self, job_id: str, lease_token: int, *, now: datetime, error: str) -> bool:
        async with self._lock:
            return self._end_held_job(
                JobEnd(job_id, lease_token, now, JobStatus.FAILED, error=error)
            )

    def _end_held_job(self, end: JobEnd) -> bool:
        """Under the lock: write ``end`` if its lease token still holds the job."""
        job = self._held_job(end.job_id, end.lease_token)
        if job is None:
            return False
        job.status = end.status
        if end.status == JobStatus.QUEUED:
            assert end.run_at is not None
            job.run_at = end.run_at
            if end.run_at <= end.now:
                self._jobs_added.set()
        if end.status != JobStatus.SUCCEEDED:
            job.last_error = end.error
        job.lease_expires_at = None
        job.updated_at = end.now
        return True

    async def requeue_job(self, job_id: str, *, now: datetime) -> bool:
        async with self._lock:
            self._check_open()
            job = self._jobs.get(job_id)
            if job is None or job.status not in _FINISHED_JOBS:
                return False
            # lease_token is kept: it must only ever grow, or an old holder could come back
            job.status = JobStatus.QUEUED
            job.run_at = now
            job.attempts = 0
            job.lease_expires_at = None
            job.updated_at = now
            self._jobs_added.set()
            return True

    async def get_job(self, job_id: str) -> JobRecord | None:
        async with self._lock:
            self._check_open()
            job = self._jobs.get(job_id)
            return copy.deepcopy(job) if job is not None else None

    async def list_jobs(self, *, task_id: str, kind: str | None = None) -> list[JobRecord]:
        async with self._lock:
            self._check_open()
            found = [
                j
                for j in self._jobs.values()
                if j.task_id == task_id and (kind is None or j.kind == kind)
            ]
            return out(sorted(found, key=lambda j: j.created_at))

    async def wait_for_jobs(self, timeout: float) -> None:  # noqa: ASYNC109
        # nothing but this object can add jobs, so its own writes are the whole story
        try:
            await asyncio.wait_for(self._jobs_added.wait(), max(timeout, 0.0))
        except TimeoutError:
            return
        self._jobs_added.clear()  # after waking: a signal given meanwhile is never lost

    async def next_job_due(self) -> datetime | None:
        async with self._lock:
            self._check_open()
            times = [
                job.run_at if job.status == JobStatus.QUEUED else job.lease_expires_at
                for job in self._jobs.values()
                if job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
            ]
            return min((t for t in times if t is not None), default=None)

    def _held_job(self, job_id: str, lease_token: int) -> JobRecord | None:
        """The job if ``lease_token`` still holds it (fencing), else None."""
        self._check_open()
        job = self._jobs.get(job_id)
        if job is None or job.status != JobStatus.RUNNING or job.lease_token != lease_token:
            return None
        return job

    def _jobs_to_insert(
        self, jobs: Sequence[JobRecord], extra_task_ids: Collection[str] = ()
    ) -> list[JobRecord]:
        """The jobs that are new; one whose dedupe_key is already taken is skipped."""
        keys = {j.dedupe_key for j in self._jobs.values() if j.dedupe_key is not None}
        ids = set(self._jobs)
        fresh = []
        for job in jobs:
            if job.dedupe_key is not None and job.dedupe_key in keys:
                continue
            if job.id in ids:
                raise StorageError(f"job {job.id!r} already exists")
            if job.task_id is not None:
                self._check_task_refs([job.task_id], extra_task_ids)
            if job.dedupe_key is not None:
                keys.add(job.dedupe_key)
            ids.add(job.id)
            fresh.append(stored(job, "payload"))
        return fresh

    def _insert_jobs(self, jobs: Iterable[JobRecord]) -> None:
        for job in jobs:
            self._jobs[job.id] = job
            self._jobs_added.set()


def _is_due(job: JobRecord, now: datetime) -> bool:
    if job.status == JobStatus.QUEUED:
        return job.run_at <= now
    if job.status == JobStatus.RUNNING:  # an expired lease: its worker died
        return job.lease_expires_at is not None and job.lease_expires_at <= now
    return False
