"""wait_for_jobs(): workers wake promptly when another handle (process) adds work."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.dispatch.job import plan_dispatch
from storage import create_storage
from storage.base import Storage
from storage.records import TaskChange
from tests.factories import at, make_event, make_job, make_notification, make_task
from tests.storage.conftest import Backend, OpenAgain
from tests.storage.postgres_db import fresh_schema, needs_postgres, plain_url


async def _timed_wait(storage: Storage, timeout: float) -> float:
    started = time.monotonic()
    await storage.wait_for_jobs(timeout)
    return time.monotonic() - started


async def test_without_new_jobs_it_waits_for_the_timeout(storage: Storage) -> None:
    await storage.wait_for_jobs(0.05)  # settle whatever opening the database signalled
    assert 0.25 <= await _timed_wait(storage, 0.3) < 2.0
    assert await _timed_wait(storage, 0) < 0.5


async def test_a_job_enqueued_by_another_handle_wakes_a_waiter(
    storage: Storage, open_again: OpenAgain
) -> None:
    other = await open_again()
    await storage.wait_for_jobs(0.05)
    waiter = asyncio.create_task(_timed_wait(storage, 10))
    await asyncio.sleep(0.2)  # the waiter is waiting (PostgreSQL: listening) by now
    assert not waiter.done()

    await other.enqueue([make_job()])

    assert await asyncio.wait_for(waiter, 5) < 2.0  # SQLite polls every 0.25 s


async def test_work_added_while_nobody_waited_is_not_missed(
    storage: Storage, open_again: OpenAgain
) -> None:
    other = await open_again()
    await storage.wait_for_jobs(0.05)
    await asyncio.sleep(0.1)
    task = make_task()
    await other.create_task(task)
    await other.record_notification(make_notification(task.id), make_job(task_id=task.id))

    assert await _timed_wait(storage, 10) < 2.0


@pytest.mark.parametrize("how", ["apply", "retry now", "requeue", "dispatch"])
async def test_every_way_of_queueing_due_work_wakes(
    storage: Storage, open_again: OpenAgain, how: str
) -> None:
    other = await open_again()
    await storage.wait_for_jobs(0)  # PostgreSQL: listening from now on
    task = make_task()
    await other.create_task(task)
    await other.enqueue([make_job(task_id=task.id)])
    [job] = await other.lease_jobs(now=at(1), lease_seconds=30, limit=1)
    if how == "requeue":
        assert await other.complete_job(job.id, job.lease_token, now=at(2))
    event = make_event(task.id)
    if how == "dispatch":
        assert await other.apply(TaskChange(task, events=[event]))
    await storage.wait_for_jobs(0.3)  # consume the wake-ups of the setup
    await storage.wait_for_jobs(0.05)

    waiter = asyncio.create_task(_timed_wait(storage, 10))
    await asyncio.sleep(0.1)
    if how == "apply":
        assert await other.apply(TaskChange(task, jobs=[make_job(task_id=task.id)]))
    elif how == "dispatch":  # the handler runs and deliveries of an event
        await other.record_dispatch(plan_dispatch(event, ["plugin:handler"], []))
    elif how == "retry now":
        assert await other.retry_job(job.id, job.lease_token, now=at(2), run_at=at(2), error="e")
    else:
        assert await other.requeue_job(job.id, now=at(3))

    assert await asyncio.wait_for(waiter, 5) < 2.0


@needs_postgres
async def test_postgresql_ignores_other_schemas_and_survives_a_lost_listener() -> None:
    import asyncpg

    async with fresh_schema() as ours_url, fresh_schema() as elsewhere_url:
        ours, elsewhere = create_storage(ours_url), create_storage(elsewhere_url)
        await ours.open()
        await elsewhere.open()
        try:
            await ours.wait_for_jobs(0.05)  # listening from now on
            waiter = asyncio.create_task(_timed_wait(ours, 0.6))
            await asyncio.sleep(0.1)
            await elsewhere.enqueue([make_job()])  # another installation's work
            assert await waiter >= 0.55

            # the listening connection dies (a restart, a proxy's idle timeout): the next
            # wait listens again
            admin = await asyncpg.connect(plain_url())
            try:
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN %omnihook_jobs%'"
                )
            finally:
                await admin.close()
            assert killed >= 1
            await ours.wait_for_jobs(0.3)
            waiter = asyncio.create_task(_timed_wait(ours, 10))
            await asyncio.sleep(0.1)
            await ours.enqueue([make_job()])
            assert await asyncio.wait_for(waiter, 5) < 2.0
        finally:
            await ours.close()
            await elsewhere.close()


async def test_a_closed_storage_only_waits(backend: Backend) -> None:
    store = backend.new()
    await store.open()
    await store.close()
    assert 0.1 <= await _timed_wait(store, 0.15) < 2.0  # no error, nothing opened
    await store.close()
