"""The worker on the in-memory backend: retries, giving up, and jobs of a dead worker."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable
from typing import Any

import pytest

from service.jobs.kinds import new_job
from service.jobs.outcome import GiveUp, RetryLater
from service.jobs.slot import step_aside
from service.retry import RetrySchedule
from service.services import Services
from service.worker.loop import BUSY_REST, Worker
from service.worker.runners import JobRunner
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


def _blocking(release: asyncio.Event, started: list[str]) -> JobRunner:
    async def run(services: Services, job: JobRecord) -> None:
        started.append(job.id)
        await release.wait()

    return JobRunner(run, lambda services, job: RetrySchedule.of([0], jitter=0))


async def _worker_with_short_jobs_seen(
    services: Services, runners: dict[str, JobRunner], *, concurrency: int, lease: float = 30
) -> Worker:
    """A worker that has seen a short job finish (so it queues jobs ahead of its slots)."""
    services.settings = services.settings.model_copy(
        update={"worker_concurrency": concurrency, "job_lease_seconds": lease}
    )
    quick = JobRunner(runner_failing(0, []).run, runner_failing(0, []).schedule)
    worker = Worker(services, poll_interval=0.01, runners={"quick": quick, **runners})
    job = new_job("quick", {}, now=services.clock())
    await services.storage.enqueue([job])
    await run_until(worker, wait_status(services, job.id, JobStatus.SUCCEEDED))
    return worker


async def test_short_jobs_are_queued_ahead_and_handed_back_when_the_worker_stops(
    services: Services,
) -> None:
    release, started = asyncio.Event(), list[str]()
    worker = await _worker_with_short_jobs_seen(
        services, {"t": _blocking(release, started)}, concurrency=2
    )
    jobs = [new_job("t", {}, now=services.clock()) for _ in range(6)]
    await services.storage.enqueue(jobs)
    running = asyncio.create_task(worker.run())
    try:
        for _ in range(100):
            held = [await services.storage.get_job(job.id) for job in jobs]
            leased = [j for j in held if j is not None and j.status == JobStatus.RUNNING]
            if len(leased) == 4:
                break
            await asyncio.sleep(0.01)
        # two slots, and as many leased jobs queued ahead of them
        assert (len(started), len(leased)) == (2, 4)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    stored = [await services.storage.get_job(job.id) for job in jobs]
    assert all(j is not None and j.status == JobStatus.QUEUED for j in stored)
    handed = [j for j in stored if j is not None and j.last_error == "worker stopped"]
    assert {j.id for j in handed} == {j.id for j in leased}  # running and queued, due at once
    assert all(j.run_at <= services.clock() for j in handed)


async def test_a_queued_job_that_waits_too_long_for_a_slot_is_handed_back(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.worker.loop.PREFETCH_HOLD", 0.05)
    release, started = asyncio.Event(), list[str]()
    worker = await _worker_with_short_jobs_seen(
        services, {"t": _blocking(release, started)}, concurrency=2
    )
    jobs = [new_job("t", {}, now=services.clock()) for _ in range(3)]
    await services.storage.enqueue(jobs)
    running = asyncio.create_task(worker.run())
    try:
        for _ in range(200):
            stored = [await services.storage.get_job(job.id) for job in jobs]
            waiting = [j for j in stored if j is not None and j.status == JobStatus.QUEUED]
            if len(started) == 2 and waiting and waiting[0].last_error:
                break
            await asyncio.sleep(0.01)
        [back] = waiting
        assert back.last_error == "handed back: no free slot in its worker"
        await asyncio.sleep(0.1)  # the slots stay taken: it is not leased again meanwhile
        again = await services.storage.get_job(back.id)
        assert again is not None and again.status == JobStatus.QUEUED
        release.set()
        for job in jobs:
            await asyncio.wait_for(wait_status(services, job.id, JobStatus.SUCCEEDED), 5)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_the_leases_of_running_and_queued_jobs_are_renewed(services: Services) -> None:
    release, started = asyncio.Event(), list[str]()
    worker = await _worker_with_short_jobs_seen(
        services, {"t": _blocking(release, started)}, concurrency=1, lease=0.3
    )
    jobs = [new_job("t", {}, now=services.clock()) for _ in range(2)]
    await services.storage.enqueue(jobs)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.1)
        leased = [await services.storage.get_job(job.id) for job in jobs]
        await asyncio.sleep(0.8)  # well past the first lease: only renewals keep both
        later = [await services.storage.get_job(job.id) for job in jobs]
        for first, now in zip(leased, later, strict=True):
            assert first is not None and now is not None
            assert now.status == JobStatus.RUNNING
            assert now.lease_token == first.lease_token
            assert first.lease_expires_at is not None and now.lease_expires_at is not None
            assert now.lease_expires_at > first.lease_expires_at
        assert len(started) == 1
    finally:
        release.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


def runner_counting(running: list[int], peak: list[int], release: asyncio.Event) -> JobRunner:
    """Jobs that wait for ``release``; ``peak`` records how many ran at once."""

    async def run(services: Services, job: JobRecord) -> None:
        running.append(1)
        peak.append(len(running))
        try:
            await release.wait()
        finally:
            running.pop()

    return JobRunner(run, lambda services, job: RetrySchedule.of([0], jitter=0))


async def _queue_jobs(services: Services, count: int) -> list[JobRecord]:
    jobs = [new_job("t", {}, now=services.clock()) for _ in range(count)]
    await services.storage.enqueue(jobs)
    return jobs


@pytest.mark.parametrize("gives_way", [True, False])
async def test_a_worker_sharing_the_receivers_process_runs_one_job_while_callbacks_arrive(
    services: Services, gives_way: bool
) -> None:
    running: list[int] = []
    peak: list[int] = []
    release = asyncio.Event()
    runners = {"t": runner_counting(running, peak, release)}
    worker = Worker(services, poll_interval=0.01, runners=runners, gives_way=gives_way)
    jobs = await _queue_jobs(services, 4)
    with services.receiver_load.receiving():  # callbacks arriving when the worker starts
        pass
    work = asyncio.create_task(worker.run())
    try:
        await _burst_of_callbacks(services, seconds=0.4)
        assert max(peak) == (1 if gives_way else 4)
        # quiet again: every slot is back, without waiting for a job to end
        for _ in range(200):
            if len(running) == 4:
                break
            await asyncio.sleep(0.01)
        assert len(running) == 4
        release.set()
        for job in jobs:
            await wait_status(services, job.id, JobStatus.SUCCEEDED)
    finally:
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)


async def test_a_worker_giving_way_still_moves_its_backlog(services: Services) -> None:
    running: list[int] = []
    peak: list[int] = []
    release = asyncio.Event()
    release.set()  # jobs end at once
    runners = {"t": runner_counting(running, peak, release)}
    worker = Worker(services, poll_interval=0.01, runners=runners, gives_way=True)
    jobs = await _queue_jobs(services, 5)
    burst = asyncio.create_task(_burst_of_callbacks(services, seconds=30))  # busy all along
    try:
        done = asyncio.gather(*(wait_status(services, j.id, JobStatus.SUCCEEDED) for j in jobs))
        await run_until(worker, done)
    finally:
        burst.cancel()
        await asyncio.gather(burst, return_exceptions=True)
    assert max(peak) == 1


async def test_a_worker_giving_way_rests_between_jobs_while_callbacks_arrive(
    services: Services,
) -> None:
    started: list[float] = []

    async def run(services: Services, job: JobRecord) -> None:
        started.append(time.monotonic())

    runners = {"t": JobRunner(run, lambda services, job: RetrySchedule.of([0], jitter=0))}
    worker = Worker(services, poll_interval=0.01, runners=runners, gives_way=True)
    jobs = await _queue_jobs(services, 5)
    burst = asyncio.create_task(_burst_of_callbacks(services, seconds=30))  # busy all along
    try:
        done = asyncio.gather(*(wait_status(services, j.id, JobStatus.SUCCEEDED) for j in jobs))
        await run_until(worker, done)
    finally:
        burst.cancel()
        await asyncio.gather(burst, return_exceptions=True)
    gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
    assert len(gaps) == 4
    assert min(gaps) >= BUSY_REST


async def test_a_worker_without_a_free_slot_is_not_woken_by_each_new_job(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.settings = services.settings.model_copy(update={"worker_concurrency": 1})
    running: list[int] = []
    release = asyncio.Event()
    runners = {"t": runner_counting(running, [], release)}
    worker = Worker(services, poll_interval=5, runners=runners)
    waits = 0
    wait_for_jobs = services.storage.wait_for_jobs

    async def counted(seconds: float) -> None:
        nonlocal waits
        waits += 1
        await wait_for_jobs(seconds)

    monkeypatch.setattr(services.storage, "wait_for_jobs", counted)
    [first] = await _queue_jobs(services, 1)
    work = asyncio.create_task(worker.run())
    try:
        for _ in range(200):
            if running:
                break
            await asyncio.sleep(0.005)
        before = waits
        for _ in range(50):  # callbacks storing jobs, each announcing them, while it is full
            await _queue_jobs(services, 1)
            services.jobs_ready.set()
            await asyncio.sleep(0.002)
        assert waits == before  # it slept on: nothing could start before its slot is free
        release.set()
        await wait_status(services, first.id, JobStatus.SUCCEEDED)
    finally:
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)


async def _burst_of_callbacks(services: Services, *, seconds: float) -> None:
    """Callbacks beginning and ending every 20 ms, as the receiver would see them."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        with services.receiver_load.receiving():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)


