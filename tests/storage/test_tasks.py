"""Tasks: create, look up, list, stale scan, delete."""

from __future__ import annotations

import pytest

from service.errors import Conflict, StorageError
from storage.base import Storage
from storage.records import TaskChange, TaskStatus
from tests.factories import (
    at,
    make_event,
    make_job,
    make_notification,
    make_task,
    make_video,
)


async def test_create_and_get_by_id_external_id_and_token_hash(storage: Storage) -> None:
    task = make_task(request={"prompt": "ü", "n": [1, 2]}, metadata={"user": "u1"}, cost="0.5")
    await storage.create_task(task)

    assert await storage.get_task(task.id) == task
    assert await storage.get_task(task.external_task_id) == task
    assert await storage.get_task_by_token_hash(task.callback_token_hash) == task
    assert await storage.get_task("nope") is None
    assert await storage.get_task_by_token_hash("0" * 64) is None


async def test_get_task_prefers_id_over_external_id(storage: Storage) -> None:
    first = make_task()
    second = make_task(external_task_id=first.id)  # another task's external id is first's id
    await storage.create_task(first)
    await storage.create_task(second)

    assert (await storage.get_task(first.id)) == first


async def test_duplicate_external_id_is_a_conflict_and_writes_nothing(storage: Storage) -> None:
    task = make_task(external_task_id="same")
    await storage.create_task(task)
    twin = make_task(external_task_id="same")

    with pytest.raises(Conflict, match="external_task_id"):
        await storage.create_task(twin, [make_job(task_id=twin.id)])

    assert await storage.get_task(twin.id) is None
    assert await storage.list_jobs(task_id=twin.id) == []


async def test_duplicate_token_hash_is_a_storage_error(storage: Storage) -> None:
    task = make_task()
    await storage.create_task(task)
    with pytest.raises(StorageError):
        await storage.create_task(make_task(callback_token_hash=task.callback_token_hash))


async def test_create_task_with_jobs_in_one_go(storage: Storage) -> None:
    task = make_task()
    jobs = [make_job(task_id=task.id, kind="submit"), make_job(task_id=task.id, kind="poll")]
    await storage.create_task(task, jobs)

    assert [j.kind for j in await storage.list_jobs(task_id=task.id)] == ["submit", "poll"]


async def test_returned_records_are_copies(storage: Storage) -> None:
    task = make_task(metadata={"a": 1})
    await storage.create_task(task)
    task.metadata["a"] = 2  # the caller's object is not the stored one
    got = await storage.get_task(task.id)
    assert got is not None
    got.metadata["a"] = 3
    got.status = TaskStatus.FAILED

    again = await storage.get_task(task.id)
    assert again is not None
    assert again.metadata == {"a": 1}
    assert again.status == TaskStatus.SUBMITTED


async def test_list_tasks_newest_first_with_keyset_pages(storage: Storage) -> None:
    tasks = [make_task(created_at=at(i // 2)) for i in range(7)]  # pairs share a timestamp
    for task in tasks:
        await storage.create_task(task)
    expected = sorted(tasks, key=lambda t: (t.created_at, t.id), reverse=True)

    pages: list[list[str]] = []
    before = None
    while True:
        page = await storage.list_tasks(limit=3, before=before)
        if not page:
            break
        pages.append([t.id for t in page])
        before = (page[-1].created_at, page[-1].id)

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [tid for page in pages for tid in page] == [t.id for t in expected]


async def test_list_tasks_filters_by_status(storage: Storage) -> None:
    done = make_task(status=TaskStatus.SUCCEEDED, created_at=at(1))
    running = make_task(status=TaskStatus.PROCESSING, created_at=at(2))
    done_later = make_task(status=TaskStatus.SUCCEEDED, created_at=at(3))
    for task in (done, running, done_later):
        await storage.create_task(task)

    found = await storage.list_tasks(status=TaskStatus.SUCCEEDED)
    assert [t.id for t in found] == [done_later.id, done.id]
    assert await storage.list_tasks(status=TaskStatus.FAILED) == []
    assert len(await storage.list_tasks(limit=0)) == 0


async def test_list_stale_tasks(storage: Storage) -> None:
    quiet_long = make_task(status=TaskStatus.SUBMITTED, updated_at=at(10), last_news_at=at(1))
    never_heard = make_task(status=TaskStatus.PROCESSING, updated_at=at(5))
    recent_news = make_task(status=TaskStatus.PROCESSING, updated_at=at(1), last_news_at=at(50))
    finished = make_task(status=TaskStatus.SUCCEEDED, updated_at=at(1))
    pending = make_task(status=TaskStatus.PENDING, updated_at=at(1))
    for task in (quiet_long, never_heard, recent_news, finished, pending):
        await storage.create_task(task)

    stale = await storage.list_stale_tasks(quiet_since=at(20), limit=10)
    assert [t.id for t in stale] == [quiet_long.id, never_heard.id]  # oldest news first
    assert [t.id for t in await storage.list_stale_tasks(quiet_since=at(20), limit=1)] == [
        quiet_long.id
    ]


async def test_delete_task_removes_everything_that_belongs_to_it(storage: Storage) -> None:
    task, other = make_task(), make_task()
    await storage.create_task(task, [make_job(task_id=task.id)])
    await storage.create_task(other, [make_job(task_id=other.id)])
    notification = make_notification(task.id)
    await storage.record_notification(notification, make_job(task_id=task.id))
    event = make_event(task.id)
    assert await storage.apply(TaskChange(task, videos=[make_video(task.id)], events=[event]))

    await storage.delete_task(task.id)

    assert await storage.get_task(task.id) is None
    assert await storage.list_jobs(task_id=task.id) == []
    assert await storage.list_videos(task.id) == []
    assert await storage.list_events(task.id) == []
    assert await storage.get_event(event.id) is None
    assert await storage.get_notification(notification.id) is None
    assert len(await storage.list_jobs(task_id=other.id)) == 1
    await storage.delete_task(task.id)  # already gone: no error


async def test_unknown_task_reference_is_refused(storage: Storage) -> None:
    with pytest.raises(StorageError):
        await storage.enqueue([make_job(task_id="task_missing")])
    with pytest.raises(StorageError):
        await storage.record_notification(make_notification("task_missing"), make_job())


async def test_json_fields_must_be_serialisable(storage: Storage) -> None:
    with pytest.raises(StorageError):
        await storage.create_task(make_task(metadata={"bad": object()}))
