"""apply(): compare-and-set task changes with their videos, events and jobs."""

from __future__ import annotations

import asyncio
import dataclasses

from storage.base import Storage
from storage.records import (
    DownloadStatus,
    JobStatus,
    OutputKind,
    TaskChange,
    TaskRecord,
    TaskStatus,
)
from tests.factories import at, make_event, make_job, make_task, make_video


async def _stored(storage: Storage) -> TaskRecord:
    task = make_task()
    await storage.create_task(task)
    return task


async def test_success_writes_everything_and_bumps_version(storage: Storage) -> None:
    task = await _stored(storage)
    task.status = TaskStatus.SUCCEEDED
    task.last_news_at = at(5)
    event = make_event(task.id, type="task.succeeded", key="task.succeeded", data={"n": 1})
    job = make_job(task_id=task.id, kind="download", dedupe_key=f"download:{task.id}:0")
    video = make_video(task.id, 0, duration="5")

    assert await storage.apply(TaskChange(task, videos=[video], events=[event], jobs=[job]))

    assert task.version == 1
    stored = await storage.get_task(task.id)
    assert stored == task
    assert await storage.list_videos(task.id) == [video]
    assert await storage.list_events(task.id) == [event]
    assert await storage.get_event(event.id) == event
    assert await storage.get_job(job.id) == job


async def test_stale_version_returns_false_and_writes_nothing(storage: Storage) -> None:
    task = await _stored(storage)
    stale = dataclasses.replace(task)
    task.status = TaskStatus.PROCESSING
    assert await storage.apply(TaskChange(task))

    stale.status = TaskStatus.FAILED
    change = TaskChange(
        stale,
        videos=[make_video(task.id)],
        events=[make_event(task.id)],
        jobs=[make_job(task_id=task.id)],
    )
    assert not await storage.apply(change)

    assert stale.version == 0
    stored = await storage.get_task(task.id)
    assert stored is not None
    assert (stored.status, stored.version) == (TaskStatus.PROCESSING, 1)
    assert await storage.list_videos(task.id) == []
    assert await storage.list_events(task.id) == []
    assert await storage.list_jobs(task_id=task.id) == []


async def test_unknown_task_returns_false(storage: Storage) -> None:
    assert not await storage.apply(TaskChange(make_task()))


async def test_event_key_already_there_is_skipped(storage: Storage) -> None:
    task = await _stored(storage)
    first = make_event(task.id, key="task.succeeded", timestamp=at(1))
    assert await storage.apply(TaskChange(task, events=[first]))
    again = make_event(task.id, key="task.succeeded", timestamp=at(2))
    fresh = make_event(task.id, key="video.downloaded:0", timestamp=at(2))
    assert await storage.apply(TaskChange(task, events=[again, fresh]))

    assert await storage.list_events(task.id) == [first, fresh]
    assert await storage.get_event(again.id) is None


async def test_job_dedupe_key_already_there_is_skipped(storage: Storage) -> None:
    task = await _stored(storage)
    first = make_job(task_id=task.id, dedupe_key="poll")
    assert await storage.apply(TaskChange(task, jobs=[first]))
    twin = make_job(task_id=task.id, dedupe_key="poll")
    assert await storage.apply(TaskChange(task, jobs=[twin]))

    assert [j.id for j in await storage.list_jobs(task_id=task.id)] == [first.id]


async def test_videos_are_upserted_by_index(storage: Storage) -> None:
    task = await _stored(storage)
    assert await storage.apply(
        TaskChange(task, videos=[make_video(task.id, 1), make_video(task.id, 0)])
    )
    done = make_video(
        task.id, 0, download_status=DownloadStatus.DOWNLOADED, size=10, sha256="ab", path="a.mp4"
    )
    assert await storage.apply(TaskChange(task, videos=[done]))

    videos = await storage.list_videos(task.id)
    assert [v.index for v in videos] == [0, 1]
    assert videos[0] == done