# --- slots per kind of job ------------------------------------------------------------------------


def _blocking_kind(release: asyncio.Event, started: list[str], kind: str) -> JobRunner:
    async def run(services: Services, job: JobRecord) -> None:
        started.append(kind)
        await release.wait()

    return JobRunner(run, lambda services, job: RetrySchedule.of([0], jitter=0))


def _jobs_of(services: Services, kind: str, count: int) -> list[JobRecord]:
    return [new_job(kind, {}, now=services.clock()) for _ in range(count)]


async def test_a_kind_at_its_cap_does_not_keep_other_kinds_from_being_leased(
    services: Services,
) -> None:
    release, started = asyncio.Event(), list[str]()
    inbox_ran = asyncio.Event()

    async def inbox(services: Services, job: JobRecord) -> None:
        inbox_ran.set()

    runners = {
        "delivery": _blocking_kind(release, started, "delivery"),
        "inbox": JobRunner(inbox, lambda services, job: RetrySchedule.of([0], jitter=0)),
    }
    deliveries = _jobs_of(services, "delivery", 12)
    await services.storage.enqueue(deliveries)  # older: leased first when there is room
    await services.storage.enqueue(_jobs_of(services, "inbox", 1))
    worker = Worker(services, poll_interval=0.01, runners=runners)
    work = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(inbox_ran.wait(), 5)
        await asyncio.sleep(0.1)
        assert started.count("delivery") == 4  # half of the 8 slots, not one more
        stored = [await services.storage.get_job(job.id) for job in deliveries]
        assert sum(j is not None and j.status == JobStatus.QUEUED for j in stored) >= 4
    finally:
        release.set()
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)


