"""The callback inbox: a notification is stored together with the job that processes it."""

from __future__ import annotations

import asyncio

import pytest

from service.errors import StorageError
from storage.base import JobEnd, Storage
from storage.records import JobRecord, JobStatus, NotificationRecord, TaskRecord
from tests.factories import at, make_job, make_notification, make_task


@pytest.fixture
async def task(storage: Storage) -> TaskRecord:
    task = make_task()
    await storage.create_task(task)
    return task


async def test_record_notification_with_its_job(storage: Storage, task: TaskRecord) -> None:
    notification = make_notification(
        task.id,
        headers={"x-signature": "abc"},
        body=b"\x00\xff{binary}",
        verification="signature valid",
    )
    job = make_job(task_id=task.id, kind="inbox", payload={"notification_id": notification.id})

    await storage.record_notification(notification, job)

    assert await storage.get_notification(notification.id) == notification
    assert await storage.get_job(job.id) == job
    leased = await storage.lease_jobs(now=at(1), lease_seconds=30, limit=5, kinds=["inbox"])
    assert [j.payload for j in leased] == [{"notification_id": notification.id}]


async def test_a_failed_job_insert_stores_no_notification(
    storage: Storage, task: TaskRecord
) -> None:
    taken = make_job()
    await storage.enqueue([taken])
    notification = make_notification(task.id)

    with pytest.raises(StorageError):
        await storage.record_notification(notification, make_job(id=taken.id))  # duplicate id

    assert await storage.get_notification(notification.id) is None


async def test_list_notifications_oldest_first(storage: Storage, task: TaskRecord) -> None:
    late = make_notification(task.id, received_at=at(9))
    early = make_notification(task.id, received_at=at(1))
    tie = make_notification(task.id, received_at=at(1))
    for notification in (late, early, tie):
        await storage.record_notification(notification, make_job(task_id=task.id))

    found = await storage.list_notifications(task.id)
    assert [n.id for n in found] == [early.id, tie.id, late.id]
    assert await storage.list_notifications("task_other") == []


async def test_set_notification_outcome(storage: Storage, task: TaskRecord) -> None:
    notification = make_notification(task.id)
    await storage.record_notification(notification, make_job(task_id=task.id))

    await storage.set_notification_outcome(notification.id, "status: processing -> succeeded")

    stored = await storage.get_notification(notification.id)
    assert stored is not None
    assert stored.outcome == "status: processing -> succeeded"
    await storage.set_notification_outcome("ntf_missing", "x")  # gone with its task: no error
    assert await storage.get_notification("ntf_missing") is None


async def _leased_inbox_job(
    storage: Storage, task: TaskRecord
) -> tuple[NotificationRecord, JobRecord]:
    """A stored notification and its inbox job, leased at ``at(1)`` for 30 s."""
    notification = make_notification(task.id)
    job = make_job(task_id=task.id, kind="inbox", payload={"notification_id": notification.id})
    await storage.record_notification(notification, job)
    (leased,) = await storage.lease_jobs(now=at(1), lease_seconds=30, limit=1)
    return notification, leased


async def test_the_outcome_and_the_inbox_jobs_end_are_written_together(
    storage: Storage, task: TaskRecord
) -> None:
    notification, job = await _leased_inbox_job(storage, task)

    end = JobEnd.of(job, now=at(2), retry_at=None, error=None)
    await storage.set_notification_outcome(notification.id, "no change", end)

    stored = await storage.get_notification(notification.id)
    assert stored is not None and stored.outcome == "no change"
    ended = await storage.get_job(job.id)
    assert ended is not None
    assert ended.status == JobStatus.SUCCEEDED and ended.updated_at == at(2)


async def test_a_stale_inbox_job_still_notes_the_outcome_but_ends_nothing(
    storage: Storage, task: TaskRecord
) -> None:
    notification, stale = await _leased_inbox_job(storage, task)
    await storage.lease_jobs(now=at(40), lease_seconds=30, limit=1)  # its lease was taken over

    end = JobEnd.of(stale, now=at(41), retry_at=None, error=None)
    await storage.set_notification_outcome(notification.id, "no change", end)

    stored = await storage.get_notification(notification.id)
    assert stored is not None and stored.outcome == "no change"  # the same for both holders
    held = await storage.get_job(stale.id)
    assert held is not None and held.status == JobStatus.RUNNING and held.lease_token == 2


async def test_concurrent_notifications_are_all_stored_and_one_bad_fails_alone(
    storage: Storage, task: TaskRecord
) -> None:
    good = [make_notification(task.id) for _ in range(20)]
    orphan = make_notification("task_gone")  # its task does not exist
    calls = [storage.record_notification(n, make_job(task_id=task.id)) for n in good]
    calls.insert(7, storage.record_notification(orphan, make_job()))

    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert [type(o).__name__ for o in outcomes].count("NoneType") == 20
    assert isinstance(outcomes[7], StorageError)
    assert {n.id for n in await storage.list_notifications(task.id)} == {n.id for n in good}
    assert await storage.get_notification(orphan.id) is None
