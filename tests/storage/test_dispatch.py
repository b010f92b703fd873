"""``record_dispatch``: what the dispatch of one event writes, once, on every backend."""

from __future__ import annotations

from service.apply.events import dispatch_job
from service.dispatch.job import plan_dispatch
from storage.base import JobEnd, Storage
from storage.records import EventRecord, JobRecord, JobStatus, TaskChange, TaskRecord
from tests.factories import at, make_event, make_task
from tests.storage.test_webhooks import make_endpoint

HANDLERS = ["plugin:first", "plugin:second"]


async def _event(storage: Storage, **fields: object) -> tuple[TaskRecord, EventRecord]:
    """A task and one event of it, written with its dispatch job as the lifecycle writes it."""
    task = make_task()
    await storage.create_task(task)
    event = make_event(task.id, type="task.failed", key="task.failed", timestamp=at(1), **fields)
    assert await storage.apply(TaskChange(task, events=[event], jobs=[dispatch_job(event)]))
    return task, event


async def _leased_dispatch(storage: Storage, task: TaskRecord) -> JobRecord:
    leased = await storage.lease_jobs(now=at(2), lease_seconds=30, limit=10, kinds=["dispatch"])
    [job] = [job for job in leased if job.task_id == task.id]
    return job


async def _counts(storage: Storage, task: TaskRecord) -> tuple[int, int, int]:
    """Handler jobs, deliveries and delivery jobs of the task."""
    return (
        len(await storage.list_jobs(task_id=task.id, kind="handler")),
        len(await storage.list_deliveries(task_id=task.id)),
        len(await storage.list_jobs(task_id=task.id, kind="delivery")),
    )


async def test_apply_writes_the_event_with_one_dispatch_job_and_routes_nothing(
    storage: Storage,
) -> None:
    await storage.create_endpoint(make_endpoint())
    task, event = await _event(storage)
    [job] = await storage.list_jobs(task_id=task.id)
    assert (job.kind, job.payload["event_id"]) == ("dispatch", event.id)
    assert job.dedupe_key == f"dispatch:{task.id}:{event.key}"
    assert await _counts(storage, task) == (0, 0, 0)

    # the same key again: the event is skipped, and so is its dispatch
    again = make_event(task.id, type="task.failed", key="task.failed", timestamp=at(5))
    assert await storage.apply(TaskChange(task, events=[again], jobs=[dispatch_job(again)]))
    assert len(await storage.list_jobs(task_id=task.id, kind="dispatch")) == 1


async def test_a_dispatch_writes_the_runs_and_deliveries_and_ends_its_job_in_one_go(
    storage: Storage,
) -> None:
    endpoints = [make_endpoint(), make_endpoint()]
    for endpoint in endpoints:
        await storage.create_endpoint(endpoint)
    task, event = await _event(storage)
    job = await _leased_dispatch(storage, task)

    dispatch = plan_dispatch(event, HANDLERS, [e.id for e in endpoints])
    await storage.record_dispatch(dispatch, JobEnd.of(job, now=at(3), retry_at=None, error=None))

    ended = await storage.get_job(job.id)
    assert ended is not None and ended.status == JobStatus.SUCCEEDED
    runs = await storage.list_jobs(task_id=task.id, kind="handler")
    assert sorted(r.dedupe_key or "" for r in runs) == [
        f"handler:{task.id}:task.failed:{name}" for name in HANDLERS
    ]
    deliveries = await storage.list_deliveries(task_id=task.id)
    assert {d.endpoint_id for d in deliveries} == {e.id for e in endpoints}
    for delivery in deliveries:
        delivery_job = await storage.get_job(delivery.job_id)
        assert delivery_job is not None and delivery_job.status == JobStatus.QUEUED
        assert delivery_job.payload["delivery_id"] == delivery.id
        assert delivery.created_at == event.timestamp  # as if made with the event


