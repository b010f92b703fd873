"""Property: whatever workers do, a job is never held by two of them at once.

Random sequences of lease / renew / complete / retry / fail / requeue / time passing run against
each backend and against a tiny model of the lease rules; every answer must match the model,
and fencing tokens of a job must only ever grow.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import create_storage
from storage.base import Storage
from storage.memory.backend import MemoryStorage
from storage.postgres.schema import parse_url
from storage.records import JobStatus
from storage.sqlite.backend import SQLiteStorage
from tests.factories import at, make_job
from tests.storage.postgres_db import (
    POSTGRES_URL,
    drop_schema,
    needs_postgres,
    new_schema_name,
    plain_url,
    url_with_schema,
)

LEASE = 10.0
JOBS = 3
HOLDERS = 3

Op = tuple[str, int, int]

ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("lease"), st.integers(0, HOLDERS - 1), st.integers(1, JOBS)),
        st.tuples(
            st.sampled_from(["renew", "complete", "retry", "fail"]),
            st.integers(0, HOLDERS - 1),
            st.integers(0, JOBS - 1),
        ),
        st.tuples(st.just("requeue"), st.just(0), st.integers(0, JOBS - 1)),
        st.tuples(st.just("advance"), st.just(0), st.integers(0, 15)),
    ),
    max_size=40,
)


@dataclass
class ModelJob:
    status: JobStatus = JobStatus.QUEUED
    run_at: float = 0.0
    token: int = 0
    expires: float = 0.0


@dataclass
class World:
    now: float = 0.0
    jobs: dict[str, ModelJob] = field(default_factory=dict)
    # what each worker believes it holds: job id -> token
    held: list[dict[str, int]] = field(default_factory=lambda: [{} for _ in range(HOLDERS)])


async def run_scenario(storage: Storage, ops: list[Op]) -> None:
    jobs = [make_job(run_at=at(0)) for _ in range(JOBS)]
    await storage.enqueue(jobs)
    world = World(jobs={job.id: ModelJob() for job in jobs})
    ids = [job.id for job in jobs]

    for name, holder, arg in ops:
        now = at(world.now)
        if name == "advance":
            world.now += arg
        elif name == "lease":
            await _lease(storage, world, holder, arg)
        elif name == "requeue":
            model = world.jobs[ids[arg]]
            expected = model.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
            assert await storage.requeue_job(ids[arg], now=now) == expected
            if expected:
                model.status, model.run_at = JobStatus.QUEUED, world.now
        else:
            job_id = ids[arg]
            token = world.held[holder].get(job_id, -1)
            model = world.jobs[job_id]
            holds = model.status == JobStatus.RUNNING and model.token == token
            if name == "renew":
                ok = await storage.renew_lease(job_id, token, now=now, lease_seconds=LEASE)
                if holds:
                    model.expires = world.now + LEASE
            elif name == "complete":
                ok = await storage.complete_job(job_id, token, now=now)
                if holds:
                    model.status = JobStatus.SUCCEEDED
            elif name == "retry":
                later = now + timedelta(seconds=5)
                ok = await storage.retry_job(job_id, token, now=now, run_at=later, error="e")
                if holds:
                    model.status, model.run_at = JobStatus.QUEUED, world.now + 5
            else:
                ok = await storage.fail_job(job_id, token, now=now, error="e")
                if holds:
                    model.status = JobStatus.FAILED
            assert ok == holds, (name, holder, job_id)
        await _check_stored(storage, world)


async def _lease(storage: Storage, world: World, holder: int, limit: int) -> None:
    due = {
        job_id
        for job_id, m in world.jobs.items()
        if (m.status == JobStatus.QUEUED and m.run_at <= world.now)
        or (m.status == JobStatus.RUNNING and m.expires <= world.now)
    }
    leased = await storage.lease_jobs(now=at(world.now), lease_seconds=LEASE, limit=limit)
    assert len(leased) == min(limit, len(due))
    for job in leased:
        assert job.id in due  # never a job whose lease is still valid
        model = world.jobs[job.id]
        assert job.lease_token > model.token  # tokens only grow: no two holders share one
        model.status, model.token, model.expires = JobStatus.RUNNING, job.lease_token, world.now
        model.expires += LEASE
        world.held[holder][job.id] = job.lease_token


async def _check_stored(storage: Storage, world: World) -> None:
    for job_id, model in world.jobs.items():
        stored = await storage.get_job(job_id)
        assert stored is not None
        assert (stored.status, stored.lease_token) == (model.status, model.token)
    current = [
        (h, job_id)
        for h, held in enumerate(world.held)
        for job_id, token in held.items()
        if world.jobs[job_id].status == JobStatus.RUNNING and world.jobs[job_id].token == token
    ]
    assert len({job_id for _, job_id in current}) == len(current)  # one holder per job


async def _with_backend(kind: str, ops: list[Op], postgres_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        storage: Storage
        if kind == "memory":
            storage = MemoryStorage()
        elif kind == "sqlite":
            storage = SQLiteStorage(str(Path(tmp) / "p.db"))
        else:
            assert postgres_url is not None
            storage = create_storage(postgres_url)
        await storage.open()
        try:
            if kind == "postgresql":  # one schema for the whole test: empty it per example
                await _delete_all_jobs(postgres_url)
            await run_scenario(storage, ops)
        finally:
            await storage.close()


async def _delete_all_jobs(url: str | None) -> None:
    import asyncpg

    assert url is not None
    conn = await asyncpg.connect(plain_url())
    try:
        await conn.execute(f'DELETE FROM "{parse_url(url).schema}".jobs')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str | None]:
    """A schema of its own for this module's PostgreSQL examples (hypothesis runs many
    examples per test, and a function-scoped fixture would be shared between them anyway)."""
    if POSTGRES_URL is None:
        yield None
        return
    schema = new_schema_name()
    try:
        yield url_with_schema(schema)
    finally:
        asyncio.run(drop_schema(schema))


@pytest.mark.parametrize(
    "kind", ["memory", "sqlite", pytest.param("postgresql", marks=needs_postgres)]
)
@settings(max_examples=60, deadline=None)
@given(ops=ops_strategy)
def test_a_job_is_never_held_twice(kind: str, ops: list[Op], postgres_url: str | None) -> None:
    asyncio.run(_with_backend(kind, ops, postgres_url))