async def test_deliveries_and_handler_runs_together_never_take_the_reserved_slots(
    services: Services,
) -> None:
    release, started = asyncio.Event(), list[str]()
    runners = {
        kind: _blocking_kind(release, started, kind) for kind in ("delivery", "handler", "inbox")
    }
    await services.storage.enqueue(_jobs_of(services, "delivery", 10))
    await services.storage.enqueue(_jobs_of(services, "handler", 10))
    worker = Worker(services, poll_interval=0.01, runners=runners)
    work = asyncio.create_task(worker.run())
    try:
        for _ in range(200):
            if len(started) == 6:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert len(started) == 6  # two of the eight slots are kept for the task state machine
        assert started.count("delivery") <= 4 and started.count("handler") <= 4
        await services.storage.enqueue(_jobs_of(services, "inbox", 3))
        services.jobs_ready.set()
        for _ in range(200):
            if started.count("inbox") == 2:
                break
            await asyncio.sleep(0.01)
        assert started.count("inbox") == 2  # at once, in the reserved slots
    finally:
        release.set()
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)


async def test_a_job_that_steps_aside_frees_its_slot_within_the_limit(
    services: Services,
) -> None:
    services.settings = services.settings.model_copy(
        update={"worker_concurrency": 1, "webhook_slow_attempts": 1}
    )
    release = asyncio.Event()
    stepped: list[bool] = []

    async def waits_on_a_peer(services: Services, job: JobRecord) -> None:
        stepped.append(step_aside())
        await release.wait()

    runners = {"t": JobRunner(waits_on_a_peer, lambda services, job: RetrySchedule.of([0]))}
    jobs = await _queue_jobs(services, 3)
    work = asyncio.create_task(Worker(services, poll_interval=0.01, runners=runners).run())
    try:
        for _ in range(200):
            if len(stepped) == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        # one slot: the first job stood aside and the second started; the second was refused
        # (one may stand aside at a time), so it keeps the slot and the third waits
        assert stepped == [True, False]
        release.set()
        for job in jobs:
            await wait_status(services, job.id, JobStatus.SUCCEEDED)
    finally:
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
    assert not step_aside()  # outside a worker's job: nothing to give back