async def test_a_dispatch_run_again_writes_nothing_twice(storage: Storage) -> None:
    endpoint = make_endpoint()
    await storage.create_endpoint(endpoint)
    task, event = await _event(storage)
    # the first run wrote everything but its end (its lease was lost, or it crashed after the
    # commit and before the worker knew): the second run, with new ids, finds it all there
    await storage.record_dispatch(plan_dispatch(event, HANDLERS, [endpoint.id]))
    first = await storage.list_deliveries(task_id=task.id)
    job = await _leased_dispatch(storage, task)
    end = JobEnd.of(job, now=at(3), retry_at=None, error=None)
    await storage.record_dispatch(plan_dispatch(event, HANDLERS, [endpoint.id]), end)

    assert await _counts(storage, task) == (2, 1, 1)
    assert await storage.list_deliveries(task_id=task.id) == first
    ended = await storage.get_job(job.id)
    assert ended is not None and ended.status == JobStatus.SUCCEEDED


async def test_a_stale_lease_writes_the_dispatch_but_not_the_job_end(storage: Storage) -> None:
    task, event = await _event(storage)
    job = await _leased_dispatch(storage, task)
    stale = JobEnd(job.id, job.lease_token - 1, at(3), JobStatus.SUCCEEDED)

    await storage.record_dispatch(plan_dispatch(event, HANDLERS, []), stale)

    assert await _counts(storage, task) == (2, 0, 0)
    held = await storage.get_job(job.id)
    assert held is not None and held.status == JobStatus.RUNNING


async def test_an_endpoint_deleted_before_the_write_gets_no_delivery_nor_job(
    storage: Storage,
) -> None:
    kept, deleted = make_endpoint(), make_endpoint()
    for endpoint in (kept, deleted):
        await storage.create_endpoint(endpoint)
    task, event = await _event(storage)
    dispatch = plan_dispatch(event, [], [kept.id, deleted.id])  # chosen while both existed
    assert await storage.delete_endpoint(deleted.id)

    await storage.record_dispatch(dispatch)

    [delivery] = await storage.list_deliveries(task_id=task.id)
    assert delivery.endpoint_id == kept.id
    [delivery_job] = await storage.list_jobs(task_id=task.id, kind="delivery")
    assert delivery_job.id == delivery.job_id


async def test_the_dispatch_of_an_event_gone_with_its_task_writes_nothing_but_its_end(
    storage: Storage,
) -> None:
    endpoint = make_endpoint()
    await storage.create_endpoint(endpoint)
    task, event = await _event(storage)
    other, _ = await _event(storage)  # a job of a task that stays, to end
    job = await _leased_dispatch(storage, other)
    await storage.delete_task(task.id)

    end = JobEnd.of(job, now=at(3), retry_at=None, error=None)
    await storage.record_dispatch(plan_dispatch(event, HANDLERS, [endpoint.id]), end)

    assert await _counts(storage, task) == (0, 0, 0)
    assert await storage.list_deliveries(endpoint_id=endpoint.id) == []
    ended = await storage.get_job(job.id)
    assert ended is not None and ended.status == JobStatus.SUCCEEDED


async def test_deliveries_dispatched_out_of_order_are_still_due_in_the_events_order(
    storage: Storage,
) -> None:
    endpoint = make_endpoint()
    await storage.create_endpoint(endpoint)
    task = make_task()
    await storage.create_task(task)
    early = make_event(task.id, key="early", timestamp=at(1))
    late = make_event(task.id, key="late", timestamp=at(2))
    assert await storage.apply(TaskChange(task, events=[early, late]))

    for event in (late, early):  # two workers: the later event's dispatch finished first
        await storage.record_dispatch(plan_dispatch(event, [], [endpoint.id]))

    leased = await storage.lease_jobs(now=at(10), lease_seconds=30, limit=10, kinds=["delivery"])
    assert [job.payload["event_id"] for job in leased] == [early.id, late.id]
