"""Group commit: concurrent writes share transactions, yet each succeeds or fails on its own.

They run on every backend through the :class:`Storage` interface (on SQLite the writes below
land in shared batches); SQLite's writer itself is tested in ``test_sqlite_writer.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses

from service.errors import Conflict
from storage.base import Storage
from storage.records import TaskChange, TaskStatus
from tests.factories import make_event, make_job, make_task, make_video
from tests.storage.conftest import OpenAgain


async def test_concurrent_writes_of_many_coroutines_are_all_committed(
    storage: Storage, open_again: OpenAgain
) -> None:
    tasks = [make_task() for _ in range(40)]
    await asyncio.gather(*(storage.create_task(t, [make_job(task_id=t.id)]) for t in tasks))
    changes = []
    for task in tasks:
        task.status = TaskStatus.PROCESSING
        changes.append(TaskChange(task, events=[make_event(task.id)]))
    jobs = [make_job() for _ in range(40)]
    results = await asyncio.gather(
        *(storage.apply(change) for change in changes),
        *(storage.enqueue([job]) for job in jobs),
    )
    assert results[: len(changes)] == [True] * len(changes)

    other = await open_again()  # another connection: only committed writes are visible there
    for task in tasks:
        stored = await other.get_task(task.id)
        assert stored is not None and stored.version == 1
        assert len(await other.list_events(task.id)) == 1
        assert len(await other.list_jobs(task_id=task.id)) == 1
    for job in jobs:
        assert await other.get_job(job.id) == job


async def test_a_failing_write_fails_alone_and_its_batch_mates_commit(
    storage: Storage, open_again: OpenAgain
) -> None:
    taken = make_task()
    await storage.create_task(taken)
    fresh = [make_task() for _ in range(10)]
    duplicate = make_task(external_task_id=taken.external_task_id)
    jobs = [make_job() for _ in range(10)]
    outcomes = await asyncio.gather(
        *(storage.create_task(t) for t in fresh[:5]),
        storage.create_task(duplicate, [make_job(task_id=duplicate.id)]),
        *(storage.create_task(t) for t in fresh[5:]),
        *(storage.enqueue([job]) for job in jobs),
        return_exceptions=True,
    )
    assert isinstance(outcomes[5], Conflict)
    assert [o for i, o in enumerate(outcomes) if i != 5] == [None] * 20

    other = await open_again()
    assert await other.get_task(duplicate.id) is None
    assert await other.list_jobs(task_id=duplicate.id) == []  # its job went with it
    for task in fresh:
        assert await other.get_task(task.id) == task
    for job in jobs:
        assert await other.get_job(job.id) == job


async def test_concurrent_applies_of_one_version_among_other_writes_one_wins(
    storage: Storage,
) -> None:
    task = make_task()
    await storage.create_task(task)
    contenders = [dataclasses.replace(task, status=TaskStatus.PROCESSING) for _ in range(8)]
    changes = [TaskChange(c, videos=[make_video(task.id)]) for c in contenders]
    results = await asyncio.gather(
        *(storage.apply(c) for c in changes),
        *(storage.create_task(make_task()) for _ in range(8)),
    )
    assert results[:8].count(True) == 1
    stored = await storage.get_task(task.id)
    assert stored is not None and stored.version == 1
    assert len(await storage.list_videos(task.id)) == 1
