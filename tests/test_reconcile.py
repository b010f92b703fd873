"""Reconciliation passes: quiet tasks are queried once per quiet spell, spread over time."""

from __future__ import annotations

from datetime import timedelta

from service.reconcile import enqueue_overdue_syncs
from service.services import Services
from storage.records import TaskStatus
from tests.factories import make_task


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
