"""A succeeded task whose video waits for its ``download`` job, written straight to storage."""

from __future__ import annotations

from service.jobs.kinds import DOWNLOAD, new_job
from storage.base import Storage
from storage.records import TaskChange, TaskRecord, TaskStatus, VideoRecord
from tests.factories import T0, make_task


async def seed_download(storage: Storage, url: str, *, duration: str | None = "3.0") -> TaskRecord:
    task = make_task(status=TaskStatus.SUCCEEDED, provider_task_id="p-1")
    await storage.create_task(task)
    video = VideoRecord(task_id=task.id, index=0, url=url, updated_at=T0, duration=duration)
    job = new_job(
        DOWNLOAD,
        {"task_id": task.id, "index": 0},
        now=T0,
        task_id=task.id,
        dedupe_key=f"download:{task.id}:0",
    )
    assert await storage.apply(TaskChange(task=task, videos=[video], jobs=[job]))
    return task
