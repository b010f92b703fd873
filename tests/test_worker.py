"""The worker on the in-memory backend: retries, giving up, and jobs of a dead worker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from service.jobs.kinds import new_job
from service.jobs.outcome import GiveUp, RetryLater
from service.jobs.runners import JobRunner
from service.retry import RetrySchedule
from service.services import Services
from service.worker import Worker
from storage.records import JobRecord, JobStatus
from tests.factories import ManualClock


async def run_until(worker: Worker, condition: Awaitable[object], timeout: float = 5) -> None:
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(condition, timeout)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def wait_status(services: Services, job_id: str, status: JobStatus) -> JobRecord:
    for _ in range(500):
        job = await services.storage.get_job(job_id)
        if job is not None and job.status == status:
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never became {status}: {job}")


def runner_failing(times: int, calls: list[int], error: type[Exception] = RetryLater) -> JobRunner:
    async def run(services: Services, job: JobRecord) -> None:
        calls.append(job.attempts)
        if len(calls) <= times:
            raise error("not yet")

    return JobRunner(run, lambda services, job: RetrySchedule.of([0, 0], jitter=0))


async def test_a_failing_job_is_retried_until_it_succeeds(services: Services) -> None:
    calls: list[int] = []
    worker = Worker(services, poll_interval=0.01, runners={"t": runner_failing(2, calls)})
    job = new_job("t", {}, now=services.clock())
    await services.storage.enqueue([job])
    done = wait_status(services, job.id, JobStatus.SUCCEEDED)
    await run_until(worker, done)
    assert calls == [1, 2, 3]


async def test_a_job_gives_up_after_its_schedule_and_calls_on_give_up(
    services: Services,
) -> None:
    calls: list[int] = []
    given_up: list[str] = []

    async def on_give_up(services: Services, job: JobRecord, error: str) -> None:
        given_up.append(error)

    base = runner_failing(99, calls, error=ValueError)  # an unforeseen error is retried too
    runner = JobRunner(base.run, base.schedule, on_give_up)
    worker = Worker(services, poll_interval=0.01, runners={"t": runner})
    job = new_job("t", {}, now=services.clock())
    await services.storage.enqueue([job])
    done = wait_status(services, job.id, JobStatus.FAILED)
    await run_until(worker, done)
    assert calls == [1, 2, 3]
    assert given_up == ["ValueError: not yet"]
    failed = await services.storage.get_job(job.id)
    assert failed is not None and failed.last_error == "ValueError: not yet"


async def test_give_up_is_not_retried(services: Services) -> None:
    calls: list[int] = []
    worker = Worker(services, poll_interval=0.01, runners={"t": runner_failing(1, calls, GiveUp)})
    job = new_job("t", {}, now=services.clock())
    await services.storage.enqueue([job])
    done = wait_status(services, job.id, JobStatus.FAILED)
    await run_until(worker, done)
    assert calls == [1]


async def test_the_job_of_a_dead_worker_is_taken_up_once_its_lease_expires(
    services: Services,
) -> None:
    clock = ManualClock()
    services.clock = clock
    job = new_job("t", {}, now=clock())
    await services.storage.enqueue([job])
    # A worker leases the job and dies without a word: nothing completes or releases it.
    [taken] = await services.storage.lease_jobs(now=clock(), lease_seconds=30, limit=1)
    calls: list[int] = []
    worker = Worker(services, poll_interval=0.01, runners={"t": runner_failing(0, calls)})
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.1)
        assert calls == []  # the lease still holds
        clock.advance(31)
        done = await asyncio.wait_for(wait_status(services, job.id, JobStatus.SUCCEEDED), 5)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert calls == [2]
    assert done.lease_token > taken.lease_token
    # the dead worker's late result is refused: its fencing token is stale
    assert not await services.storage.complete_job(job.id, taken.lease_token, now=clock())
