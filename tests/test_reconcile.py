"""Reconciliation on a fake clock: quiet tasks are queried once per quiet spell, in bounded
batches spread over time; rate limiting stops the queries for a while; a task without a final
state by its deadline times out."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from service.reconcile.job import sync_given_up
from service.reconcile.overdue import SPACING, enqueue_overdue_syncs
from service.services import Services
from storage.records import TaskRecord, TaskStatus
from tests.factories import make_job, make_task
from tests.receiver_support import Receiver, kling_task, open_receiver

RECONCILE_AFTER = 300
DEADLINE = 86400


async def test_quiet_unfinished_tasks_get_one_sync_job_each(services: Services) -> None:
    now = services.clock()
    long_ago = now - timedelta(seconds=services.settings.reconcile_after + 10)
    quiet = [
        make_task(status=TaskStatus.PROCESSING, created_at=long_ago, updated_at=long_ago)
        for _ in range(3)
    ]
    recent = make_task(status=TaskStatus.SUBMITTED, created_at=now, updated_at=now)
    finished = make_task(status=TaskStatus.SUCCEEDED, created_at=long_ago, updated_at=long_ago)
    for task in [*quiet, recent, finished]:
        await services.storage.create_task(task)

    assert await enqueue_overdue_syncs(services) == 3
    await enqueue_overdue_syncs(services)  # a second pass (or another worker) adds nothing

    for task in quiet:
        jobs = await services.storage.list_jobs(task_id=task.id, kind="sync")
        assert len(jobs) == 1
    for task in (recent, finished):
        assert await services.storage.list_jobs(task_id=task.id) == []
    run_ats = sorted([(await services.storage.list_jobs(task_id=t.id))[0].run_at for t in quiet])
    assert run_ats[0] < run_ats[-1]  # spread, not a burst


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    async with open_receiver(
        tmp_path, reconcile_after=RECONCILE_AFTER, task_deadline=DEADLINE, reconcile_batch=4
    ) as opened:
        yield opened


async def add_quiet_tasks(receiver: Receiver, count: int, *, first: int = 0) -> list[TaskRecord]:
    """Tasks the provider reports as processing, last heard of just over a quiet spell ago."""
    tasks = []
    heard = receiver.clock.now - timedelta(seconds=RECONCILE_AFTER + 1)
    for n in range(first, first + count):
        provider_id = f"kt-{n}"
        task = await receiver.add_task(
            f"token-{n}",
            status=TaskStatus.PROCESSING,
            provider_task_id=provider_id,
            created_at=heard,
            updated_at=heard,
        )
        receiver.provider.tasks[provider_id] = kling_task(provider_id, "processing")
        tasks.append(task)
    return tasks


async def sync_jobs(receiver: Receiver, task: TaskRecord) -> int:
    return len(await receiver.services.storage.list_jobs(task_id=task.id, kind="sync"))


async def test_a_pass_is_a_bounded_batch_spread_over_time(receiver: Receiver) -> None:
    tasks = await add_quiet_tasks(receiver, 10)
    services = receiver.services
    assert await enqueue_overdue_syncs(services) == 4
    queued = [job for t in tasks for job in await services.storage.list_jobs(task_id=t.id)]
    run_ats = sorted(job.run_at for job in queued)
    assert [b - a for a, b in itertools.pairwise(run_ats)] == [SPACING] * 3

    receiver.clock.advance(10)
    await receiver.run_jobs()
    assert len(receiver.provider.queries) == 4
    # the news ("still processing") starts a new spell: the next pass takes the next four
    assert await enqueue_overdue_syncs(services) == 4
    receiver.clock.advance(10)
    await receiver.run_jobs()
    assert len(set(receiver.provider.queries)) == 8


async def test_rate_limiting_holds_every_query_and_pass_until_retry_after(
    receiver: Receiver,
) -> None:
    tasks = await add_quiet_tasks(receiver, 3)
    services = receiver.services
    receiver.provider.rate_limited = 1  # the first query gets 1303 with Retry-After: 120
    assert await enqueue_overdue_syncs(services) == 3
    receiver.clock.advance(5)
    await receiver.run_jobs()

    assert len(receiver.provider.queries) == 1  # the others waited without calling
    assert services.provider_backoff.remaining(receiver.clock()) == 120  # Retry-After
    for task in tasks:
        [job] = await services.storage.list_jobs(task_id=task.id, kind="sync")
        assert job.status == "queued"
        assert job.run_at >= receiver.clock() + timedelta(seconds=110)
    await add_quiet_tasks(receiver, 2, first=3)  # more tasks fall quiet meanwhile
    assert await enqueue_overdue_syncs(services) == 0  # no new queries while held

    receiver.clock.advance(120)
    await receiver.run_jobs()
    assert len(receiver.provider.queries) == 1 + 3
    for task in tasks:
        assert (await receiver.task(task.id)).last_news_at == receiver.clock.now


async def test_a_task_without_a_final_state_by_its_deadline_times_out(receiver: Receiver) -> None:
    [task] = await add_quiet_tasks(receiver, 1)
    receiver.clock.advance(DEADLINE)
    assert await enqueue_overdue_syncs(receiver.services) == 1
    await receiver.run_jobs()

    stored = await receiver.task(task.id)
    assert stored.status == TaskStatus.FAILED
    assert stored.status_message == (
        "timed out: no final state from the provider after 24 h (last known state: processing)"
    )
    events = [e.type for e in await receiver.services.storage.list_events(task.id)]
    assert events == ["task.timed_out", "task.failed"]
    assert receiver.provider.queries == ["kt-0"]  # asked once more before giving up on it

    receiver.clock.advance(DEADLINE)
    assert await enqueue_overdue_syncs(receiver.services) == 0  # final: never queried again


async def test_a_final_state_found_at_the_deadline_wins(receiver: Receiver) -> None:
    [task] = await add_quiet_tasks(receiver, 1)
    receiver.provider.tasks["kt-0"] = kling_task("kt-0", "succeed")
    receiver.clock.advance(DEADLINE)
    await enqueue_overdue_syncs(receiver.services)
    await receiver.run_jobs()
    assert (await receiver.task(task.id)).status == TaskStatus.SUCCEEDED
    events = [e.type for e in await receiver.services.storage.list_events(task.id)]
    assert events == ["task.succeeded"]


async def test_a_task_the_provider_does_not_know_is_asked_again_then_times_out(
    receiver: Receiver,
) -> None:
    [task] = await add_quiet_tasks(receiver, 1)
    del receiver.provider.tasks["kt-0"]
    await enqueue_overdue_syncs(receiver.services)
    await receiver.run_jobs()
    stored = await receiver.task(task.id)
    assert (stored.status, stored.last_news_at) == (TaskStatus.PROCESSING, receiver.clock.now)
    [job] = await receiver.services.storage.list_jobs(task_id=task.id, kind="sync")
    assert job.status == "succeeded"  # not given up: the next quiet spell asks again

    receiver.clock.advance(RECONCILE_AFTER + 1)
    assert await enqueue_overdue_syncs(receiver.services) == 1
    receiver.clock.advance(DEADLINE)
    await enqueue_overdue_syncs(receiver.services)
    await receiver.run_jobs()
    assert (await receiver.task(task.id)).status == TaskStatus.FAILED


async def test_a_sync_that_gave_up_times_out_an_overdue_task(receiver: Receiver) -> None:
    [early, overdue] = await add_quiet_tasks(receiver, 2)
    overdue_at = receiver.clock.now - timedelta(seconds=DEADLINE + 1)
    await receiver.services.storage.delete_task(overdue.id)
    overdue = await receiver.add_task("token-old", created_at=overdue_at, updated_at=overdue_at)
    for task in (early, overdue):
        job = make_job(kind="sync", payload={"task_id": task.id}, task_id=task.id)
        await sync_given_up(receiver.services, job, "provider unreachable for a day")
    assert (await receiver.task(overdue.id)).status == TaskStatus.FAILED
    kept = await receiver.task(early.id)
    assert (kept.status, kept.last_news_at) == (TaskStatus.PROCESSING, receiver.clock.now)