# --- supervised loops ---------------------------------------------------------------------------


async def test_a_crashing_lease_loop_keeps_its_running_jobs_and_renews_their_leases(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.settings = services.settings.model_copy(update={"job_lease_seconds": 0.3})
    release, started = asyncio.Event(), list[str]()
    runners = {"t": _blocking(release, started)}
    lease_jobs = services.storage.lease_jobs
    crashes: list[int] = []

    async def crashing_after_the_first(**kwargs: Any) -> list[JobRecord]:
        if started:
            crashes.append(1)
            raise RuntimeError("a bug in leasing")
        return await lease_jobs(**kwargs)

    monkeypatch.setattr(services.storage, "lease_jobs", crashing_after_the_first)
    [job] = await _queue_jobs(services, 1)
    worker = Worker(services, poll_interval=0.01, runners=runners)
    work = asyncio.create_task(worker.run())
    try:
        for _ in range(200):
            if started:
                break
            await asyncio.sleep(0.01)
        first = await services.storage.get_job(job.id)
        await asyncio.sleep(1.0)  # three leases long: only renewals keep the job
        later = await services.storage.get_job(job.id)
        assert first is not None and later is not None
        assert later.status == JobStatus.RUNNING and later.lease_token == first.lease_token
        assert first.lease_expires_at is not None and later.lease_expires_at is not None
        assert later.lease_expires_at > first.lease_expires_at
        assert len(crashes) >= 2 and worker.health.loops["lease"].restarts >= 2
        assert not worker.health.up  # crash-looping: /readyz says so
        monkeypatch.setattr(services.storage, "lease_jobs", lease_jobs)
        release.set()
        done = await wait_status(services, job.id, JobStatus.SUCCEEDED)
        assert done.lease_token == first.lease_token  # the same run ended it
    finally:
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)


async def test_a_kind_found_without_jobs_is_asked_again_while_another_kind_keeps_leasing(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # jobs enqueued by another process announce themselves only through wait_for_jobs, which
    # a worker busy leasing deliveries does not reach: the inbox must be asked all the same
    async def no_news(seconds: float) -> None:
        await asyncio.sleep(seconds)

    monkeypatch.setattr(services.storage, "wait_for_jobs", no_news)
    inbox_ran = asyncio.Event()
    flowing = True

    async def delivery(services: Services, job: JobRecord) -> None:
        if flowing:  # each delivery brings more: leases keep coming back full
            await services.storage.enqueue(_jobs_of(services, "delivery", 4))

    async def inbox(services: Services, job: JobRecord) -> None:
        inbox_ran.set()

    schedule = lambda services, job: RetrySchedule.of([0], jitter=0)  # noqa: E731
    runners = {"delivery": JobRunner(delivery, schedule), "inbox": JobRunner(inbox, schedule)}
    await services.storage.enqueue(_jobs_of(services, "delivery", 8))
    work = asyncio.create_task(Worker(services, poll_interval=0.1, runners=runners).run())
    try:
        await asyncio.sleep(0.3)  # the inbox was found empty; deliveries flow
        await services.storage.enqueue(_jobs_of(services, "inbox", 1))  # jobs_ready not set
        await asyncio.wait_for(inbox_ran.wait(), 5)
    finally:
        flowing = False
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