async def test_outputs_keep_their_kind_and_watermarked_copy(storage: Storage) -> None:
    task = await _stored(storage)
    video = make_video(task.id, 0, watermark_url="https://cdn.example.test/0-wm.mp4")
    image = make_video(task.id, 1, url="https://cdn.example.test/1.png", kind=OutputKind.IMAGE)
    assert await storage.apply(TaskChange(task, videos=[video, image]))
    assert await storage.list_videos(task.id) == [video, image]

    stored = dataclasses.replace(
        video,
        download_status=DownloadStatus.DOWNLOADED,
        path="t/0.mp4",
        size=10,
        sha256="ab",
        watermark_path="t/0.watermarked.mp4",
        watermark_size=12,
        watermark_sha256="cd",
    )
    assert await storage.apply(TaskChange(task, videos=[stored]))
    listed = await storage.list_videos(task.id)
    assert listed == [stored, image]
    assert [v.kind for v in listed] == [OutputKind.VIDEO, OutputKind.IMAGE]


async def test_events_of_one_change_keep_their_order(storage: Storage) -> None:
    task = await _stored(storage)
    late = make_event(task.id, timestamp=at(9))
    tie_a = make_event(task.id, timestamp=at(1))
    tie_b = make_event(task.id, timestamp=at(1))
    assert await storage.apply(TaskChange(task, events=[late, tie_a, tie_b]))

    assert [e.id for e in await storage.list_events(task.id)] == [late.id, tie_a.id, tie_b.id]


async def test_concurrent_changes_of_one_version_only_one_wins(storage: Storage) -> None:
    task = await _stored(storage)
    changes = [
        TaskChange(dataclasses.replace(task, status_message=f"writer {i}"), jobs=[make_job()])
        for i in range(8)
    ]
    results = await asyncio.gather(*(storage.apply(c) for c in changes))

    assert sum(results) == 1
    stored = await storage.get_task(task.id)
    assert stored is not None
    assert stored.version == 1
    winner = changes[results.index(True)]
    assert stored.status_message == winner.task.status_message


async def test_download_progress_is_recorded_without_a_version_bump(storage: Storage) -> None:
    task = make_task()
    await storage.create_task(task)
    assert await storage.apply(TaskChange(task=task, videos=[make_video(task.id, 0)]))
    await storage.set_download_progress(task.id, 0, received=512, total=2048)
    [video] = await storage.list_videos(task.id)
    assert (video.bytes_received, video.bytes_total) == (512, 2048)
    stored = await storage.get_task(task.id)
    assert stored is not None and stored.version == 1
    await storage.set_download_progress(task.id, 9, received=1, total=None)  # no such video


async def test_events_are_listed_in_the_order_they_were_written(storage: Storage) -> None:
    # Another process's clock may be behind: the story's order is the order of the changes.
    task = make_task()
    await storage.create_task(task)
    first = make_event(task.id, type="task.processing", key="task.processing", timestamp=at(10))
    assert await storage.apply(TaskChange(task=task, events=[first]))
    stored = await storage.get_task(task.id)
    assert stored is not None
    later = make_event(task.id, type="task.succeeded", key="task.succeeded", timestamp=at(5))
    assert await storage.apply(TaskChange(task=stored, events=[later]))
    assert [e.type for e in await storage.list_events(task.id)] == [
        "task.processing",
        "task.succeeded",
    ]


async def test_a_change_settles_the_tasks_queued_jobs_of_a_kind(storage: Storage) -> None:
    task = make_task(status=TaskStatus.PENDING)
    waiting = make_job(task_id=task.id, kind="submit", dedupe_key="w")
    other_kind = make_job(task_id=task.id, kind="sync", dedupe_key="s")
    await storage.create_task(task, [waiting, other_kind])
    elsewhere = make_task(status=TaskStatus.PENDING)
    theirs = make_job(task_id=elsewhere.id, kind="submit", dedupe_key="t")
    await storage.create_task(elsewhere, [theirs])
    [running] = await storage.lease_jobs(now=at(0), lease_seconds=60, limit=1, kinds=["sync"])

    changed = dataclasses.replace(task, status=TaskStatus.SUBMITTED, updated_at=at(5))
    assert await storage.apply(TaskChange(task=changed, settles=("submit", "sync")))

    status = {j.id: j.status for j in await storage.list_jobs(task_id=task.id)}
    assert status[waiting.id] == JobStatus.SUCCEEDED  # queued: nothing left for it to do
    assert status[running.id] == JobStatus.RUNNING  # running: its holder decides
    [kept] = await storage.list_jobs(task_id=elsewhere.id)
    assert kept.status == JobStatus.QUEUED  # another task's
